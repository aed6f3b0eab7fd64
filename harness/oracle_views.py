"""The harness's own reading of the Oracle stream views: order, rows, keys and content_hash against the source."""

from __future__ import annotations

import hashlib
import json
from typing import Any

import pyarrow as pa
import pyarrow.compute as pc
import pyarrow.parquet as pq

from harness.aws import AwsSession, s3
from harness.errors import Finding

# The contract's outputs (docs/platform-contract.md §4) and the column that identifies a row of each.
# Sort keys are not pinned here: they come from the Data Engine's `_manifest.json`, the upstream authority.
IDENTITY = {"card_transactions": "event_id", "merchant_profiles": "merchant_id", "card_profiles": "card_id"}
MANIFEST = "_manifest.json"
_SAMPLE = 5
_UNREADABLE = (pa.ArrowException, ValueError, OSError)


class _Sha256Sink:
    """A write-only file that hashes what the IPC writer gives it (the stream is never held whole)."""

    def __init__(self) -> None:
        self.digest = hashlib.sha256()
        self.closed = False

    def write(self, data: bytes) -> int:
        self.digest.update(data)
        return len(data)

    def flush(self) -> None:
        pass

    def close(self) -> None:
        self.closed = True


def content_hash(table: pa.Table) -> str:
    """The contract's content_hash of ``table`` with its rows as they stand (the caller decides the order).

    sha256 of the uncompressed Arrow IPC stream, schema metadata dropped, the rows as one record batch.
    """
    table = table.replace_schema_metadata(None).combine_chunks()
    sink = _Sha256Sink()
    with pa.ipc.new_stream(sink, table.schema, options=pa.ipc.IpcWriteOptions(compression=None)) as writer:
        for batch in table.to_batches():  # one batch after combine_chunks (none for zero rows)
            writer.write_batch(batch)
    return sink.digest.hexdigest()


def first_out_of_order(table: pa.Table, sort_key: list[str]) -> int | None:
    """Index i of the first row that sorts after row i+1 on ``sort_key`` (lexicographic, ascending), or None."""
    rows = table.num_rows
    if rows < 2:
        return None
    in_order: Any = None
    for column in reversed(sort_key):  # row i <= row i+1 iff a < b, or a == b and the later columns are in order
        values = table.column(column).combine_chunks()
        left, right = values.slice(0, rows - 1), values.slice(1)
        if in_order is None:
            in_order = pc.less_equal(left, right)
        else:
            in_order = pc.or_(pc.less(left, right), pc.and_(pc.equal(left, right), in_order))
    bad = pc.indices_nonzero(pc.invert(pc.fill_null(in_order, False)))
    return int(bad[0].as_py()) if len(bad) else None


def _sample(values: pa.Array) -> list[str]:
    return [str(v) for v in pc.take(values, pc.array_sort_indices(values)).slice(0, _SAMPLE).to_pylist()]


def _get(aws: AwsSession, url: str) -> bytes | None:
    bucket, key = s3.split_url(url)
    return s3.get_optional(aws, bucket=bucket, key=key)


def _parse(data: bytes | None) -> Any:
    try:
        return None if data is None else json.loads(data)
    except ValueError:
        return {"unreadable_bytes": len(data or b"")}


def _json(aws: AwsSession, url: str) -> Any:
    return _parse(_get(aws, url))


def _read(aws: AwsSession, url: str, seen: dict[str, Any]) -> pa.Table | None:
    """The Parquet object at ``url``; what was seen (sha256, rows, or why not) goes into ``seen``."""
    data = _get(aws, url)
    seen["object"] = url
    if data is None:
        seen.update(sha256=None, problem="does not exist")
        return None
    seen.update(sha256=hashlib.sha256(data).hexdigest(), size=len(data))
    try:
        table = pq.read_table(pa.BufferReader(data))
    except _UNREADABLE as exc:
        seen["problem"] = f"is not readable Parquet: {exc}"
        return None
    seen["rows"] = table.num_rows
    return table


def _concat(tables: list[pa.Table | None], seen: dict[str, Any], what: str) -> pa.Table | None:
    if not tables or any(t is None for t in tables):
        return None
    try:
        return pa.concat_tables([t.replace_schema_metadata(None) for t in tables if t is not None])
    except _UNREADABLE as exc:
        seen.setdefault("problems", []).append(f"{what} objects do not share one schema: {exc}")
        return None


def _obj(value: Any) -> dict[str, Any]:
    """A JSON object read from the platform, or {} when it is absent or something else."""
    return value if isinstance(value, dict) else {}


def _claims(evidence: dict[str, Any], name: str) -> dict[str, Any]:
    """What the platform says about ``name``, to set beside what the harness observed."""
    view, receipt = _obj(evidence["stream_view"].get(name)), _obj(evidence["sort_receipts"].get(name))
    checker = _obj(_obj(_obj(evidence["checker"]).get("outputs")).get(name))
    raw_files = view.get("files")
    files = [_obj(f) for f in raw_files] if isinstance(raw_files, list) else []
    return {
        "stream_view_manifest": {k: view.get(k) for k in ("row_count", "content_hash", "sort_key")},
        "stream_view_files": {f["key"]: f.get("sha256") for f in files if isinstance(f.get("key"), str)},
        "sort_receipt": {k: receipt.get(k) for k in ("row_count", "content_hash", "sort_key")},
        "checker_receipt": {"verdict": checker.get("verdict"),
                            "content_hash": _obj(checker.get("observed")).get("content_hash")},
        "pass_marker": {"content_hash": _obj(_obj(evidence["pass"]).get("content_hashes")).get(name)},
    }


def _observe_output(aws: AwsSession, name: str, entry: dict[str, Any], roots: dict[str, str],
                    listed: list[str], claims: dict[str, Any]) -> dict[str, Any]:
    identity, sort_key = IDENTITY.get(name), entry.get("sort_key")
    seen: dict[str, Any] = {
        "identity": identity, "sort_key": sort_key, "claims": claims,
        "manifest": {"row_count": entry.get("row_count"), "content_hash": entry.get("content_hash")},
    }
    files = [f for f in entry.get("files") or [] if isinstance(f, dict)]
    seen["source_files"] = [{"manifest_sha256": f.get("sha256"), "manifest_rows": f.get("rows")} for f in files]
    source = _concat([_read(aws, roots["source"] + str(f.get("key")), s)
                      for f, s in zip(files, seen["source_files"], strict=True)], seen, "source")
    named = claims["stream_view_files"]
    keys = sorted({*named, *listed})
    urls = [roots["oracle_root"] + key for key in keys]
    seen["view_objects"] = [{"listed": key in listed, "in_stream_view_manifest": key in named,
                             "claimed_sha256": named.get(key)} for key in keys]
    view = _concat([_read(aws, u, s) for u, s in zip(urls, seen["view_objects"], strict=True)], seen, "view")
    if source is not None:
        seen["source"] = {"row_count": source.num_rows, "schema": str(source.schema)}
        if isinstance(sort_key, list) and all(c in source.column_names for c in sort_key):
            seen["source"]["content_hash"] = content_hash(source.sort_by([(c, "ascending") for c in sort_key]))
    if view is None:
        return seen
    observed: dict[str, Any] = {"row_count": view.num_rows, "content_hash": content_hash(view),
                                "schema_equals_source": source is not None and view.schema.equals(source.schema)}
    seen["view"] = observed
    if isinstance(sort_key, list) and all(c in view.column_names for c in sort_key):
        first = first_out_of_order(view, sort_key)
        observed["sorted"] = first is None
        if first is not None:
            ends = [sum(o["rows"] for o in seen["view_objects"][: i + 1]) for i in range(len(urls))]
            observed["out_of_order"] = {
                "rows": [first, first + 1], "object": urls[next(i for i, end in enumerate(ends) if first + 1 < end)],
                "values": [[str(view.column(c)[r].as_py()) for c in sort_key] for r in (first, first + 1)]}
    if identity in view.column_names:
        ids = view.column(identity).combine_chunks()
        counts = pc.value_counts(ids)
        repeated = pc.filter(counts.field("values"), pc.greater(counts.field("counts"), 1))
        observed["duplicate_keys"] = {"count": len(repeated), "sample": _sample(repeated)}
        if source is not None and identity in source.column_names:
            truth = source.column(identity).combine_chunks()
            missing = pc.filter(truth, pc.invert(pc.is_in(truth, value_set=ids)))
            extra = pc.filter(ids, pc.invert(pc.is_in(ids, value_set=truth)))
            observed["key_set_equal"] = len(missing) == 0 and len(extra) == 0
            observed["missing_keys"] = {"count": len(missing), "sample": _sample(missing)}
            observed["extra_keys"] = {"count": len(extra), "sample": _sample(extra)}
    return seen


def observe(aws: AwsSession, *, source: str, oracle_root: str, evidence_root: str) -> dict[str, Any]:
    """Read the source manifest and files, every stream view object and the platform's claims; judge nothing.

    A view is found both ways: the objects its stream_view manifest names and a listing of ``stream_view/``.
    Its objects are read in key order as one table.
    """
    raw = _get(aws, source + MANIFEST)
    in_manifest = _obj(_obj(_parse(raw)).get("outputs"))
    bucket, prefix = s3.split_url(oracle_root + "stream_view/")
    listed: dict[str, list[str]] = {}
    for key in s3.list_keys(aws, bucket=bucket, prefix=prefix):
        relative = "stream_view/" + key[len(prefix):]
        listed.setdefault(relative.split("/")[1], []).append(relative)
    names = sorted({*IDENTITY, *listed})
    evidence = {
        "stream_view": {n: _json(aws, f"{evidence_root}oracle/stream_view/{n}.json") for n in names},
        "sort_receipts": {n: _json(aws, f"{evidence_root}oracle/sort_receipts/{n}.json") for n in names},
        "checker": _json(aws, f"{evidence_root}oracle/checker_receipt.json"),
        "pass": _json(aws, f"{evidence_root}oracle/_PASS"),
    }
    roots = {"source": source, "oracle_root": oracle_root, "evidence_root": evidence_root}
    outputs = {}
    for name in names:
        outputs[name] = _observe_output(aws, name, _obj(in_manifest.get(name)), roots, sorted(listed.get(name, [])),
                                        _claims(evidence, name))
        outputs[name]["in_source_manifest"] = isinstance(in_manifest.get(name), dict)
    return {
        **roots,
        "source_manifest": {"object": source + MANIFEST, "outputs": sorted(in_manifest),
                            "sha256": None if raw is None else hashlib.sha256(raw).hexdigest()},
        "checker_verdict": _obj(evidence["checker"]).get("verdict"),
        "pass_marker": evidence["pass"] is not None,
        "outputs": outputs,
    }


def _judge(name: str, seen: dict[str, Any], observation: dict[str, Any]) -> list[str]:
    """Every disagreement of one output, each naming the output and the object it is about."""
    objects = [o["object"] for o in seen["view_objects"]]
    where = ", ".join(objects) or f"{observation['oracle_root']}stream_view/{name}/"
    manifest, src, claims = seen["manifest"], seen.get("source") or {}, seen["claims"]
    problems = [f"{where}: {p}" for p in seen.get("problems", [])]
    if name not in IDENTITY:
        return [f"{where}: a stream view of an output the contract does not have", *problems]
    if not seen["in_source_manifest"]:
        problems.append(f"the source manifest {observation['source_manifest']['object']} has no entry for it")
    for f in seen["source_files"]:
        if "problem" in f:
            problems.append(f"source object {f['object']} {f['problem']}")
        elif (f["sha256"], f["rows"]) != (f["manifest_sha256"], f["manifest_rows"]):
            problems.append(f"source object {f['object']} has sha256 {f['sha256']} and {f['rows']} rows; the source "
                            f"manifest records {f['manifest_sha256']} and {f['manifest_rows']}")
    if src and src.get("content_hash") != manifest["content_hash"]:
        problems.append(f"the source files recompute to content_hash {src.get('content_hash')}; the source manifest "
                        f"says {manifest['content_hash']}")
    if not objects:
        problems.append(f"no stream view object under {where}")
    for o in seen["view_objects"]:
        if "problem" in o:
            problems.append(f"stream view object {o['object']} {o['problem']}")
        if not o["in_stream_view_manifest"]:
            problems.append(f"stream view object {o['object']} is not named by the stream_view manifest")
        elif o["sha256"] is not None and o["sha256"] != o["claimed_sha256"]:
            problems.append(f"stream view object {o['object']} has sha256 {o['sha256']}; the stream_view manifest "
                            f"claims {o['claimed_sha256']}")
    view = seen.get("view")
    if view is not None:
        if not view["schema_equals_source"]:
            problems.append(f"{where}: the schema differs from the source files' ({src.get('schema')})")
        if "sorted" not in view:
            problems.append(f"{where}: the source manifest's sort_key {seen['sort_key']} is not among its columns")
        elif not view["sorted"]:
            ooo = view["out_of_order"]
            problems.append(f"{ooo['object']}: rows {ooo['rows'][0]} and {ooo['rows'][1]} are not in "
                            f"{seen['sort_key']} order: {ooo['values'][0]} then {ooo['values'][1]}")
        if not view["row_count"] == manifest["row_count"] == src.get("row_count"):
            problems.append(f"{where}: {view['row_count']} rows; the source manifest says {manifest['row_count']}, "
                            f"the source files hold {src.get('row_count')}")
        dupes, missing, extra = view.get("duplicate_keys"), view.get("missing_keys"), view.get("extra_keys")
        if dupes is None:
            problems.append(f"{where}: no {seen['identity']} column")
        elif dupes["count"]:
            problems.append(f"{where}: {dupes['count']} {seen['identity']} value(s) occur more than once, "
                            f"e.g. {dupes['sample']}")
        if view.get("key_set_equal") is False and missing is not None and extra is not None:
            problems.append(f"{where}: its {seen['identity']} set differs from the source files': {missing['count']} "
                            f"missing (e.g. {missing['sample']}), {extra['count']} not in the source "
                            f"(e.g. {extra['sample']})")
        if view["content_hash"] != manifest["content_hash"]:
            problems.append(f"{where}: recomputed content_hash {view['content_hash']}; the source manifest says "
                            f"{manifest['content_hash']}")
        observed = {"row_count": view["row_count"], "content_hash": view["content_hash"], "sort_key": seen["sort_key"]}
        for claim in ("stream_view_manifest", "sort_receipt", "checker_receipt", "pass_marker"):
            problems += [f"the platform's {claim} claims {field} {value}; the harness observed {observed[field]}"
                         for field, value in claims[claim].items()
                         if field in observed and value is not None and value != observed[field]]
    if problems and claims["checker_receipt"]["verdict"] == "PASS":
        problems.append("yet the platform's checker receipt says PASS for it")
    return [f"{name}: {p}" for p in problems]


def check(observation: dict[str, Any]) -> None:
    """Judge a recorded observation (also offline, from recomputed.json); a Finding names each output and object."""
    problems = [] if observation["source_manifest"]["sha256"] else [
        f"the source manifest {observation['source_manifest']['object']} does not exist"]
    for name, seen in sorted(observation["outputs"].items()):
        problems += _judge(name, seen, observation)
    if problems:
        raise Finding("P3.recompute", problems)
