"""Benchmark the Oracle lane: engine → oracle-seed → oracle-sort → oracle-check against a local moto server.

    .venv/bin/python bench/oracle_lane.py --events 1000000

Prints wall time and peak RSS (the child's own ru_maxrss, from wait4) per step, and the total.
"""

from __future__ import annotations

import argparse
import hashlib
import json
import os
import shutil
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

import boto3
import botocore.config

from harness.substrate import MotoServer

REGION = "eu-west-2"
IMAGE_DIGEST = "sha256:" + "0" * 64


def _step(argv: list[str], env: dict[str, str], logs: Path, name: str) -> dict[str, Any]:
    """Run one step as a child process; its own peak RSS comes from wait4, not from the whole family."""
    began = time.monotonic()
    with (logs / f"{name}.out").open("wb") as out, (logs / f"{name}.err").open("wb") as err:
        proc = subprocess.Popen([sys.executable, *argv], env=env, stdout=out, stderr=err, stdin=subprocess.DEVNULL)
        _, status, usage = os.wait4(proc.pid, 0)
        proc.returncode = os.waitstatus_to_exitcode(status)
    return {"step": name, "exit": proc.returncode, "wall_s": time.monotonic() - began,
            "peak_rss_mib": usage.ru_maxrss / 1024, "stderr": (logs / f"{name}.err").read_text().strip()}


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--events", type=int, default=1_000_000)
    parser.add_argument("--seed", type=int, default=42)
    parser.add_argument("--keep", action="store_true", help="keep the moto and step logs")
    args = parser.parse_args()

    work = Path(tempfile.mkdtemp(prefix="oracle-bench-"))
    moto = MotoServer(workdir=work)
    moto.start()
    try:
        run_id = "run-bench-0001"
        scenario = f"scn-seed{args.seed}-n{args.events}"
        buckets = {"src": "bench-oracle-source", "oracle": "bench-oracle", "evidence": "bench-evidence"}
        s3 = boto3.client("s3", endpoint_url=moto.endpoint, region_name=REGION, aws_access_key_id="testing",
                          aws_secret_access_key="testing",
                          config=botocore.config.Config(s3={"addressing_style": "path"}))
        for bucket in buckets.values():
            s3.create_bucket(Bucket=bucket, CreateBucketConfiguration={"LocationConstraint": REGION})
        config = {"events": args.events, "seed": args.seed}
        digest = hashlib.sha256(json.dumps(config, sort_keys=True, separators=(",", ":")).encode()).hexdigest()
        run_json = {"platform_run_id": run_id, "scenario_run_id": scenario, "run_config_digest": digest,
                    "run_config": config, "image": {"tag": "git-bench", "digest": IMAGE_DIGEST, "source_sha": "bench"},
                    "events": args.events, "handles_digest": "0" * 64, "pinned_at": "2026-01-01T00:00:00Z"}
        s3.put_object(Bucket=buckets["evidence"], Key=f"runs/{run_id}/run.json", Body=json.dumps(run_json).encode())
        source = f"s3://{buckets['src']}/oracle/{scenario}/"
        aws = {"PATH": os.environ.get("PATH", "/usr/bin:/bin"), "AWS_ENDPOINT_URL": moto.endpoint,
               "AWS_REGION": REGION, "AWS_ACCESS_KEY_ID": "testing", "AWS_SECRET_ACCESS_KEY": "testing"}
        env = {**aws, "REQUIRED_PLATFORM_RUN_ID": run_id,
               "SPINE_RUN_MANIFEST": f"s3://{buckets['evidence']}/runs/{run_id}/run.json",
               "SPINE_RUN_CONFIG_DIGEST": digest, "SPINE_IMAGE_DIGEST": IMAGE_DIGEST,
               "SPINE_EVIDENCE_ROOT": f"s3://{buckets['evidence']}/runs/{run_id}/",
               "SPINE_ORACLE_SOURCE": source, "SPINE_ORACLE_ROOT": f"s3://{buckets['oracle']}/oracle/{scenario}/"}
        steps = [
            ("engine", ["-m", "spine.engine", "--seed", str(args.seed), "--events", str(args.events), "--out", source],
             aws),
            *((mode, ["-m", "spine", mode], env) for mode in ("oracle-seed", "oracle-sort", "oracle-check")),
        ]
        results = []
        print(f"Oracle lane, {args.events:,} events, moto at {moto.endpoint}")
        print(f"{'step':<14}{'exit':>5}{'wall s':>9}{'peak RSS MiB':>14}")
        for name, argv, step_env in steps:
            result = _step(argv, step_env, work, name)
            results.append(result)
            print(f"{name:<14}{result['exit']:>5}{result['wall_s']:>9.2f}{result['peak_rss_mib']:>14.0f}")
            if result["exit"] != 0:
                print(f"{name} failed: {result['stderr']}", file=sys.stderr)
                args.keep = True
                return 1
        total = sum(r["wall_s"] for r in results)
        print(f"{'total':<14}{'':>5}{total:>9.2f}{max(r['peak_rss_mib'] for r in results):>14.0f} (max)")
        receipt = json.loads(s3.get_object(Bucket=buckets["evidence"],
                                           Key=f"runs/{run_id}/oracle/checker_receipt.json")["Body"].read())
        print(f"checker verdict: {receipt['verdict']}")
        return 0 if receipt["verdict"] == "PASS" else 1
    finally:
        moto.stop()
        if not args.keep:
            shutil.rmtree(work, ignore_errors=True)


if __name__ == "__main__":
    raise SystemExit(main())
