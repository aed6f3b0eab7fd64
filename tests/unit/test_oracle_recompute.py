"""The harness's own content_hash and order check agree with the Data Engine's manifest, independently written."""

from __future__ import annotations

import json
from datetime import UTC, datetime

import pyarrow as pa
import pyarrow.parquet as pq
import pytest

from harness import oracle_views
from spine.engine import generate, render  # the upstream only, to compare against; harness never imports it


@pytest.fixture(scope="module")
def engine() -> tuple[dict[str, pa.Table], dict[str, bytes]]:
    tables = generate(7, 120)
    return tables, render(tables, seed=7, events=120, scenario_run_id="scn", part_rows=50).files


def test_the_harness_recomputes_the_engine_manifest_content_hash_from_its_parquet_parts(engine) -> None:  # type: ignore[no-untyped-def]
    _tables, files = engine
    manifest = json.loads(files["_manifest.json"])
    for name, entry in manifest["outputs"].items():
        parts = [pq.read_table(pa.BufferReader(files[f["key"]])) for f in entry["files"]]
        table = pa.concat_tables(parts).sort_by([(c, "ascending") for c in entry["sort_key"]])
        assert oracle_views.content_hash(table) == entry["content_hash"], name
        chunked = pa.Table.from_batches(table.to_batches(max_chunksize=7))
        assert chunked.column(0).num_chunks > 1
        assert oracle_views.content_hash(chunked) == entry["content_hash"], f"{name} in chunks of 7 rows"
        assert oracle_views.first_out_of_order(table, entry["sort_key"]) is None


def test_the_content_hash_depends_on_row_order_and_values(engine) -> None:  # type: ignore[no-untyped-def]
    tables, _files = engine
    view = tables["merchant_profiles"].sort_by("merchant_id")
    reordered = view.take([1, 0, *range(2, view.num_rows)])
    assert oracle_views.content_hash(reordered) != oracle_views.content_hash(view)
    assert oracle_views.content_hash(view.slice(1)) != oracle_views.content_hash(view)


def _ts(second: int) -> datetime:
    return datetime(2026, 1, 5, 10, 0, second, tzinfo=UTC)


@pytest.mark.parametrize(("ts", "ids", "first"), [
    ([1, 2, 2, 3], ["b", "a", "c", "d"], None),  # ordered; a tie on ts_utc broken by event_id
    ([1, 2, 2, 3], ["b", "c", "a", "d"], 1),     # the tie's event_ids swapped
    ([1, 3, 2, 4], ["a", "b", "c", "d"], 1),     # ts_utc out of order, event_id in order
    ([1, 1, 1, 1], ["a", "a", "b", "c"], None),  # a repeated key is ordered (duplicates are judged apart)
    ([1], ["a"], None),
])
def test_first_out_of_order_compares_the_whole_sort_key(ts: list[int], ids: list[str], first: int | None) -> None:
    table = pa.table({"ts_utc": pa.array([_ts(s) for s in ts], pa.timestamp("us", tz="UTC")), "event_id": ids})
    assert oracle_views.first_out_of_order(table, ["ts_utc", "event_id"]) == first
