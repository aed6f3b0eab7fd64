"""Oracle truth as files: Parquet parts and `_manifest.json`, rendered in memory and written write-once."""

from __future__ import annotations

import hashlib
import math
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pyarrow as pa

from spine import canonical, dataset, log, s3
from spine.errors import Conflict

ENGINE = "spine.engine/1"
MANIFEST = "_manifest.json"
PART_ROWS = 250_000


@dataclass(frozen=True)
class Rendered:
    """Every file of one scenario (relative key → bytes, the manifest last) and the manifest itself."""

    files: dict[str, bytes]
    manifest: dict[str, Any]


def _part_sizes(rows: int, part_rows: int, *, at_least: int) -> list[int]:
    parts = max(math.ceil(rows / part_rows), min(at_least, rows), 1)
    base, extra = divmod(rows, parts)
    return [base + (1 if i < extra else 0) for i in range(parts)]


def render(tables: dict[str, pa.Table], *, seed: int, events: int, scenario_run_id: str,
           part_rows: int = PART_ROWS) -> Rendered:
    """Split each output into parts and describe them; no clock, no host: same tables, same bytes."""
    if part_rows < 1:
        raise ValueError(f"part_rows={part_rows!r} must be >= 1")
    files: dict[str, bytes] = {}
    outputs: dict[str, Any] = {}
    for name, output in dataset.OUTPUTS.items():
        table = tables[name]
        # Transactions always span two parts or more, so losing one object is a detectable drop.
        sizes = _part_sizes(table.num_rows, part_rows, at_least=2 if name == "card_transactions" else 1)
        described = []
        offset = 0
        for index, size in enumerate(sizes):
            data = dataset.to_parquet(table.slice(offset, size), row_group_rows=part_rows)
            key = f"{name}/part-{index:05d}.parquet"
            files[key] = data
            described.append({"key": key, "sha256": hashlib.sha256(data).hexdigest(), "size": len(data),
                              "rows": size})
            offset += size
        outputs[name] = {
            "ts_utc": output.ts_utc,
            "sort_key": list(output.sort_key),
            "row_count": table.num_rows,
            "content_hash": dataset.content_hash(output.sort(table)),
            "files": described,
        }
    manifest = {"engine": ENGINE, "seed": seed, "events": events, "scenario_run_id": scenario_run_id,
                "outputs": outputs}
    files[MANIFEST] = canonical.dumps(manifest)
    return Rendered(files=files, manifest=manifest)


def write(rendered: Rendered, out: str) -> None:
    """Write every file under ``out`` (``s3://bucket/prefix/`` or a local folder), manifest last.

    Write-once: a file already there with the same bytes is accepted, with other bytes refused.
    """
    if out.startswith("s3://"):
        root = s3.Location.parse(out, name="--out").root
        for key, data in rendered.files.items():
            outcome = s3.put_once(root.bucket, root.key(key), data)
            log.info("wrote", key=key, size=len(data), outcome=outcome)
        return
    folder = Path(out.removeprefix("file://"))
    for key, data in rendered.files.items():
        path = folder / key
        if path.exists():
            if path.read_bytes() != data:
                raise Conflict(f"{path} already exists with other bytes; it is write-once and is not overwritten")
            log.info("wrote", key=key, size=len(data), outcome="identical")
            continue
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_bytes(data)
        log.info("wrote", key=key, size=len(data), outcome="created")
