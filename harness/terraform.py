"""Terraform runs for one stack: init, plan, apply, destroy, with streamed progress."""

from __future__ import annotations

import contextlib
import json
import os
import re
import shutil
import subprocess
import threading
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from harness import progress, redact
from harness.errors import HarnessError, SubstrateError, ToolMissing

MIRROR = Path("/opt/tf-plugins")
_PROGRESS = re.compile(
    r"(Creation complete|Destruction complete|Modifications complete|Apply complete|"
    r"Destroy complete|Plan:|No changes|Still (creating|destroying|modifying)|Error:)"
)
_CHANGE = re.compile(r"^\s*# (\S+) (will be|must be) (.+)$")
_INSTALL_FIX = (
    "install Terraform >= 1.9 (https://developer.hashicorp.com/terraform/install) "
    "or set TERRAFORM_BIN to its path"
)


@dataclass
class RunResult:
    command: str
    exit_code: int
    duration_s: float
    changes: list[str] = field(default_factory=list)


def _kill_group(pid: int) -> None:
    from harness.substrate.base import terminate_process_group

    with contextlib.suppress(HarnessError):
        terminate_process_group(pid, name="terraform")


def terraform_binary() -> str:
    found = os.environ.get("TERRAFORM_BIN") or shutil.which("terraform")
    if not found or not Path(found).exists():
        raise ToolMissing("terraform", _INSTALL_FIX)
    return found


def cli_config(project_root: Path) -> Path | None:
    """The project's CLI config pins the provider mirror when the machine has one."""
    config = project_root / "infra" / "terraform" / "terraformrc"
    return config if MIRROR.is_dir() and config.is_file() else None


class Stack:
    """One Terraform root module applied from a run-scoped working copy."""

    def __init__(self, *, name: str, module_dir: Path, workdir: Path, project_root: Path,
                 variables: dict[str, Any], secret_variables: dict[str, str],
                 aws_env: dict[str, str], timeout_s: float = 900.0) -> None:
        self.name = name
        self.module_dir = module_dir
        self.dir = workdir / name
        self.log_path = workdir / "logs" / f"terraform-{name}.log"
        self.project_root = project_root
        self.variables = variables
        self.secret_variables = secret_variables
        self.aws_env = aws_env
        self.timeout_s = timeout_s
        self.history: list[RunResult] = []
        for value in secret_variables.values():
            redact.register(value)

    def _prepare(self) -> None:
        if not self.module_dir.is_dir():
            raise SubstrateError("NoModule", f"Terraform module {self.module_dir} is missing",
                                 operation=f"terraform {self.name}")
        self.dir.mkdir(parents=True, exist_ok=True)
        for tf in [*self.module_dir.glob("*.tf"), *self.module_dir.glob(".terraform.lock.hcl")]:
            shutil.copyfile(tf, self.dir / tf.name)
        # Only non-secret values go to disk; secrets travel as TF_VAR_* in the environment.
        (self.dir / "terraform.tfvars.json").write_text(json.dumps(self.variables, indent=2, sort_keys=True))
        self.log_path.parent.mkdir(parents=True, exist_ok=True)

    def _env(self) -> dict[str, str]:
        env = {k: v for k, v in os.environ.items() if not k.startswith("TF_VAR_")}
        env.update(self.aws_env)
        env.update({"TF_IN_AUTOMATION": "1", "TF_INPUT": "0", "CHECKPOINT_DISABLE": "1"})
        config = cli_config(self.project_root)
        if config is not None:
            env["TF_CLI_CONFIG_FILE"] = str(config)
        elif env.get("TF_CLI_CONFIG_FILE") and not Path(env["TF_CLI_CONFIG_FILE"]).exists():
            env.pop("TF_CLI_CONFIG_FILE")  # a dangling config path makes every command warn
        for key, value in self.secret_variables.items():
            env[f"TF_VAR_{key}"] = value
        return env

    def _run(self, args: list[str], *, ok_codes: tuple[int, ...] = (0,)) -> RunResult:
        argv = [terraform_binary(), *args, "-no-color"]
        what = f"terraform {args[0]} {self.name}"
        began = time.monotonic()
        lines: list[str] = []
        with progress.step(what), self.log_path.open("a", encoding="utf-8") as log:
            log.write(f"\n$ terraform {' '.join(args)}\n")
            # Its own process group: on a timeout or an interrupt the provider plugin goes too.
            proc = subprocess.Popen(argv, cwd=self.dir, env=self._env(), stdout=subprocess.PIPE,
                                    stderr=subprocess.STDOUT, stdin=subprocess.DEVNULL, text=True,
                                    start_new_session=True)
            timer = threading.Timer(self.timeout_s, lambda: _kill_group(proc.pid))
            timer.start()
            try:
                assert proc.stdout is not None
                for raw in proc.stdout:
                    line = redact.scrub(raw.rstrip("\n"))
                    lines.append(line)
                    log.write(line + "\n")
                    if _PROGRESS.search(line):
                        progress.say(f"  {self.name}: {line.strip()}")
                code = proc.wait()
            except BaseException:
                _kill_group(proc.pid)
                raise
            finally:
                timer.cancel()
            duration = round(time.monotonic() - began, 2)
            changes = [m.group(1) + " " + m.group(3) for line in lines if (m := _CHANGE.match(line))]
            result = RunResult(command=" ".join(args), exit_code=code, duration_s=duration, changes=changes)
            self.history.append(result)
            if code not in ok_codes:
                raise SubstrateError(f"exit {code}", self._explain(lines, duration), operation=what)
        return result

    def _explain(self, lines: list[str], duration: float) -> str:
        if duration >= self.timeout_s:
            return f"timed out after {self.timeout_s:.0f}s; see {self.log_path}"
        errors = [ln for ln in lines if ln.strip().startswith(("Error:", "│ Error:"))]
        tail = "\n".join(lines[-25:])
        hint = ""
        if any("provider" in ln and ("registry" in ln or "mirror" in ln) for ln in lines):
            hint = (f"\nfix: the AWS provider must be in the filesystem mirror {MIRROR} "
                    "(registry.terraform.io/hashicorp/aws) or the registry must be reachable")
        return f"{'; '.join(errors) or 'failed'} (log: {self.log_path})\n{tail}{hint}"

    def init(self) -> RunResult:
        self._prepare()
        return self._run(["init", "-input=false"])

    def apply(self) -> RunResult:
        return self._run(["apply", "-auto-approve", "-input=false"])

    def plan(self) -> RunResult:
        """``-detailed-exitcode``: 0 means no changes, 2 means changes pending."""
        return self._run(["plan", "-detailed-exitcode", "-input=false"], ok_codes=(0, 2))

    def destroy(self) -> RunResult:
        if not (self.dir / ".terraform").is_dir():
            self.init()
        return self._run(["destroy", "-auto-approve", "-input=false"])

    def _json(self, args: list[str]) -> Any:
        proc = subprocess.run([terraform_binary(), *args], cwd=self.dir, env=self._env(),
                              capture_output=True, text=True, timeout=120)
        if proc.returncode != 0:
            raise SubstrateError(f"exit {proc.returncode}", redact.scrub(proc.stderr.strip()),
                                 operation=f"terraform {args[0]} {self.name}")
        return json.loads(proc.stdout or "{}")

    def outputs(self) -> dict[str, Any]:
        raw = self._json(["output", "-json"])
        return {k: (None if v.get("sensitive") else v.get("value")) for k, v in raw.items()}

    def resources(self) -> list[dict[str, str]]:
        """Address, type and id of every managed resource in state (no attribute values)."""
        state = self._json(["show", "-json"])
        found: list[dict[str, str]] = []

        def walk(module: dict[str, Any]) -> None:
            for res in module.get("resources", []):
                if res.get("mode") != "managed":
                    continue
                values = res.get("values") or {}
                found.append({"address": res["address"], "type": res["type"],
                              "id": str(values.get("arn") or values.get("id") or "")})
            for child in module.get("child_modules", []):
                walk(child)

        walk(state.get("values", {}).get("root_module", {}))
        return sorted(found, key=lambda r: r["address"])

    def version(self) -> str:
        proc = subprocess.run([terraform_binary(), "version", "-json"], capture_output=True, text=True,
                              env=self._env(), timeout=60)
        try:
            return f"terraform {json.loads(proc.stdout)['terraform_version']}"
        except (ValueError, KeyError):
            return "terraform (unknown version)"
