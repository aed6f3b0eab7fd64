"""The Data Engine's `_manifest.json`, read strictly: a malformed or unsafe manifest is refused, never repaired."""

from __future__ import annotations

import hashlib
import json
import re
from dataclasses import dataclass
from typing import Any

from spine import dataset
from spine.errors import SpineError

NAME = "_manifest.json"
_PART = re.compile(r"^(?P<output>[a-z_]+)/part-\d{5}\.parquet$")
_SHA256 = re.compile(r"^[0-9a-f]{64}$")


@dataclass(frozen=True)
class File:
    key: str
    sha256: str
    size: int
    rows: int

    def to_json(self) -> dict[str, Any]:
        return {"key": self.key, "sha256": self.sha256, "size": self.size, "rows": self.rows}


@dataclass(frozen=True)
class Output:
    name: str
    ts_utc: bool
    sort_key: tuple[str, ...]
    row_count: int
    content_hash: str
    files: tuple[File, ...]

    def policy_problem(self) -> str | None:
        """Why this entry disagrees with the pinned sort policy of its output, or None."""
        pinned = dataset.OUTPUTS.get(self.name)
        if pinned is None:
            return None
        if self.ts_utc != pinned.ts_utc or self.sort_key != pinned.sort_key:
            return (f"manifest declares ts_utc={self.ts_utc} sort_key={list(self.sort_key)}; the pinned policy is "
                    f"ts_utc={pinned.ts_utc} sort_key={list(pinned.sort_key)}")
        return None


@dataclass(frozen=True)
class Manifest:
    sha256: str
    size: int
    engine: str
    seed: int
    events: int
    scenario_run_id: str
    outputs: dict[str, Output]

    def files(self) -> list[File]:
        return [f for output in self.outputs.values() for f in output.files]

    def missing_outputs(self) -> list[str]:
        return [name for name in dataset.OUTPUTS if name not in self.outputs]


def _need(cond: bool, where: str, what: str) -> None:
    if not cond:
        raise SpineError(f"manifest {where} refused: {what}")


def _int(value: Any) -> bool:
    return isinstance(value, int) and not isinstance(value, bool) and value >= 0


def _file(raw: Any, output: str, where: str) -> File:
    _need(isinstance(raw, dict), where, f"a file entry of {output} is not an object")
    key = raw.get("key")
    match = _PART.match(key) if isinstance(key, str) else None
    _need(match is not None and match["output"] == output, where,
          f"file key {key!r} is not {output}/part-NNNNN.parquet")
    _need(isinstance(raw.get("sha256"), str) and bool(_SHA256.match(raw["sha256"])), where, f"{key}: bad sha256")
    _need(_int(raw.get("size")) and _int(raw.get("rows")), where, f"{key}: size and rows must be integers >= 0")
    return File(key=key, sha256=raw["sha256"], size=raw["size"], rows=raw["rows"])


def parse(raw: bytes, *, where: str) -> Manifest:
    """Parse ``raw`` (read from ``where``); every field the lane relies on is checked."""
    try:
        doc = json.loads(raw)
    except ValueError as exc:
        raise SpineError(f"manifest {where} refused: not JSON: {exc}") from exc
    _need(isinstance(doc, dict), where, "not a JSON object")
    scenario = doc.get("scenario_run_id")
    _need(isinstance(scenario, str) and bool(scenario), where, "no scenario_run_id")
    _need(isinstance(doc.get("outputs"), dict), where, "no outputs")
    outputs: dict[str, Output] = {}
    for name, entry in doc["outputs"].items():
        _need(isinstance(entry, dict), where, f"output {name} is not an object")
        _need(isinstance(entry.get("files"), list), where, f"output {name} lists no files")
        files = tuple(_file(f, name, where) for f in entry["files"])
        _need(len({f.key for f in files}) == len(files), where, f"output {name} lists a file twice")
        sort_key = entry.get("sort_key")
        _need(isinstance(sort_key, list) and all(isinstance(c, str) for c in sort_key), where,
              f"output {name}: sort_key must be a list of column names")
        _need(isinstance(entry.get("ts_utc"), bool), where, f"output {name}: ts_utc must be true or false")
        _need(_int(entry.get("row_count")), where, f"output {name}: row_count must be an integer >= 0")
        content = entry.get("content_hash")
        _need(isinstance(content, str) and bool(_SHA256.match(content)), where, f"output {name}: bad content_hash")
        _need(sum(f.rows for f in files) == entry["row_count"], where,
              f"output {name}: its files hold {sum(f.rows for f in files)} rows, row_count says {entry['row_count']}")
        outputs[name] = Output(name=name, ts_utc=entry["ts_utc"], sort_key=tuple(sort_key),
                               row_count=entry["row_count"], content_hash=content, files=files)
    return Manifest(
        sha256=hashlib.sha256(raw).hexdigest(),
        size=len(raw),
        engine=str(doc.get("engine", "")),
        seed=int(doc.get("seed", -1)) if _int(doc.get("seed")) else -1,
        events=int(doc.get("events", -1)) if _int(doc.get("events")) else -1,
        scenario_run_id=scenario,
        outputs=outputs,
    )
