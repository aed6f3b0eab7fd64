// Allure 3 report for `make certify`: one self-contained HTML file.
export default {
  name: "spine-certify",
  output: "reports/allure-report",
  plugins: {
    awesome: {
      // Scenarios grouped by phase; a group holding a failure opens by itself.
      options: { singleFile: true, reportName: "spine-certify certification", groupBy: ["phase"] },
    },
  },
};
