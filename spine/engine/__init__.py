"""The Data Engine: upstream of the platform, it owns Oracle truth (deterministic synthetic card traffic).

`python -m spine.engine --seed S --events N --out s3://<oracle_source bucket>/<oracle_root><scenario_run_id>/`
"""

from __future__ import annotations

from spine.engine.generate import generate
from spine.engine.write import ENGINE, MANIFEST, PART_ROWS, Rendered, render, write

__all__ = ["ENGINE", "MANIFEST", "PART_ROWS", "Rendered", "generate", "render", "write"]
