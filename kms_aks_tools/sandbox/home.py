"""The sandbox of one project: `.sandbox/` (ignored by git), with `state/` (a file backend), `azure.json` (the
stand-in's cloud, saved between commands by `kms_aks_tools.standin.saved`), `project/` (a copy of the project,
refreshed from the user's on every command, because `pulumi stack init` writes to the stack file), `secrets/` (the
sandbox's passphrase provider lines, which never go into the user's stack file) and `out/<stack>/` (CI's artifact);
one lock over it all."""

from __future__ import annotations

import contextlib
import fcntl
import json
import os
import shutil
import subprocess
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import yaml
from rich.console import Console
from rich.markup import escape

from kms_aks_tools.cli.exits import UserError
from kms_aks_tools.offline import realcli
from kms_aks_tools.project.stack_file import stack_names as stack_files

SANDBOX_FOLDER = ".sandbox"
# The sandbox's own stacks are encrypted with this passphrase: they hold nothing real and never leave the folder.
PASSPHRASE = "kms-aks sandbox (offline, nothing real)"
# The grant-propagation wait is real time under the stand-in too; capped so a rehearsal stays quick.
SLEEP_CAP_SECONDS = 1.0
MARKER = "kms-aks-sandbox"


class SandboxError(UserError):
    """Bad input or an unusable sandbox: one message, exit 2."""


@dataclass(frozen=True)
class Sandbox:
    """The sandbox of one project: `project` holds the user's Pulumi.<stack>.yaml, `home` its `.sandbox/`."""

    project: Path
    home: Path

    @classmethod
    def of(cls, project: Path) -> Sandbox:
        project = project.resolve()
        return cls(project=project, home=project / SANDBOX_FOLDER)

    @property
    def state(self) -> Path:
        return self.home / "state"

    @property
    def cloud_file(self) -> Path:
        return self.home / "azure.json"

    @property
    def copy(self) -> Path:
        return self.home / "project"

    def out(self, stack: str) -> Path:
        return self.home / "out" / stack

    def secrets_file(self, stack: str) -> Path:
        return self.home / "secrets" / f"Pulumi.{stack}.yaml"

    def stack_file(self, stack: str) -> Path:
        return self.project / f"Pulumi.{stack}.yaml"

    # ------------------------------------------------------------------------------------------------ checks

    def stacks(self) -> list[str]:
        return stack_files(self.project)

    def check_stack(self, stack: str) -> str:
        """The user's stack file as text; an unknown stack, or secure values it cannot decrypt, are bad input."""
        path = self.stack_file(stack)
        if not path.is_file():
            raise SandboxError(f"unknown stack {stack!r}: no {path.name}; stacks: {', '.join(self.stacks()) or 'none'}")
        text = path.read_text(encoding="utf-8")
        try:
            document = yaml.safe_load(text) or {}
        except yaml.YAMLError as error:
            raise SandboxError(f"{path.name} is not valid YAML: {error}") from None
        secure = sorted(_secure_keys(document.get("config") or {}))
        if secure:
            raise SandboxError(
                f"{path.name} has secure values ({', '.join(secure)}), encrypted by the stack's own secrets provider, "
                "which the sandbox cannot reach offline: take them out of the stack file for the rehearsal (they are "
                "optional, e.g. kms-aks:monitoring.alertWebhooks), and put them back before you commit"
            )
        return text

    def cloud(self) -> dict[str, tuple[str, dict[str, Any]]]:
        """The stand-in's cloud: the saved one, with the resources `sandbox-azure.yaml` declares outside every stack
        (a bring-your-own-key vault and key, other teams' grants) added where it does not hold them yet."""
        from kms_aks_tools.standin.outside import OUTSIDE_FILE, OutsideError, add_outside
        from kms_aks_tools.standin.saved import SavedCloudError, load_states

        try:
            states = load_states(self.cloud_file)
            add_outside(states, self.project / OUTSIDE_FILE)
        except (SavedCloudError, OutsideError) as error:
            raise SandboxError(str(error)) from None
        return states

    # ------------------------------------------------------------------------------------------------ set-up

    @contextlib.contextmanager
    def locked(self) -> Iterator[None]:
        """One sandbox command at a time: two would both save the stand-in's cloud, and one would be lost."""
        self.home.mkdir(parents=True, exist_ok=True)
        (self.home / ".gitignore").write_text("# kms-aks sandbox: nothing here is committed\n*\n")
        with open(self.home / ".lock", "w") as lock:
            try:
                fcntl.flock(lock, fcntl.LOCK_EX | fcntl.LOCK_NB)
            except BlockingIOError:
                raise SandboxError(
                    f"another `kms-aks sandbox` command is running in {self.home}; wait for it"
                ) from None
            (self.home / MARKER).touch()
            yield

    def refresh_copy(self, stack: str, stack_text: str) -> None:
        """The project copy the CLI runs in: the project as it is now, the user's stack file with the sandbox's
        secrets provider instead of the stack's own (which would need Azure)."""
        policy_venv = subprocess.run(
            ["bash", str(realcli.ROOT / ".ci" / "pulumi-stack"), "policy-venv"],
            env={**os.environ, "PYTHON": str(realcli.ROOT / ".venv" / "bin" / "python")},
            capture_output=True,
            text=True,
            check=False,
        )
        if policy_venv.returncode != 0:
            raise SandboxError(f"the policy pack's virtualenv could not be prepared:\n{policy_venv.stderr[-3000:]}")
        if self.copy.exists():
            shutil.rmtree(self.copy)
        realcli.copy_project(self.project, self.copy)
        for name in self.stacks():
            # Every stack file loses its own provider lines: a stack the sandbox has not initialised has none.
            text = stack_text if name == stack else self.stack_file(name).read_text(encoding="utf-8")
            saved = self.secrets_file(name)
            lines = saved.read_text(encoding="utf-8") if saved.is_file() else ""
            body = realcli.without_secrets_provider(text)
            (self.copy / f"Pulumi.{name}.yaml").write_text(lines + body if lines else body, encoding="utf-8")

    def workspace(self, bin_dir: Path, debug_providers: str) -> realcli.CliWorkspace:
        self.state.mkdir(parents=True, exist_ok=True)  # the file backend needs its folder
        env = realcli.cli_environment(
            bin_dir, home=self.home, backend=self.state, passphrase=PASSPHRASE, debug_providers=debug_providers
        )
        return realcli.CliWorkspace(path=self.copy, env=env)

    def ensure_stack(self, space: realcli.CliWorkspace, stack: str, console: Console) -> None:
        """`pulumi stack init` the first time (the passphrase provider); its provider lines kept for next time."""
        if stack in stack_names(space):
            return
        created = space.pulumi("stack", "init", stack, "--secrets-provider", "passphrase")
        if created.returncode != 0:
            raise SandboxError(f"pulumi stack init {stack} failed:\n{created.stderr.strip()}")
        lines = realcli.secrets_provider_lines(space.stack_file(stack).read_text(encoding="utf-8"))
        self.secrets_file(stack).parent.mkdir(parents=True, exist_ok=True)
        self.secrets_file(stack).write_text("".join(f"{line}\n" for line in lines), encoding="utf-8")
        console.print(f"sandbox: created stack {escape(stack)} in {escape(str(self.state))} (passphrase provider)")


def _secure_keys(config: Any, prefix: str = "") -> Iterator[str]:
    if isinstance(config, dict):
        if set(config) == {"secure"}:
            yield prefix
            return
        for key, value in config.items():
            yield from _secure_keys(value, f"{prefix}.{key}" if prefix else str(key))
    elif isinstance(config, list):
        for index, value in enumerate(config):
            yield from _secure_keys(value, f"{prefix}[{index}]")


def stack_names(space: realcli.CliWorkspace) -> list[str]:
    listed = space.pulumi("stack", "ls", "--json")
    if listed.returncode != 0:
        raise SandboxError(f"pulumi stack ls failed:\n{listed.stderr.strip()}")
    return [entry["name"] for entry in json.loads(listed.stdout or "[]")]
