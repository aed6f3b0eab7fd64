// Allure 3 report for `make certify`: one self-contained HTML file, titled with the certification's verdict.
import { readFileSync } from "node:fs";

// The verdict, profile and cert id the certification wrote beside its results (environment.properties).
function facts(dir) {
  try {
    return Object.fromEntries(
      readFileSync(`${dir}/environment.properties`, "utf8")
        .split("\n")
        .filter((line) => line.includes("="))
        .map((line) => [line.slice(0, line.indexOf("=")).trim(), line.slice(line.indexOf("=") + 1).trim()]),
    );
  } catch {
    return {};
  }
}

const run = facts(process.env.ALLURE_RESULTS_DIR || "reports/allure-results");
const title = `spine-certify: ${run.verdict || "verdict unknown"} (profile ${run.profile || "?"}, ${run.cert_id || "?"})`;

// Allure 3 ignores categories.json: the same three categories, matched on the `category` label the
// harness gives every non-passing result (harness/report.py CATEGORIES names them).
const category = (name) => ({
  name,
  matchers: { labels: { category: `^${name.replace(/[.*+?^${}()|[\]\\]/g, "\\$&")}$` } },
});

export default {
  name: title,
  output: "reports/allure-report",
  categories: {
    rules: [
      category("Fail-closed finding"),
      category("Not implemented by the platform"),
      category("Substrate or harness error (could not judge)"),
    ],
  },
  plugins: {
    awesome: {
      // Scenarios grouped by phase; a group holding a failure opens by itself.
      options: { singleFile: true, reportName: title, groupBy: ["phase"] },
    },
  },
};
