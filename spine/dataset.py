"""The Oracle outputs as the contract pins them: schemas, sort keys, content_hash and Parquet bytes.

Shared by the Data Engine (which writes Oracle truth) and the Oracle lane (which checks it), so both
compute the contract's content_hash the same way.
"""

from __future__ import annotations

import hashlib
from collections.abc import Sequence
from dataclasses import dataclass

import pyarrow as pa
import pyarrow.parquet as pq

from spine.errors import SpineError


@dataclass(frozen=True)
class Output:
    name: str
    ts_utc: bool
    sort_key: tuple[str, ...]
    key: str  # the identity column: unique per row
    schema: pa.Schema

    def sort(self, table: pa.Table) -> pa.Table:
        return table.sort_by([(column, "ascending") for column in self.sort_key])

    def schema_problem(self, table: pa.Table) -> str | None:
        """Why ``table`` does not have the pinned schema, or None."""
        actual = table.schema.remove_metadata()
        if actual.equals(self.schema):
            return None
        return f"schema {_describe(actual)} differs from the pinned {_describe(self.schema)}"


def _describe(schema: pa.Schema) -> str:
    return "(" + ", ".join(f"{f.name}: {f.type}{'' if f.nullable else ' not null'}" for f in schema) + ")"


def _fields(*pairs: tuple[str, pa.DataType]) -> pa.Schema:
    return pa.schema([pa.field(name, kind, nullable=False) for name, kind in pairs])


TIMESTAMP = pa.timestamp("us", tz="UTC")

OUTPUTS: dict[str, Output] = {
    o.name: o
    for o in (
        Output("card_transactions", True, ("ts_utc", "event_id"), "event_id", _fields(
            ("event_id", pa.string()), ("ts_utc", TIMESTAMP), ("card_id", pa.string()),
            ("merchant_id", pa.string()), ("amount_minor", pa.int64()), ("currency", pa.string()),
            ("channel", pa.string()), ("fraud_pattern", pa.string()),
        )),
        Output("merchant_profiles", False, ("merchant_id",), "merchant_id", _fields(
            ("merchant_id", pa.string()), ("name", pa.string()), ("mcc", pa.string()),
            ("country", pa.string()), ("risk_tier", pa.string()),
        )),
        Output("card_profiles", False, ("card_id",), "card_id", _fields(
            ("card_id", pa.string()), ("issuer_country", pa.string()), ("card_type", pa.string()),
            ("home_currency", pa.string()), ("credit_limit_minor", pa.int64()),
        )),
    )
}

FRAUD_PATTERNS = ("", "card_testing", "velocity_burst", "high_value_new_merchant")


class _HashSink:
    """A write-only file that only hashes: the IPC stream is never held in memory."""

    def __init__(self) -> None:
        self.hash = hashlib.sha256()
        self.closed = False

    def write(self, data: bytes) -> int:
        self.hash.update(data)
        return len(data)

    def flush(self) -> None:
        pass

    def close(self) -> None:
        self.closed = True


def content_hash(table: pa.Table) -> str:
    """sha256 of the Arrow IPC stream of ``table`` as one chunk, schema metadata dropped.

    The caller passes the rows in sort-key order; the hash then does not depend on how the rows
    were split into files or chunks.
    """
    table = table.replace_schema_metadata(None).combine_chunks()
    sink = _HashSink()
    with pa.ipc.new_stream(sink, table.schema) as writer:
        for batch in table.to_batches(max_chunksize=max(table.num_rows, 1)):
            writer.write_batch(batch)
    return sink.hash.hexdigest()


def to_parquet(table: pa.Table, *, row_group_rows: int = 250_000) -> bytes:
    """Parquet with every writer option pinned, so the same rows always give the same bytes."""
    sink = pa.BufferOutputStream()
    pq.write_table(
        table.replace_schema_metadata(None),
        sink,
        row_group_size=max(row_group_rows, 1),
        version="2.6",
        compression="zstd",
        compression_level=1,
        use_dictionary=True,
        write_statistics=True,
        data_page_size=1 << 20,
        data_page_version="1.0",
        store_schema=True,
        write_page_index=False,
        write_page_checksum=False,
    )
    return bytes(sink.getvalue().to_pybytes())


def read_parquet(data: bytes, *, where: str, columns: Sequence[str] | None = None) -> pa.Table:
    """Parse Parquet bytes read from ``where``; unreadable bytes are a refusal, not a crash."""
    try:
        return pq.read_table(pa.BufferReader(data), columns=list(columns) if columns is not None else None)
    except (pa.ArrowException, KeyError) as exc:
        raise SpineError(f"{where} is not readable Parquet{' with columns ' + str(list(columns)) if columns else ''}: "
                         f"{exc}") from exc
