"""The Oracle lane end to end against moto: seed → sort → check PASS, and every fault fails closed."""

from __future__ import annotations

import hashlib
import io

import pyarrow as pa
import pyarrow.parquet as pq
import pytest
from spine_lane import Lane

from spine import dataset

pytestmark = pytest.mark.substrate

OUTPUTS = ("card_transactions", "merchant_profiles", "card_profiles")


def _failed(lane: Lane) -> dict[str, list[str]]:
    """Failed checks of the checker receipt, per output (and `lane`)."""
    receipt = lane.evidence("oracle/checker_receipt.json")
    failed = {"lane": [c["check"] for c in receipt["lane"] if not c["ok"]]}
    for name, output in receipt["outputs"].items():
        failed[name] = [c["check"] for c in output["checks"] if not c["ok"]]
    return failed


def _check_fails(lane: Lane) -> dict[str, list[str]]:
    proc = lane.spine("oracle-check")
    assert proc.returncode == 1, proc.stderr
    assert proc.stderr.startswith("oracle-check: FAIL:")
    assert lane.evidence("oracle/checker_receipt.json")["verdict"] == "FAIL"
    assert not lane.exists(lane.evidence_root + "oracle/_PASS")
    return _failed(lane)


def _table(data: bytes) -> pa.Table:
    return pq.read_table(io.BytesIO(data))


def _parquet(table: pa.Table) -> bytes:
    return dataset.to_parquet(table)


def _change_first_amount(table: pa.Table) -> pa.Table:
    amounts = table.column("amount_minor").to_pylist()
    amounts[0] += 1
    index = table.schema.get_field_index("amount_minor")
    return table.set_column(index, table.schema.field(index), pa.array(amounts, pa.int64()))


def test_the_happy_lane_passes_and_is_idempotent(lane: Lane) -> None:
    assert lane.engine().returncode == 0
    lane.lane("oracle-seed", "oracle-sort", "oracle-check")

    landing = lane.evidence("oracle/landing_manifest.json")
    manifest = lane.manifest()
    assert landing["continuity"] is True
    assert len(landing["files"]) == sum(len(o["files"]) for o in manifest["outputs"].values())
    assert all(f["source"] == f["destination"] and f["match"] for f in landing["files"])
    assert lane.get(lane.oracle_root + "_manifest.json") == lane.get(lane.source + "_manifest.json")

    for name in OUTPUTS:
        view = lane.get(lane.oracle_root + f"stream_view/{name}/part-00000.parquet")
        record = lane.evidence(f"oracle/stream_view/{name}.json")
        receipt = lane.evidence(f"oracle/sort_receipts/{name}.json")
        assert record["files"][0]["sha256"] == hashlib.sha256(view).hexdigest()
        assert record["row_count"] == receipt["row_count"] == manifest["outputs"][name]["row_count"]
        assert record["content_hash"] == receipt["content_hash"] == manifest["outputs"][name]["content_hash"]
        assert receipt["sort_key"] == list(dataset.OUTPUTS[name].sort_key)
        assert [f["key"] for f in receipt["inputs"]] == [f["key"] for f in manifest["outputs"][name]["files"]]
        table = _table(view)
        assert table.equals(dataset.OUTPUTS[name].sort(table))

    receipt = lane.evidence("oracle/checker_receipt.json")
    assert receipt["verdict"] == "PASS" and receipt["failures"] == []
    assert all(c["ok"] for o in receipt["outputs"].values() for c in o["checks"])
    marker = lane.evidence("oracle/_PASS")
    assert marker["verdict"] == "PASS" and marker["platform_run_id"] == lane.run_id

    # A second run of the whole lane finds everything already landed and identical: still green.
    before = {key: lane.get(lane.evidence_root + key) for key in lane.evidence_keys()}
    lane.lane("oracle-seed", "oracle-sort", "oracle-check")
    assert {key: lane.get(lane.evidence_root + key) for key in lane.evidence_keys()} == before


@pytest.mark.parametrize("source", ["file:///tmp/oracle/scn/", "/tmp/oracle/scn/", "oracle/scn/"])
def test_a_local_source_is_refused(lane: Lane, source: str) -> None:
    proc = lane.spine("oracle-seed", SPINE_ORACLE_SOURCE=source)
    assert proc.returncode == 1
    assert proc.stderr.startswith("oracle-seed: local source refused:") and source in proc.stderr
    assert lane.evidence_keys() == ["run.json"]


def test_a_landed_object_is_never_overwritten(sourced: Lane) -> None:
    lane = sourced
    key = lane.manifest()["outputs"]["card_transactions"]["files"][1]["key"]
    squatter = b"not the engine's bytes"
    lane.put(lane.oracle_root + key, squatter)

    proc = lane.spine("oracle-seed")
    assert proc.returncode == 1
    assert f"landed object {lane.oracle_root}{key} has sha256 {hashlib.sha256(squatter).hexdigest()}" in proc.stderr
    assert "write-once, not overwritten" in proc.stderr
    assert lane.get(lane.oracle_root + key) == squatter
    landing = lane.evidence("oracle/landing_manifest.json")
    assert landing["continuity"] is False
    assert [f["key"] for f in landing["files"] if not f["match"]] == [key]
    assert landing["manifest"] is None and not lane.exists(lane.oracle_root + "_manifest.json")
    assert lane.spine("oracle-sort").returncode == 1
    assert _check_fails(lane)["lane"] == ["landing"]


def test_a_source_object_that_differs_from_its_manifest_is_refused(sourced: Lane) -> None:
    lane = sourced
    key = lane.manifest()["outputs"]["card_profiles"]["files"][0]["key"]
    table = _table(lane.get(lane.source + key))
    lane.put(lane.source + key, _parquet(table.slice(1)))
    proc = lane.spine("oracle-seed")
    assert proc.returncode == 1
    assert f"source object {lane.source}{key} has sha256" in proc.stderr
    assert not lane.exists(lane.oracle_root)


def test_a_removed_source_object_is_refused_and_fails_the_check(sourced: Lane) -> None:
    lane = sourced
    key = lane.manifest()["outputs"]["card_transactions"]["files"][0]["key"]
    lane.delete(lane.source + key)
    proc = lane.spine("oracle-seed")
    assert proc.returncode == 1
    assert f"source object {lane.source}{key} listed in the manifest does not exist" in proc.stderr
    failed = _check_fails(lane)
    assert failed["lane"] == ["landing"]
    assert all(failed[name] for name in OUTPUTS)


def test_a_landed_object_removed_before_sorting_stops_the_lane(sourced: Lane) -> None:
    lane = sourced
    lane.lane("oracle-seed")
    key = lane.manifest()["outputs"]["card_transactions"]["files"][1]["key"]
    lane.delete(lane.oracle_root + key)
    proc = lane.spine("oracle-sort")
    assert proc.returncode == 1
    assert f"landed object {lane.oracle_root}{key} listed in the manifest does not exist" in proc.stderr
    assert not any(k.startswith("oracle/sort_receipts/") for k in lane.evidence_keys())
    failed = _check_fails(lane)
    assert failed["card_transactions"][:2] == ["landed_files", "stream_view_present"]


def test_a_landed_object_removed_after_sorting_fails_the_check(sourced: Lane) -> None:
    lane = sourced
    lane.lane("oracle-seed", "oracle-sort")
    key = lane.manifest()["outputs"]["card_transactions"]["files"][0]["key"]
    lane.delete(lane.oracle_root + key)
    failed = _check_fails(lane)
    assert failed["card_transactions"] == ["landed_files", "no_drops"]
    assert failed["merchant_profiles"] == failed["card_profiles"] == []


def test_a_row_changed_in_a_landed_part_before_sorting_stops_the_lane(sourced: Lane) -> None:
    lane = sourced
    lane.lane("oracle-seed")
    key = lane.manifest()["outputs"]["card_transactions"]["files"][0]["key"]
    lane.put(lane.oracle_root + key, _parquet(_change_first_amount(_table(lane.get(lane.oracle_root + key)))))
    proc = lane.spine("oracle-sort")
    assert proc.returncode == 1
    assert f"landed object {lane.oracle_root}{key} has sha256" in proc.stderr
    assert "landed_files" in _check_fails(lane)["card_transactions"]


def test_a_row_changed_in_a_landed_part_after_sorting_fails_the_check(sourced: Lane) -> None:
    lane = sourced
    lane.lane("oracle-seed", "oracle-sort")
    key = lane.manifest()["outputs"]["card_transactions"]["files"][1]["key"]
    lane.put(lane.oracle_root + key, _parquet(_change_first_amount(_table(lane.get(lane.oracle_root + key)))))
    failed = _check_fails(lane)
    assert failed["card_transactions"] == ["landed_files", "no_drops"]


def test_a_row_changed_in_the_stream_view_fails_the_check(sourced: Lane) -> None:
    lane = sourced
    lane.lane("oracle-seed", "oracle-sort")
    url = lane.oracle_root + "stream_view/card_transactions/part-00000.parquet"
    lane.put(url, _parquet(_change_first_amount(_table(lane.get(url)))))
    failed = _check_fails(lane)
    assert failed["card_transactions"] == ["stream_view_sha256", "content_hash"]


def test_a_duplicated_row_in_the_stream_view_fails_the_check(sourced: Lane) -> None:
    lane = sourced
    lane.lane("oracle-seed", "oracle-sort")
    url = lane.oracle_root + "stream_view/merchant_profiles/part-00000.parquet"
    table = _table(lane.get(url))
    lane.put(url, _parquet(pa.concat_tables([table.slice(0, 1), table])))
    failed = _check_fails(lane)
    assert failed["merchant_profiles"] == ["stream_view_sha256", "row_count", "no_duplicates", "content_hash"]


def test_a_duplicated_row_from_the_engine_fails_the_check_even_with_consistent_hashes(lane: Lane) -> None:
    from spine.engine import generate, render

    tables = generate(lane.seed, lane.events)
    ct = tables["card_transactions"]
    tables["card_transactions"] = pa.concat_tables([ct, ct.slice(5, 1)])
    rendered = render(tables, seed=lane.seed, events=lane.events, scenario_run_id=lane.scenario, part_rows=100)
    for key, data in rendered.files.items():
        lane.put(lane.source + key, data)
    lane.lane("oracle-seed", "oracle-sort")
    failed = _check_fails(lane)
    assert failed["card_transactions"] == ["no_duplicates"]
    assert failed["lane"] == failed["merchant_profiles"] == failed["card_profiles"] == []


def test_a_missing_output_stops_sorting_and_fails_the_check(lane: Lane) -> None:
    import json

    from spine import canonical
    from spine.engine import generate, render

    rendered = render(generate(lane.seed, lane.events), seed=lane.seed, events=lane.events,
                      scenario_run_id=lane.scenario)
    manifest = json.loads(rendered.files["_manifest.json"])
    del manifest["outputs"]["merchant_profiles"]
    for key, data in rendered.files.items():
        if not key.startswith("merchant_profiles/"):
            lane.put(lane.source + key, canonical.dumps(manifest) if key == "_manifest.json" else data)
    lane.lane("oracle-seed")
    proc = lane.spine("oracle-sort")
    assert proc.returncode == 1
    assert "lacks required output merchant_profiles" in proc.stderr
    failed = _check_fails(lane)
    assert failed["merchant_profiles"][0] == "manifest_entry"
    receipt = lane.evidence("oracle/checker_receipt.json")
    assert any("output merchant_profiles is missing from the landed manifest" in f for f in receipt["failures"])


def test_a_removed_stream_view_fails_the_check(sourced: Lane) -> None:
    lane = sourced
    lane.lane("oracle-seed", "oracle-sort")
    lane.delete(lane.oracle_root + "stream_view/card_profiles/part-00000.parquet")
    failed = _check_fails(lane)
    assert failed["card_profiles"][0] == "stream_view_present"
    assert failed["card_transactions"] == failed["merchant_profiles"] == []


def test_an_unsorted_stream_view_fails_the_check(sourced: Lane) -> None:
    lane = sourced
    lane.lane("oracle-seed", "oracle-sort")
    url = lane.oracle_root + "stream_view/card_transactions/part-00000.parquet"
    table = _table(lane.get(url))
    reversed_rows = table.take(pa.array(range(table.num_rows - 1, -1, -1)))
    lane.put(url, _parquet(reversed_rows))
    failed = _check_fails(lane)
    assert failed["card_transactions"] == ["stream_view_sha256", "sorted", "content_hash"]


def test_a_tampered_landed_manifest_is_not_trusted(sourced: Lane) -> None:
    lane = sourced
    lane.lane("oracle-seed")
    url = lane.oracle_root + "_manifest.json"
    lane.put(url, lane.get(url).replace(b'"seed": 7', b'"seed": 8'))
    proc = lane.spine("oracle-sort")
    assert proc.returncode == 1
    assert f"landed manifest {url} has sha256" in proc.stderr
    assert _check_fails(lane)["lane"] == ["landing"]


def test_a_scenario_other_than_the_pinned_one_is_refused(lane: Lane) -> None:
    assert lane.engine("--scenario-run-id", "scn-other").returncode == 0
    proc = lane.spine("oracle-seed")
    assert proc.returncode == 1
    assert "scenario_run_id='scn-other' but run.json pins scenario_run_id='scn-seed7-n300'" in proc.stderr


def test_sorting_before_landing_is_refused(lane: Lane) -> None:
    proc = lane.spine("oracle-sort")
    assert proc.returncode == 1
    assert "no landing evidence" in proc.stderr
    assert _check_fails(lane)["lane"] == ["landing"]


def test_a_stream_view_is_write_once(sourced: Lane) -> None:
    lane = sourced
    lane.lane("oracle-seed")
    url = lane.oracle_root + "stream_view/card_profiles/part-00000.parquet"
    lane.put(url, b"squatter")
    proc = lane.spine("oracle-sort")
    assert proc.returncode == 1
    assert f"{url} already exists with other bytes" in proc.stderr
    assert lane.get(url) == b"squatter"

