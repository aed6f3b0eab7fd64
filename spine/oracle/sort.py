"""oracle-sort: per output, one stream view sorted by the pinned key, with its manifest and a sort receipt."""

from __future__ import annotations

import hashlib

import pyarrow as pa

from spine import dataset, evidence, log, s3
from spine.errors import SpineError
from spine.oracle import landed
from spine.runscope import RunScope


def run(scope: RunScope) -> None:
    root = landed.oracle_root(scope)
    manifest = landed.load_manifest(scope, root)
    missing = manifest.missing_outputs()
    if missing:
        raise SpineError(f"landed manifest lacks required output{'s' if len(missing) > 1 else ''} {', '.join(missing)}")
    for name in dataset.OUTPUTS:
        problem = manifest.outputs[name].policy_problem()
        if problem:
            raise SpineError(f"output {name}: {problem}")
    # All input is verified before any view is written: a partial landing yields no view at all.
    parts = {name: [landed.read_file(root, f) for f in manifest.outputs[name].files] for name in dataset.OUTPUTS}
    log.info("input_verified", files=sum(len(p) for p in parts.values()))

    differing = []
    for name, pinned in dataset.OUTPUTS.items():
        entry = manifest.outputs[name]
        tables = []
        for f, data in zip(entry.files, parts.pop(name), strict=True):
            table = dataset.read_parquet(data, where=root.url(f.key))
            if table.num_rows != f.rows:
                raise SpineError(f"landed object {root.url(f.key)} holds {table.num_rows} rows; the manifest records "
                                 f"{f.rows}")
            problem = pinned.schema_problem(table)
            if problem:
                raise SpineError(f"landed object {root.url(f.key)}: {problem}")
            tables.append(table)
        view = pinned.sort(pa.concat_tables(tables))
        del tables
        data = dataset.to_parquet(view)
        content_hash = dataset.content_hash(view)
        key = landed.STREAM_VIEW.format(output=name)
        outcome = s3.put_once(root.bucket, root.key(key), data)
        view_file = {"key": key, "sha256": hashlib.sha256(data).hexdigest(), "size": len(data), "rows": view.num_rows}
        log.info("stream_view", output=name, rows=view.num_rows, content_hash=content_hash, outcome=outcome)
        common = {"output": name, "scenario_run_id": manifest.scenario_run_id, "oracle_root": root.url(),
                  "sort_key": list(pinned.sort_key), "row_count": view.num_rows, "content_hash": content_hash}
        evidence.put_json(scope.evidence, landed.STREAM_VIEW_EVIDENCE.format(output=name),
                          {**common, "ts_utc": pinned.ts_utc, "files": [view_file]})
        evidence.put_json(scope.evidence, landed.SORT_RECEIPT.format(output=name), {
            **common,
            "inputs": [f.to_json() for f in entry.files],
            "stream_view": view_file,
            "manifest_row_count": entry.row_count,
            "manifest_content_hash": entry.content_hash,
            "content_hash_matches_manifest": content_hash == entry.content_hash,
        })
        if content_hash != entry.content_hash:
            differing.append(name)
        del view, data
    if differing:
        raise SpineError(f"stream view content_hash differs from the manifest's for {', '.join(differing)}")
