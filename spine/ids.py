"""Deterministic identities of the decision plane: the same run and event always give the same ids."""

from __future__ import annotations

import hashlib


def _h(text: str) -> str:
    return hashlib.sha256(text.encode()).hexdigest()[:32]


def decision_id(platform_run_id: str, event_id: str) -> str:
    return "dec_" + _h(f"{platform_run_id}/{event_id}")


def case_id(decision: str) -> str:
    return "case_" + _h(decision)


def label_id(case: str, label: str) -> str:
    return "lbl_" + _h(f"{case}/{label}")


def group(mode: str, platform_run_id: str) -> str:
    """A daemon's consumer group: one per mode and run."""
    return f"spine.{mode}.{platform_run_id}"
