"""The Oracle lane (P3): land the Data Engine's truth, build sorted stream views, close every output."""

from __future__ import annotations

from spine.oracle import check, seed, sort

__all__ = ["check", "seed", "sort"]
