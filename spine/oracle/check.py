"""oracle-check: close every output (no dupes, no drops, counts, content hashes) and give the lane its verdict."""

from __future__ import annotations

import hashlib
from typing import Any

import numpy as np
import pyarrow as pa
import pyarrow.compute as pc

from spine import canonical, dataset, evidence, log, s3
from spine.errors import SpineError
from spine.oracle import landed
from spine.oracle import manifest as manifests
from spine.runscope import RunScope

RECEIPT = "oracle/checker_receipt.json"
PASS = "oracle/_PASS"
_SAMPLE = 5


class _Findings:
    """Checks in the order they ran: what was observed first, the judgement next to it."""

    def __init__(self) -> None:
        self.checks: list[dict[str, Any]] = []

    def record(self, check: str, ok: bool, detail: str = "", **observed: Any) -> bool:
        entry: dict[str, Any] = {"check": check, "ok": ok, "detail": detail}
        if observed:
            entry["observed"] = observed
        self.checks.append(entry)
        return ok

    def skip(self, checks: tuple[str, ...], reason: str) -> None:
        for check in checks:
            self.record(check, False, f"not checked: {reason}")

    @property
    def ok(self) -> bool:
        return all(c["ok"] for c in self.checks)

    def failures(self, prefix: str) -> list[str]:
        return [f"{prefix}{c['check']}: {c['detail']}" for c in self.checks if not c["ok"]]


_VIEW_CHECKS = ("stream_view_sha256", "schema", "row_count", "sorted", "no_duplicates", "no_drops", "content_hash")


def _landed_keys(root: s3.Location, entry: manifests.Output, key: str, found: _Findings) -> pa.Array | None:
    """The landed source's key column, when every landed file is present and intact."""
    problems, columns = [], []
    for f in entry.files:
        try:
            data = landed.read_file(root, f)
            columns.append(dataset.read_parquet(data, where=root.url(f.key), columns=[key]).column(key))
        except SpineError as exc:
            problems.append(str(exc))
    found.record("landed_files", not problems, "; ".join(problems), files=len(entry.files))
    if problems:
        return None
    return pa.chunked_array(columns, type=pa.string()).combine_chunks()


def _sample(values: pa.Array) -> list[Any]:
    return values.slice(0, _SAMPLE).to_pylist()


def _close_view(view: pa.Table, pinned: dataset.Output, entry: manifests.Output, receipt: dict[str, Any],
                source_keys: pa.Array | None, found: _Findings) -> dict[str, Any]:
    rows = view.num_rows
    found.record("row_count", rows == entry.row_count == receipt.get("row_count"),
                 f"stream view {rows}, manifest {entry.row_count}, sort receipt {receipt.get('row_count')}",
                 stream_view=rows, manifest=entry.row_count, sort_receipt=receipt.get("row_count"))
    order = pc.sort_indices(view, sort_keys=[(c, "ascending") for c in pinned.sort_key]).to_numpy()
    in_order = bool(np.array_equal(order, np.arange(rows)))
    found.record("sorted", in_order, "" if in_order else f"rows are not in {list(pinned.sort_key)} order")
    del order
    keys = view.column(pinned.key).combine_chunks()
    counts = pc.value_counts(keys)
    repeated = pc.filter(counts.field("values"), pc.greater(counts.field("counts"), 1))
    found.record("no_duplicates", len(repeated) == 0,
                 f"{len(repeated)} {pinned.key} value(s) occur more than once, e.g. {_sample(repeated)}"
                 if len(repeated) else "", distinct=len(counts))
    del counts
    if source_keys is None:
        found.record("no_drops", False, "not checked: the landed key set is unavailable")
    else:
        dropped = pc.filter(source_keys, pc.invert(pc.is_in(source_keys, value_set=keys)))
        added = pc.filter(keys, pc.invert(pc.is_in(keys, value_set=source_keys)))
        found.record("no_drops", len(dropped) == 0 and len(added) == 0,
                     f"{len(dropped)} landed {pinned.key}(s) missing from the stream view (e.g. {_sample(dropped)}), "
                     f"{len(added)} not in the landed source (e.g. {_sample(added)})" if len(dropped) or len(added)
                     else "", missing=len(dropped), extra=len(added))
    recomputed = dataset.content_hash(view)
    found.record("content_hash", recomputed == receipt.get("content_hash") == entry.content_hash,
                 f"recomputed {recomputed}, sort receipt {receipt.get('content_hash')}, manifest {entry.content_hash}",
                 recomputed=recomputed, sort_receipt=receipt.get("content_hash"), manifest=entry.content_hash)
    return {"row_count": rows, "content_hash": recomputed}


def _close(scope: RunScope, root: s3.Location, manifest: manifests.Manifest, name: str) -> dict[str, Any]:
    pinned = dataset.OUTPUTS[name]
    found = _Findings()
    observed: dict[str, Any] = {}
    entry = manifest.outputs.get(name)
    if entry is None:
        found.record("manifest_entry", False, f"output {name} is missing from the landed manifest")
        found.skip(("landed_files", "stream_view_present", *_VIEW_CHECKS), "no manifest entry")
        return {"verdict": "FAIL", "checks": found.checks, "observed": observed}
    problem = entry.policy_problem()
    found.record("manifest_entry", problem is None, problem or "", row_count=entry.row_count,
                 content_hash=entry.content_hash, files=len(entry.files))
    source_keys = _landed_keys(root, entry, pinned.key, found)

    view_key = landed.STREAM_VIEW.format(output=name)
    view_record = evidence.get_json(scope.evidence, landed.STREAM_VIEW_EVIDENCE.format(output=name))
    receipt = evidence.get_json(scope.evidence, landed.SORT_RECEIPT.format(output=name))
    data = s3.get_optional(root.bucket, root.key(view_key))
    absent = [what for what, got in ((root.url(view_key), data),
                                     (scope.evidence.url(landed.STREAM_VIEW_EVIDENCE.format(output=name)), view_record),
                                     (scope.evidence.url(landed.SORT_RECEIPT.format(output=name)), receipt))
              if got is None]
    if not found.record("stream_view_present", not absent, f"missing: {', '.join(absent)}" if absent else ""):
        found.skip(_VIEW_CHECKS, "stream view incomplete")
        return {"verdict": "FAIL", "checks": found.checks, "observed": observed}
    assert data is not None and view_record is not None and receipt is not None
    actual = hashlib.sha256(data).hexdigest()
    recorded = [f.get("sha256") for f in view_record.get("files", []) if f.get("key") == view_key]
    observed["stream_view_sha256"] = actual
    in_receipt = (receipt.get("stream_view") or {}).get("sha256")
    found.record("stream_view_sha256", recorded == [actual] and in_receipt == actual,
                 f"stream view object {actual}, stream_view manifest {recorded}, sort receipt {in_receipt}")
    try:
        view = dataset.read_parquet(data, where=root.url(view_key))
    except SpineError as exc:
        found.skip(_VIEW_CHECKS[1:], str(exc))
        return {"verdict": "FAIL", "checks": found.checks, "observed": observed}
    del data
    problem = pinned.schema_problem(view)
    if not found.record("schema", problem is None, problem or ""):
        found.skip(_VIEW_CHECKS[2:], "schema differs")
        return {"verdict": "FAIL", "checks": found.checks, "observed": observed}
    observed.update(_close_view(view, pinned, entry, receipt, source_keys, found))
    return {"verdict": "PASS" if found.ok else "FAIL", "checks": found.checks, "observed": observed}


def run(scope: RunScope) -> None:
    root = landed.oracle_root(scope)
    lane = _Findings()
    manifest: manifests.Manifest | None = None
    try:
        manifest = landed.load_manifest(scope, root)
        lane.record("landing", True, "", manifest_sha256=manifest.sha256)
    except SpineError as exc:
        lane.record("landing", False, str(exc))
    outputs: dict[str, Any] = {}
    for name in dataset.OUTPUTS:
        if manifest is None:
            found = _Findings()
            found.skip(("manifest_entry",), "the landed manifest is not trusted")
            outputs[name] = {"verdict": "FAIL", "checks": found.checks, "observed": {}}
        else:
            try:
                outputs[name] = _close(scope, root, manifest, name)
            except SpineError as exc:  # e.g. unreadable evidence: a failed closure, still in the receipt
                found = _Findings()
                found.record("closure", False, str(exc))
                outputs[name] = {"verdict": "FAIL", "checks": found.checks, "observed": {}}
        log.info("closed", output=name, verdict=outputs[name]["verdict"])
    failures = lane.failures("lane: ") + [
        f"{name}: {c['check']}: {c['detail']}" for name, o in outputs.items() for c in o["checks"] if not c["ok"]
    ]
    verdict = "PASS" if not failures else "FAIL"
    receipt = {
        "verdict": verdict,
        "platform_run_id": scope.platform_run_id,
        "scenario_run_id": scope.scenario_run_id,
        "oracle_root": root.url(),
        "required_outputs": list(dataset.OUTPUTS),
        "lane": lane.checks,
        "outputs": outputs,
        "failures": failures,
    }
    evidence.put_json(scope.evidence, RECEIPT, receipt)
    if failures:
        raise SpineError(f"FAIL: {len(failures)} failed check(s); first: {failures[0]}")
    evidence.put_json(scope.evidence, PASS, {
        "verdict": "PASS",
        "platform_run_id": scope.platform_run_id,
        "scenario_run_id": scope.scenario_run_id,
        "checker_receipt_sha256": canonical.sha256(canonical.dumps(receipt)),
        "content_hashes": {name: o["observed"]["content_hash"] for name, o in outputs.items()},
    })
    log.info("verdict", verdict=verdict)
