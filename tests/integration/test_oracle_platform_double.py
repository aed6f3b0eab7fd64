"""The harness's own reading of the stream views catches a platform double that claims PASS over bad views."""

from __future__ import annotations

import hashlib
import itertools
import json
import os
from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import Any

import pyarrow as pa
import pyarrow.parquet as pq
import pytest

from harness import canonical, oracle_views
from harness.aws import AwsSession
from harness.errors import Finding
from harness.phases import p03
from harness.substrate import MotoServer

pytestmark = pytest.mark.substrate

REGION = "eu-west-2"
_counter = itertools.count()


def _ts(second: int) -> datetime:
    return datetime(2026, 1, 5, 10, 0, second, tzinfo=UTC)


def _schema(*pairs: tuple[str, pa.DataType]) -> pa.Schema:
    return pa.schema([pa.field(name, kind, nullable=False) for name, kind in pairs])


# Source rows as the test's own Data Engine writes them: deliberately not in sort order, and with a ts_utc tie
# (e-003 and e-004) so that only the event_id tie-breaker orders them.
SOURCE = {
    "card_transactions": pa.table({
        "event_id": ["e-001", "e-002", "e-003", "e-004", "e-005", "e-006"],
        "ts_utc": pa.array([_ts(3), _ts(1), _ts(2), _ts(2), _ts(5), _ts(4)], pa.timestamp("us", tz="UTC")),
        "card_id": ["c-1", "c-2", "c-3", "c-1", "c-2", "c-3"],
        "merchant_id": ["m-1", "m-2", "m-3", "m-1", "m-2", "m-3"],
        "amount_minor": pa.array([100, 250, 990, 5, 5, 12_000], pa.int64()),
        "currency": ["GBP"] * 6,
        "channel": ["pos", "ecom", "ecom", "pos", "pos", "ecom"],
        "fraud_pattern": ["", "", "card_testing", "card_testing", "", "high_value_new_merchant"],
    }, schema=_schema(("event_id", pa.string()), ("ts_utc", pa.timestamp("us", tz="UTC")), ("card_id", pa.string()),
                      ("merchant_id", pa.string()), ("amount_minor", pa.int64()), ("currency", pa.string()),
                      ("channel", pa.string()), ("fraud_pattern", pa.string()))),
    "merchant_profiles": pa.table({
        "merchant_id": ["m-2", "m-1", "m-3"], "name": ["B", "A", "C"], "mcc": ["5411", "5812", "5999"],
        "country": ["GB", "GB", "FR"], "risk_tier": ["low", "low", "high"],
    }, schema=_schema(("merchant_id", pa.string()), ("name", pa.string()), ("mcc", pa.string()),
                      ("country", pa.string()), ("risk_tier", pa.string()))),
    "card_profiles": pa.table({
        "card_id": ["c-3", "c-1", "c-2"], "issuer_country": ["GB", "FR", "GB"],
        "card_type": ["debit", "credit", "debit"], "home_currency": ["GBP", "EUR", "GBP"],
        "credit_limit_minor": pa.array([0, 500_000, 0], pa.int64()),
    }, schema=_schema(("card_id", pa.string()), ("issuer_country", pa.string()), ("card_type", pa.string()),
                      ("home_currency", pa.string()), ("credit_limit_minor", pa.int64()))),
}
SORT_KEY = {"card_transactions": ["ts_utc", "event_id"], "merchant_profiles": ["merchant_id"],
            "card_profiles": ["card_id"]}


def _sorted(name: str) -> pa.Table:
    return SOURCE[name].sort_by([(c, "ascending") for c in SORT_KEY[name]])


def _ipc_sha256(table: pa.Table) -> str:
    """The test's own content_hash (contract §4), so the double's manifest does not come from the harness."""
    sink = pa.BufferOutputStream()
    with pa.ipc.new_stream(sink, table.schema.remove_metadata()) as writer:
        writer.write_batch(table.combine_chunks().to_batches()[0])
    return hashlib.sha256(sink.getvalue().to_pybytes()).hexdigest()


def _parquet(table: pa.Table) -> bytes:
    sink = pa.BufferOutputStream()
    pq.write_table(table, sink)
    return bytes(sink.getvalue().to_pybytes())


@dataclass
class PlatformDouble:
    """A stand-in for the platform, written by the test: it lands the source, writes whatever stream views it
    is given, and then claims PASS everywhere (stream_view manifests, sort receipts, checker receipt, _PASS)."""

    aws: AwsSession
    run_id: str = field(default_factory=lambda: f"dbl{next(_counter):03d}-{os.getpid()}")

    def __post_init__(self) -> None:
        self.buckets = {role: f"{role}-{self.run_id}" for role in ("src", "oracle", "evidence")}
        for bucket in self.buckets.values():
            self.aws.client("s3").create_bucket(Bucket=bucket,
                                                CreateBucketConfiguration={"LocationConstraint": REGION})
        self.roots = {"source": f"s3://{self.buckets['src']}/oracle/scn/",
                      "oracle_root": f"s3://{self.buckets['oracle']}/oracle/scn/",
                      "evidence_root": f"s3://{self.buckets['evidence']}/runs/{self.run_id}/"}
        self.manifest: dict[str, Any] = {"engine": "double/1", "scenario_run_id": "scn", "outputs": {}}

    def put(self, url: str, body: bytes) -> None:
        bucket, _, key = url.removeprefix("s3://").partition("/")
        self.aws.client("s3").put_object(Bucket=bucket, Key=key, Body=body)

    def put_json(self, url: str, record: Any) -> None:
        self.put(url, json.dumps(record, sort_keys=True).encode())

    def land_source(self) -> None:
        """Each output split into two parts, and the manifest (its hash from the test's own code)."""
        for name, table in SOURCE.items():
            files = []
            for index, part in enumerate((table.slice(0, 2), table.slice(2))):
                key, data = f"{name}/part-{index:05d}.parquet", _parquet(part)
                self.put(self.roots["source"] + key, data)
                files.append({"key": key, "sha256": hashlib.sha256(data).hexdigest(), "size": len(data),
                              "rows": part.num_rows})
            self.manifest["outputs"][name] = {"ts_utc": name == "card_transactions", "sort_key": SORT_KEY[name],
                                              "row_count": table.num_rows, "content_hash": _ipc_sha256(_sorted(name)),
                                              "files": files}
        self.put_json(self.roots["source"] + "_manifest.json", self.manifest)

    def claim_views(self, views: dict[str, pa.Table], *, extra: dict[str, bytes] | None = None) -> None:
        """Write ``views`` as the stream views, and every receipt copying the source manifest's values: PASS."""
        evidence = self.roots["evidence_root"]
        hashes = {}
        for name, view in views.items():
            key, data = f"stream_view/{name}/part-00000.parquet", _parquet(view)
            self.put(self.roots["oracle_root"] + key, data)
            truth = self.manifest["outputs"][name]
            claim = {"output": name, "sort_key": truth["sort_key"], "row_count": truth["row_count"],
                     "content_hash": truth["content_hash"]}
            view_file = {"key": key, "sha256": hashlib.sha256(data).hexdigest(), "size": len(data),
                         "rows": truth["row_count"]}
            self.put_json(f"{evidence}oracle/stream_view/{name}.json", {**claim, "files": [view_file]})
            self.put_json(f"{evidence}oracle/sort_receipts/{name}.json", {**claim, "stream_view": view_file})
            hashes[name] = truth["content_hash"]
        for key, data in (extra or {}).items():
            self.put(self.roots["oracle_root"] + key, data)
        receipt = {"verdict": "PASS", "failures": [], "outputs": {
            name: {"verdict": "PASS", "observed": {"row_count": self.manifest["outputs"][name]["row_count"],
                                                   "content_hash": h}} for name, h in hashes.items()}}
        self.put_json(f"{evidence}oracle/checker_receipt.json", receipt)
        self.put_json(f"{evidence}oracle/_PASS", {"verdict": "PASS", "content_hashes": hashes})

    def object(self, name: str) -> str:
        return f"{self.roots['oracle_root']}stream_view/{name}/part-00000.parquet"


def _correct() -> dict[str, pa.Table]:
    return {name: _sorted(name) for name in SOURCE}


def _unsorted() -> dict[str, pa.Table]:
    return {**_correct(), "card_profiles": SOURCE["card_profiles"]}  # c-3, c-1, c-2: as landed, never sorted


def _missing_row() -> dict[str, pa.Table]:
    view = _sorted("card_transactions")
    return {**_correct(), "card_transactions": pa.concat_tables([view.slice(0, 4), view.slice(5)])}  # e-006 dropped


def _ties_swapped() -> dict[str, pa.Table]:
    view = _sorted("card_transactions")  # rows 1 and 2 are e-003 and e-004, both at 10:00:02
    assert view.column("event_id").to_pylist()[1:3] == ["e-003", "e-004"]
    return {**_correct(), "card_transactions": view.take([0, 2, 1, 3, 4, 5])}


@pytest.fixture
def aws(moto: MotoServer) -> AwsSession:
    return AwsSession(region=REGION, endpoint_url=moto.endpoint)


def _lane(aws: AwsSession, views: dict[str, pa.Table], **kwargs: Any) -> tuple[PlatformDouble, dict[str, Any]]:
    double = PlatformDouble(aws)
    double.land_source()
    double.claim_views(views, **kwargs)
    observed = oracle_views.observe(aws, **double.roots)
    # The observation is evidence: canonical JSON, and judged the same after the round trip (offline re-check).
    return double, json.loads(canonical.dumps(observed))


def test_a_correct_double_passes_and_the_observation_agrees_with_the_manifest(aws: AwsSession) -> None:
    double, observed = _lane(aws, _correct())
    oracle_views.check(observed)
    for name, seen in observed["outputs"].items():
        view = seen["view"]
        assert (view["sorted"], view["key_set_equal"], view["duplicate_keys"]["count"]) == (True, True, 0), name
        assert view["content_hash"] == seen["manifest"]["content_hash"] == double.manifest["outputs"][name][
            "content_hash"] == seen["claims"]["sort_receipt"]["content_hash"]
        assert [o["object"] for o in seen["view_objects"]] == [double.object(name)]
        assert view["row_count"] == seen["source"]["row_count"] == SOURCE[name].num_rows


CASES: dict[str, tuple[Callable[[], dict[str, pa.Table]], str, list[str]]] = {
    "unsorted": (_unsorted, "card_profiles", ["rows 0 and 1 are not in ['card_id'] order: ['c-3'] then ['c-1']"]),
    "missing-row": (_missing_row, "card_transactions", [
        "5 rows; the source manifest says 6, the source files hold 6",
        "its event_id set differs from the source files': 1 missing (e.g. ['e-006'])",
        "recomputed content_hash"]),
    "tied-rows-swapped": (_ties_swapped, "card_transactions", [
        "rows 1 and 2 are not in ['ts_utc', 'event_id'] order: ['2026-01-05 10:00:02+00:00', 'e-004'] then "
        "['2026-01-05 10:00:02+00:00', 'e-003']", "recomputed content_hash"]),
}


@pytest.mark.parametrize("case", sorted(CASES))
def test_a_double_claiming_pass_over_a_bad_view_is_a_finding_naming_output_and_object(
        aws: AwsSession, case: str) -> None:
    views, output, said = CASES[case]
    double, observed = _lane(aws, views())
    receipt = json.loads(aws.client("s3").get_object(
        Bucket=double.buckets["evidence"], Key=f"runs/{double.run_id}/oracle/checker_receipt.json")["Body"].read())
    p03.check_closed({"evidence": {"oracle/checker_receipt.json": receipt}, "pass_marker": True})  # the claims pass

    with pytest.raises(Finding) as err:
        oracle_views.check(observed)
    assert err.value.check == "P3.recompute"
    assert all(d.startswith(f"{output}: ") for d in err.value.details), err.value.details  # only that output
    for text in said:
        assert any(f"{output}: {double.object(output)}: {text}" in d for d in err.value.details), (text, str(err.value))
    assert f"{output}: yet the platform's checker receipt says PASS for it" in err.value.details


def test_tied_rows_swapped_differ_only_in_order(aws: AwsSession) -> None:
    _double, observed = _lane(aws, _ties_swapped())
    view = observed["outputs"]["card_transactions"]["view"]
    assert (view["row_count"], view["key_set_equal"], view["duplicate_keys"]["count"]) == (6, True, 0)
    assert view["sorted"] is False and view["out_of_order"]["rows"] == [1, 2]


def test_a_view_object_found_by_listing_but_not_in_the_stream_view_manifest_is_named(aws: AwsSession) -> None:
    stray = "stream_view/merchant_profiles/part-00001.parquet"
    double, observed = _lane(aws, _correct(), extra={stray: _parquet(_sorted("merchant_profiles").slice(0, 0))})
    with pytest.raises(Finding) as err:
        oracle_views.check(observed)
    assert (f"merchant_profiles: stream view object {double.roots['oracle_root']}{stray} is not named by the "
            "stream_view manifest") in err.value.details
