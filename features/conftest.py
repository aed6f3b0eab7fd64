"""Collect every .feature file directly, so `pytest features/` and `pytest FILE.feature` both work."""

from __future__ import annotations

import types
from pathlib import Path
from typing import Any

import pytest
from pytest_bdd import scenarios


class FeatureModule(pytest.Module):
    """A test module whose tests are the scenarios of one feature file."""

    def _getobj(self) -> Any:
        module = types.ModuleType(f"features.{self.path.stem}")
        module.__file__ = str(self.path)
        namespace: dict[str, Any] = module.__dict__
        namespace.update(_scenarios=scenarios, _path=str(self.path), _base=str(self.path.parent))
        # scenarios() binds tests into its caller's namespace: run it inside the module's.
        exec(compile("_scenarios(_path, features_base_dir=_base)", str(self.path), "exec"), namespace)
        return module


def pytest_collect_file(parent: pytest.Collector, file_path: Path) -> pytest.Module | None:
    if file_path.suffix == ".feature":
        return FeatureModule.from_parent(parent, path=file_path)
    return None
