"""`spine-certify`: bring the embedded substrate up or down, verify a bundle, print a verdict."""

from __future__ import annotations

import argparse
import json
import os
import shutil
import sys
from pathlib import Path

from harness import evidence, mirror, report
from harness import handles as handles_mod
from harness.errors import HarnessError
from harness.substrate import PostgresCluster, pid_alive
from harness.substrate.base import terminate_process_group

EXIT_VERDICT = {"CERTIFIED": 0, "FAILED": 1, "INCOMPLETE": 2, "ERROR": 3}


def _project_root() -> Path:
    return Path(os.environ.get("SPINE_CERTIFY_ROOT", Path.cwd()))


def _state_file(root: Path) -> Path:
    return root / ".spine-certify" / "up.json"


def cmd_up(args: argparse.Namespace) -> int:
    from harness.session import Options, build_substrate

    root = _project_root()
    state = _state_file(root)
    if state.exists():
        raise HarnessError(f"a substrate is already up (see {state}); run `spine-certify down` first")
    handles = handles_mod.load(args.handles or handles_mod.default_path("embedded", root), profile="embedded")
    workdir = root / ".spine-certify" / "up"
    substrate = build_substrate(Options(project_root=root), handles, workdir, detached=True)
    substrate.start()
    record = substrate.to_json()
    for part in substrate.parts:
        if isinstance(part, PostgresCluster):
            record["postgres"] = {"data_dir": str(part.data_dir), "root": str(part.root), "dsn": part.dsn}
    state.parent.mkdir(parents=True, exist_ok=True)
    state.write_text(json.dumps(record, indent=2))
    state.chmod(0o600)  # it holds the local database password
    print("embedded substrate is up:")
    for part in record["parts"]:
        print(f"  {part['name']:9} {part['endpoint']:28} {part['version']}")
    print(f"  postgres  {_mask_password(record['postgres']['dsn'])}  (password in {state}, mode 600)")
    print("  AWS: export AWS_ACCESS_KEY_ID=testing AWS_SECRET_ACCESS_KEY=testing "
          f"AWS_ENDPOINT_URL={record['parts'][0]['endpoint']}")
    print(f"state: {state}; stop with `spine-certify down`")
    return 0


def _mask_password(dsn: str) -> str:
    scheme, _, rest = dsn.partition("://")
    creds, _, host = rest.rpartition("@")
    user = creds.split(":", 1)[0]
    return f"{scheme}://{user}:***@{host}"


def cmd_down(args: argparse.Namespace) -> int:
    state = _state_file(_project_root())
    if not state.exists():
        print("no substrate is up (nothing to stop)")
        return 0
    record = json.loads(state.read_text())
    failures = []
    pg = record.get("postgres")
    if pg and Path(pg["data_dir"]).exists():
        from harness.substrate.postgres import stop_data_dir

        try:
            stop_data_dir(Path(pg["data_dir"]))
        except HarnessError as exc:
            failures.append(f"postgres: {exc}")
        shutil.rmtree(pg["root"], ignore_errors=True)
    for part in reversed(record["parts"]):
        for pid in part["pids"]:
            if part["name"] != "postgres" and pid_alive(pid):
                try:
                    terminate_process_group(pid, name=part["name"])
                except HarnessError as exc:
                    failures.append(str(exc))
    for failure in failures:
        print(f"problem: {failure}", file=sys.stderr)
    state.unlink()
    print("embedded substrate stopped" if not failures else "embedded substrate stopped with problems")
    return 1 if failures else 0


def cmd_verify(args: argparse.Namespace) -> int:
    bundle = Path(args.bundle)
    result, manifest = evidence.verify_local(bundle)
    from harness import rejudge  # the phases' judges: imported only when a bundle is verified

    result.rejudged = rejudge.check(bundle)
    if not args.local_only:
        mirror.compare(result, manifest)
    for line in result.lines():
        print(line)
    print(f"mirror: {result.mirror_status}")
    files = len(manifest.get("files", []))
    if result.ok:
        print(f"OK: {bundle} ({files} files, bundle digest {manifest['bundle_digest'][:16]}…; recorded observations "
              "judged again offline agree with the verdict)")
        return 0
    what = "does not match its manifest" if not (result.rejudged and result.digest_ok and not (
        result.changed or result.missing or result.extra)) else "holds observations that contradict its verdict"
    print(f"TAMPERED: {bundle} {what}", file=sys.stderr)
    return 1


def cmd_verdict(args: argparse.Namespace) -> int:
    bundle = Path(args.bundle)
    gates_path = bundle / "gates.json"
    if not gates_path.is_file():
        raise HarnessError(f"{bundle} has no gates.json: not a certification bundle")
    gates = json.loads(gates_path.read_text(encoding="utf-8"))
    if args.json:
        print(json.dumps(gates, indent=2, sort_keys=True))
    else:
        for line in report.summary_table(gates, bundle):
            print(line)
    return EXIT_VERDICT.get(gates["verdict"], 1)


def cmd_handles(args: argparse.Namespace) -> int:
    handles = handles_mod.load(args.file)
    print(f"OK: {args.file} (profile {handles.profile}, digest {handles.digest[:16]}…)")
    return 0


def parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(prog="spine-certify", description=__doc__)
    sub = p.add_subparsers(dest="command", required=True)
    up = sub.add_parser("up", help="start the embedded substrate (moto, Tansu, PostgreSQL) and print endpoints")
    up.add_argument("--handles", default=None, help="handles registry (default infra/handles/embedded.yaml)")
    up.set_defaults(func=cmd_up)
    sub.add_parser("down", help="stop what `up` started").set_defaults(func=cmd_down)
    verify = sub.add_parser("verify", help="recompute a bundle's digests, judge its recorded observations again "
                                          "offline and recompute the verdict, and compare with its S3 mirror")
    verify.add_argument("bundle", help="reports/certifications/<cert_id>")
    verify.add_argument("--local-only", action="store_true", help="do not contact the S3 mirror")
    verify.set_defaults(func=cmd_verify)
    verdict = sub.add_parser("verdict", help="print a bundle's verdict and gate ledger "
                                            "(exit 0 CERTIFIED, 1 FAILED, 2 INCOMPLETE, "
                                            "3 ERROR: the harness could not judge)")
    verdict.add_argument("bundle")
    verdict.add_argument("--json", action="store_true", help="print gates.json as is")
    verdict.set_defaults(func=cmd_verdict)
    check = sub.add_parser("handles", help="validate a handles registry file")
    check.add_argument("file")
    check.set_defaults(func=cmd_handles)
    return p


def main(argv: list[str] | None = None) -> int:
    args = parser().parse_args(argv)
    try:
        return int(args.func(args))
    except HarnessError as exc:
        print(f"spine-certify {args.command}: {exc}", file=sys.stderr)
        return 2 if args.command != "verify" else 1
    except KeyboardInterrupt:
        return 130


if __name__ == "__main__":
    sys.exit(main())
