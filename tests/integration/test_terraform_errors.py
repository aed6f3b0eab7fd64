"""Terraform failures stop with one message that says what and how to fix it."""

from __future__ import annotations

from pathlib import Path

import pytest

from harness import terraform
from harness.errors import SubstrateError, ToolMissing


def _stack(tmp_path: Path, root: Path) -> terraform.Stack:
    module = tmp_path / "module"
    module.mkdir()
    (module / "main.tf").write_text(
        'terraform {\n  required_providers {\n    aws = { source = "hashicorp/aws", version = "~> 5.100" }\n  }\n}\n'
    )
    return terraform.Stack(name="core", module_dir=module, workdir=tmp_path / "work", project_root=root,
                           variables={}, secret_variables={}, aws_env={}, timeout_s=120)


def test_missing_terraform_binary(tmp_path: Path, monkeypatch: pytest.MonkeyPatch, project_root: Path) -> None:
    monkeypatch.setenv("TERRAFORM_BIN", str(tmp_path / "no-terraform"))
    with pytest.raises(ToolMissing, match=r"terraform is not installed .* install Terraform"):
        _stack(tmp_path, project_root).init()


def test_missing_provider_names_the_mirror(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    empty_mirror = tmp_path / "mirror"
    empty_mirror.mkdir()
    root = tmp_path / "project"
    (root / "infra" / "terraform").mkdir(parents=True)
    (root / "infra" / "terraform" / "terraformrc").write_text(
        f'provider_installation {{\n  filesystem_mirror {{\n    path = "{empty_mirror}"\n  }}\n}}\n'
    )
    monkeypatch.setattr(terraform, "MIRROR", empty_mirror)
    with pytest.raises(SubstrateError) as err:
        _stack(tmp_path, root).init()
    assert err.value.operation == "terraform init core"
    assert "fix: the AWS provider must be in the filesystem mirror" in str(err.value)


def test_secret_variables_never_reach_the_var_file(tmp_path: Path, project_root: Path) -> None:
    stack = _stack(tmp_path, project_root)
    stack.secret_variables = {"db_dsn": "postgresql://u:planted-pass-123@h/db"}
    stack.variables = {"region": "eu-west-2"}
    stack._prepare()
    assert "planted-pass-123" not in (stack.dir / "terraform.tfvars.json").read_text()
    assert stack._env()["TF_VAR_db_dsn"].endswith("@h/db")
