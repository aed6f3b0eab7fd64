"""The harness reaches the platform only through its contract: enforced by import-linter."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

LINT = [sys.executable, "-c", "from importlinter.cli import lint_imports_command; lint_imports_command()"]


def test_project_contracts_hold(project_root: Path) -> None:
    proc = subprocess.run(LINT, cwd=project_root, capture_output=True, text=True, timeout=120)
    assert proc.returncode == 0, proc.stdout + proc.stderr
    assert "harness and the reference platform only meet through the platform contract KEPT" in proc.stdout


def test_the_contract_catches_a_harness_that_imports_spine(tmp_path: Path, project_root: Path) -> None:
    # Same contract on a copy of the layout where harness imports spine: it must break.
    for pkg in ("harness", "spine", "steps"):
        (tmp_path / pkg).mkdir()
        (tmp_path / pkg / "__init__.py").write_text("")
    (tmp_path / "harness" / "leak.py").write_text("import spine\n")
    config = (project_root / "pyproject.toml").read_text()
    (tmp_path / "pyproject.toml").write_text(config[config.index("[tool.importlinter]"):])
    proc = subprocess.run(LINT, cwd=tmp_path, capture_output=True, text=True, timeout=120,
                          env={"PYTHONPATH": str(tmp_path), "PATH": "/usr/bin:/bin"})
    assert proc.returncode != 0
    assert "BROKEN" in proc.stdout and "harness.leak -> spine" in proc.stdout
