"""What each entrypoint mode promises (docs/platform-contract.md §4): kind, environment, evidence."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

# The Oracle outputs (spine.dataset pins their schemas); named here so --contract needs no pyarrow.
ORACLE_OUTPUTS = ("card_transactions", "merchant_profiles", "card_profiles")

# Read by every mode before any work (the run-scope guard); AWS_ENDPOINT_URL only on an emulator.
COMMON_ENV = (
    "REQUIRED_PLATFORM_RUN_ID",
    "SPINE_RUN_MANIFEST",
    "SPINE_RUN_CONFIG_DIGEST",
    "SPINE_IMAGE_DIGEST",
    "SPINE_EVIDENCE_ROOT",
    "AWS_REGION",
)
# The bus: SSM paths of the bootstrap (and, for SASL_SSL, key and secret), never the values.
KAFKA_ENV = ("SPINE_SSM_KAFKA_BOOTSTRAP", "SPINE_KAFKA_SECURITY_PROTOCOL")


@dataclass(frozen=True)
class Contract:
    mode: str
    kind: str  # "job" | "daemon"
    implemented: bool
    env: tuple[str, ...] = ()
    evidence: tuple[str, ...] = ()

    @property
    def required_env(self) -> list[str]:
        return [*COMMON_ENV, *self.env]

    def to_json(self) -> dict[str, Any]:
        return {
            "mode": self.mode,
            "implemented": self.implemented,
            "kind": self.kind,
            "required_env": self.required_env,
            "evidence": list(self.evidence),
        }


MODES: dict[str, Contract] = {
    c.mode: c
    for c in (
        Contract("oracle-seed", "job", True, ("SPINE_ORACLE_SOURCE", "SPINE_ORACLE_ROOT"),
                 ("oracle/landing_manifest.json",)),
        Contract("oracle-sort", "job", True, ("SPINE_ORACLE_ROOT",),
                 tuple(f"oracle/stream_view/{name}.json" for name in ORACLE_OUTPUTS)
                 + tuple(f"oracle/sort_receipts/{name}.json" for name in ORACLE_OUTPUTS)),
        Contract("oracle-check", "job", True, ("SPINE_ORACLE_ROOT",),
                 ("oracle/checker_receipt.json", "oracle/_PASS")),
        Contract("sr", "job", True, ("SPINE_ORACLE_ROOT", "SPINE_SR_LEASE_TABLE", "SPINE_TOPIC_CONTROL", *KAFKA_ENV),
                 ("sr/run_facts_view.json",)),
        Contract("wsp", "job", True, ("SPINE_ORACLE_ROOT", "SPINE_IG_URL", "SPINE_SSM_IG_API_KEY",
                                      "SPINE_TOPIC_CONTROL", *KAFKA_ENV),
                 ("wsp/stream_summary.json", "wsp/attempts/<sender>.json")),
        Contract("ig", "daemon", True, ("SPINE_IG_LISTEN", "SPINE_SSM_IG_API_KEY", "SPINE_TOPIC_TRAFFIC",
                                        "SPINE_IG_DEDUPE_TABLE", "SPINE_QUARANTINE_BUCKET", *KAFKA_ENV),
                 ("ingest/ig_ready.json", "ingest/receipts/<request_id>.json", "ingest/receipt_summary.json",
                  "ingest/quarantine_summary.json", "ingest/kafka_offsets_snapshot.json")),
        Contract("rtdl", "daemon", True, ("SPINE_TOPIC_TRAFFIC", "SPINE_TOPIC_RTDL", "SPINE_ARCHIVE_BUCKET",
                                          *KAFKA_ENV),
                 ("rtdl_core/catch_up.json", "rtdl_core/archive_index.json")),
        Contract("decision-lane", "daemon", True, ("SPINE_TOPIC_RTDL", "SPINE_TOPIC_DECISION", "SPINE_SSM_DB_DSN",
                                                   *KAFKA_ENV),
                 ("decision_lane/summary.json",)),
        Contract("case-labels", "daemon", True, ("SPINE_TOPIC_DECISION", "SPINE_SSM_DB_DSN", *KAFKA_ENV),
                 ("case_labels/summary.json",)),
        Contract("reporter", "job", True, ("SPINE_TOPIC_TRAFFIC", "SPINE_TOPIC_RTDL", "SPINE_TOPIC_DECISION",
                                           "SPINE_ARCHIVE_BUCKET", "SPINE_SSM_DB_DSN", "SPINE_REPORTER_LOCK_TABLE",
                                           *KAFKA_ENV),
                 ("obs/reconciliation.json", "obs/run_report.json", "obs/environment_conformance.json",
                  "obs/replay_anchors.json", "run_completed.json", "obs/conflict_<reporter>.json",
                  "obs/refused_<reporter>.json")),
    )
}
