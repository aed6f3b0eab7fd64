"""The Data Engine: deterministic bytes, the contract's manifest, findable fraud, write-once output."""

from __future__ import annotations

import hashlib
import io
import json
from pathlib import Path

import numpy as np
import pyarrow as pa
import pyarrow.compute as pc
import pyarrow.parquet as pq
import pytest
from spine_lane import Lane, run

from spine import dataset
from spine.engine import generate, render
from spine.engine.generate import US_PER_DAY, day_start_us, sizes

MINUTE_US = 60_000_000


def _render(seed: int, events: int, **kwargs: int) -> dict[str, bytes]:
    return render(generate(seed, events), seed=seed, events=events, scenario_run_id="scn", **kwargs).files


def test_same_seed_gives_identical_bytes_and_another_seed_other_hashes() -> None:
    first, again, other = _render(11, 2_000), _render(11, 2_000), _render(12, 2_000)
    assert first == again
    hashes = {n: o["content_hash"] for n, o in json.loads(first["_manifest.json"])["outputs"].items()}
    other_hashes = {n: o["content_hash"] for n, o in json.loads(other["_manifest.json"])["outputs"].items()}
    assert set(hashes) == set(other_hashes) == set(dataset.OUTPUTS)
    assert all(hashes[name] != other_hashes[name] for name in hashes)


def test_the_cli_writes_identical_files_for_the_same_seed(tmp_path: Path) -> None:
    outs = [tmp_path / "a" / "scn-x", tmp_path / "b" / "scn-x"]
    for out in outs:
        proc = run(["-m", "spine.engine", "--seed", "3", "--events", "500", "--out", str(out)], {"PATH": "/usr/bin"})
        assert proc.returncode == 0, proc.stderr
    files = [{p.relative_to(out): p.read_bytes() for p in sorted(out.rglob("*")) if p.is_file()} for out in outs]
    assert files[0] == files[1]
    assert len(files[0]) >= 5
    manifest = json.loads(files[0][Path("_manifest.json")])
    assert manifest["scenario_run_id"] == "scn-x"  # the last folder of --out
    assert {f["key"] for o in manifest["outputs"].values() for f in o["files"]} | {"_manifest.json"} == {
        str(p) for p in files[0]}


def test_the_manifest_describes_every_file() -> None:
    files = _render(5, 1_000, part_rows=300)
    manifest = json.loads(files["_manifest.json"])
    assert set(manifest) == {"engine", "seed", "events", "scenario_run_id", "outputs"}
    assert (manifest["seed"], manifest["events"], manifest["scenario_run_id"]) == (5, 1_000, "scn")
    for name, output in manifest["outputs"].items():
        pinned = dataset.OUTPUTS[name]
        assert output["ts_utc"] is pinned.ts_utc and output["sort_key"] == list(pinned.sort_key)
        tables = []
        for f in output["files"]:
            data = files[f["key"]]
            assert f["key"].startswith(f"{name}/part-") and f["key"].endswith(".parquet")
            assert (f["sha256"], f["size"]) == (hashlib.sha256(data).hexdigest(), len(data))
            tables.append(pq.read_table(io.BytesIO(data)))
            assert tables[-1].num_rows == f["rows"]
        table = pa.concat_tables(tables)
        assert table.num_rows == output["row_count"]
        assert pinned.schema_problem(table) is None
        assert dataset.content_hash(pinned.sort(table)) == output["content_hash"]
    assert len(manifest["outputs"]["card_transactions"]["files"]) == 4


def test_the_content_hash_does_not_depend_on_how_rows_are_split() -> None:
    small, large = (json.loads(_render(9, 900, part_rows=rows)["_manifest.json"]) for rows in (100, 10_000))
    for name in dataset.OUTPUTS:
        assert small["outputs"][name]["content_hash"] == large["outputs"][name]["content_hash"]
    assert len(small["outputs"]["card_transactions"]["files"]) == 9
    assert len(large["outputs"]["card_transactions"]["files"]) == 2


@pytest.mark.parametrize("events", [2, 3, 7])
def test_transactions_span_two_parts_or_more(events: int) -> None:
    outputs = json.loads(_render(1, events)["_manifest.json"])["outputs"]
    files = outputs["card_transactions"]["files"]
    assert len(files) >= 2 and all(f["rows"] >= 1 for f in files)
    assert outputs["merchant_profiles"]["row_count"] >= 3 and outputs["card_profiles"]["row_count"] >= 3


def test_columns_ids_and_the_synthetic_day() -> None:
    tables = generate(42, 5_000)
    ct, cards, merchants = tables["card_transactions"], tables["card_profiles"], tables["merchant_profiles"]
    for name, table in tables.items():
        assert dataset.OUTPUTS[name].schema_problem(table) is None
        key = dataset.OUTPUTS[name].key
        assert pc.count_distinct(table.column(key)).as_py() == table.num_rows
    assert ct.schema.field("ts_utc").type == pa.timestamp("us", tz="UTC")
    ts = ct.column("ts_utc").cast(pa.int64()).to_numpy()
    assert day_start_us(42) <= ts.min() and ts.max() < day_start_us(42) + US_PER_DAY
    assert day_start_us(42) != day_start_us(43)
    assert pc.all(pc.is_in(ct.column("card_id"), value_set=cards.column("card_id"))).as_py()
    assert pc.all(pc.is_in(ct.column("merchant_id"), value_set=merchants.column("merchant_id"))).as_py()
    assert (ct.column("amount_minor").to_numpy() > 0).all()
    assert set(pc.unique(ct.column("fraud_pattern")).to_pylist()) == set(dataset.FRAUD_PATTERNS)


def test_profiles_grow_sublinearly() -> None:
    (cards_small, merchants_small), (cards_big, merchants_big) = sizes(20), sizes(1_000_000)
    assert cards_small >= 8 and merchants_small >= 5
    assert cards_big < 200_000 and merchants_big < 5_000
    assert cards_big / cards_small < 1_000_000 / 20


def test_fraud_patterns_are_findable_by_rules() -> None:
    ct = generate(8, 20_000)["card_transactions"]
    rows = ct.to_pydict()
    share = np.mean([p != "" for p in rows["fraud_pattern"]])
    assert 0.01 <= share <= 0.06

    by_card: dict[tuple[str, str], list[int]] = {}
    for i, pattern in enumerate(rows["fraud_pattern"]):
        if pattern in ("card_testing", "velocity_burst"):
            by_card.setdefault((pattern, rows["card_id"][i]), []).append(i)
    assert {p for p, _ in by_card} == {"card_testing", "velocity_burst"}
    ts = ct.column("ts_utc").cast(pa.int64()).to_numpy()
    for (pattern, _card), members in by_card.items():
        span = ts[members].max() - ts[members].min()
        if pattern == "card_testing":
            assert len(members) >= 5 and span <= 10 * MINUTE_US * len(members) // 5
            assert all(rows["amount_minor"][i] < 300 and rows["channel"][i] == "ecom" for i in members)
        else:
            assert len(members) >= 4 and span <= 15 * MINUTE_US * len(members) // 4

    normal_merchants = {m for m, p in zip(rows["merchant_id"], rows["fraud_pattern"], strict=True) if p == ""}
    high = [i for i, p in enumerate(rows["fraud_pattern"]) if p == "high_value_new_merchant"]
    assert high
    typical = float(np.median([a for a, p in zip(rows["amount_minor"], rows["fraud_pattern"], strict=True) if not p]))
    for i in high:
        assert rows["amount_minor"][i] >= 150_000 > 20 * typical
        assert rows["merchant_id"][i] not in normal_merchants


@pytest.mark.substrate
def test_the_engine_writes_s3_once(lane: Lane) -> None:
    assert lane.engine().returncode == 0
    first = {key: lane.get(lane.source + key) for key in ["_manifest.json"]}
    assert lane.engine().returncode == 0  # the same bytes again: accepted
    assert lane.get(lane.source + "_manifest.json") == first["_manifest.json"]
    other = run(["-m", "spine.engine", "--seed", "99", "--events", str(lane.events), "--out", lane.source],
                lane.aws_env())
    assert other.returncode == 1
    assert "already exists with other bytes" in other.stderr
    assert lane.get(lane.source + "_manifest.json") == first["_manifest.json"]


@pytest.mark.substrate
def test_the_engine_writes_the_same_bytes_to_s3_as_locally(lane: Lane, tmp_path: Path) -> None:
    assert lane.engine("--scenario-run-id", lane.scenario).returncode == 0
    local = tmp_path / lane.scenario
    proc = run(["-m", "spine.engine", "--seed", str(lane.seed), "--events", str(lane.events), "--out", str(local)],
               {"PATH": "/usr/bin"})
    assert proc.returncode == 0, proc.stderr
    for path in local.rglob("*"):
        if path.is_file():
            assert lane.get(lane.source + str(path.relative_to(local))) == path.read_bytes()


@pytest.mark.parametrize("args", [["--seed", "1", "--events", "0", "--out", "x"], ["--seed", "-1", "--events", "5",
                                  "--out", "x"], ["--events", "5", "--out", "x"]])
def test_bad_engine_usage_exits_2(args: list[str]) -> None:
    assert run(["-m", "spine.engine", *args], {"PATH": "/usr/bin"}).returncode == 2


def test_the_content_hash_is_the_plain_ipc_stream_of_the_sorted_rows() -> None:
    """What an independent checker would compute from a stream view: read, one chunk, IPC stream, sha256."""
    files = _render(4, 700)
    manifest = json.loads(files["_manifest.json"])
    for name, output in manifest["outputs"].items():
        table = pa.concat_tables(pq.read_table(io.BytesIO(files[f["key"]])) for f in output["files"])
        table = dataset.OUTPUTS[name].sort(table).combine_chunks()
        sink = pa.BufferOutputStream()
        with pa.ipc.new_stream(sink, table.schema) as writer:
            writer.write_table(table)
        assert hashlib.sha256(sink.getvalue().to_pybytes()).hexdigest() == output["content_hash"]
