"""The real Pulumi CLI, run offline against the Azure stand-in: what `make e2e` and `kms-aks sandbox` share.

- `toolchain_bin()` builds (or reuses) the CLI of `e2e/toolchain/build.sh` and returns its bin folder;
- `copy_project()` copies the project where the CLI may write (`pulumi stack init` adds lines to the stack file);
- `cli_environment()` is the environment CI gives the CLI, pointed at a file backend and the stand-in's ports,
  with nothing downloaded at run time;
- `CliWorkspace` runs commands there: `pulumi ...`, and the workflows' own `.ci/pulumi-stack ...`.

Both `tests/e2e/conftest.py` and `kms_aks_tools/sandbox/actions.py` use these, so the sandbox runs exactly what the e2e
proves (docs/real-cli.md, docs/sandbox.md).
"""

from __future__ import annotations

import os
import shutil
import subprocess
from dataclasses import dataclass
from pathlib import Path

import yaml

from kms_aks_tools.cli.exits import UserError
from kms_aks_tools.project.stack_file import PACKAGE_ROOT

# The checkout the tooling runs from: the toolchain is built into its `.tools/`, its `.venv` runs the program.
ROOT = PACKAGE_ROOT
TOOLCHAIN_SCRIPT = ROOT / "e2e" / "toolchain" / "build.sh"
# Folders a project copy leaves out: what the CLI does not run (tests, docs) and what is built per checkout.
SKIPPED_PREFIXES = ("tests/", "benchmarks/", "docs/")
# The top-level keys `pulumi stack init` writes into a stack file for its secrets provider (and `.ci/pulumi-stack
# check-secrets` looks for).
SECRETS_PROVIDER_KEYS = ("secretsprovider:", "encryptedkey:", "encryptionsalt:")
_NOT_PROJECT = {
    ".git",
    ".venv",
    ".venv-scan",
    ".tools",
    ".sandbox",
    "venv",
    "out",
    "__pycache__",
    ".pytest_cache",
    ".ruff_cache",
    "node_modules",
    "build",
}


class ToolchainError(UserError):
    """The CLI cannot be built here (no Go, or the build failed): a message for the user, exit 2."""


def toolchain_bin(*, show_progress: bool = False) -> Path:
    """The bin folder of the real CLI, built by `e2e/toolchain/build.sh` on the first call (needs Go), reused after.

    With `show_progress`, the build's progress lines go to this process's stderr as they come (a cold build takes
    minutes); otherwise they are kept for the error message.
    """
    script = TOOLCHAIN_SCRIPT
    if shutil.which("go") is None:
        raise ToolchainError(
            "the real Pulumi CLI is built from its Go module, and `go` is not on PATH: install Go 1.26 or later "
            "(https://go.dev/doc/install), then run this again (docs/real-cli.md: the first build takes minutes, "
            "later runs reuse .tools/)"
        )
    built = subprocess.run(
        ["bash", str(script)],
        stdout=subprocess.PIPE,
        stderr=None if show_progress else subprocess.PIPE,
        text=True,
        check=False,
    )
    if built.returncode != 0 or not built.stdout.strip():
        raise ToolchainError(
            f"{script.relative_to(ROOT)} failed (exit {built.returncode}):\n{(built.stderr or '')[-6000:]}"
        )
    return Path(built.stdout.strip().splitlines()[-1])


def project_files(source: Path) -> list[str]:
    """The project's files, relative: git's view (tracked and untracked, not ignored) in a checkout, else a walk
    that leaves out virtualenvs, build output and caches."""
    if (source / ".git").exists():
        listed = subprocess.run(
            ["git", "ls-files", "-co", "--exclude-standard"], cwd=source, capture_output=True, text=True, check=True
        ).stdout.splitlines()
    else:
        listed = []
        for folder, subfolders, files in os.walk(source):
            subfolders[:] = sorted(d for d in subfolders if d not in _NOT_PROJECT and not d.endswith(".egg-info"))
            base = Path(folder).relative_to(source)
            listed.extend(str(base / name) if str(base) != "." else name for name in sorted(files))
    return [p for p in listed if not p.startswith(SKIPPED_PREFIXES) and (source / p).is_file()]


def copy_project(source: Path, destination: Path, venv: Path = ROOT / ".venv") -> None:
    """Copies the project the CLI runs (not its tests or docs) to `destination`, with `.venv` linked to `venv`
    (Pulumi.yaml: `virtualenv: .venv`) and, when `policies/venv` exists in the tooling checkout, the pack's too."""
    for relative in project_files(source):
        target = destination / relative
        target.parent.mkdir(parents=True, exist_ok=True)
        shutil.copy2(source / relative, target)
    (destination / ".venv").symlink_to(venv)
    policy_venv = ROOT / "policies" / "venv"
    if policy_venv.is_dir() and (destination / "policies").is_dir():
        (destination / "policies" / "venv").symlink_to(policy_venv)


def cli_environment(
    bin_dir: Path, *, home: Path, backend: Path, passphrase: str, debug_providers: str, venv: Path = ROOT / ".venv"
) -> dict[str, str]:
    """The environment of every CLI run: CI's, with a file backend, the passphrase secrets provider, the stand-in
    attached as the providers, and no update check or plugin download (nothing leaves the machine)."""
    return {
        "PATH": os.pathsep.join([str(bin_dir), str(venv / "bin"), "/usr/local/bin", "/usr/bin", "/bin"]),
        "HOME": str(home),
        "PULUMI_HOME": str(home / "pulumi-home"),
        "PULUMI_BACKEND_URL": backend.as_uri(),
        "PULUMI_CONFIG_PASSPHRASE": passphrase,
        "PULUMI_SKIP_UPDATE_CHECK": "true",
        "PULUMI_DISABLE_AUTOMATIC_PLUGIN_ACQUISITION": "true",
        "PULUMI_DEBUG_PROVIDERS": debug_providers,
        "KMS_AKS": str(venv / "bin" / "kms-aks"),
        "PYTHON": str(venv / "bin" / "python"),
        "LANG": "C.UTF-8",
        # HOME is the run's own; pip keeps the developer's download cache.
        "PIP_CACHE_DIR": os.environ.get("PIP_CACHE_DIR", str(Path.home() / ".cache" / "pip")),
    }


@dataclass
class CliWorkspace:
    """A project copy where the real CLI runs with `env`."""

    path: Path
    env: dict[str, str]

    def run(self, *args: str, timeout: float | None = None, stream: bool = False) -> subprocess.CompletedProcess[str]:
        """Runs a command in the workspace; with `stream`, its output goes to this process's as it comes."""
        pipe = None if stream else subprocess.PIPE
        return subprocess.run(
            list(args), cwd=self.path, env=self.env, stdout=pipe, stderr=pipe, text=True, timeout=timeout, check=False
        )

    def pulumi(self, *args: str, **options: object) -> subprocess.CompletedProcess[str]:
        return self.run("pulumi", *args, "--non-interactive", **options)  # type: ignore[arg-type]

    def ci(self, *args: str, **options: object) -> subprocess.CompletedProcess[str]:
        """The workflows' commands (`.ci/pulumi-stack`)."""
        return self.run("bash", ".ci/pulumi-stack", *args, **options)  # type: ignore[arg-type]

    def stack_file(self, stack: str) -> Path:
        return self.path / f"Pulumi.{stack}.yaml"


def set_stack_config(stack_file: Path, key: str, value: object) -> None:
    """Sets `kms-aks:<key>` (a `cluster.systemNodePool.count` style path) in a stack file, as a reviewer's PR would
    (in a scratch copy: the file is rewritten without its comments)."""
    document = yaml.safe_load(stack_file.read_text(encoding="utf-8"))
    top, _, rest = key.partition(".")
    node = document["config"]
    parts = [f"kms-aks:{top}", *rest.split(".")] if rest else [f"kms-aks:{top}"]
    for part in parts[:-1]:
        node = node.setdefault(part, {})
    node[parts[-1]] = value
    stack_file.write_text(yaml.safe_dump(document, sort_keys=False), encoding="utf-8")


def secrets_provider_lines(text: str) -> list[str]:
    """The lines of a stack file that name its secrets provider (`pulumi stack init` writes them)."""
    return [line for line in text.splitlines() if line.startswith(SECRETS_PROVIDER_KEYS)]


def without_secrets_provider(text: str) -> str:
    """The stack file without those lines: the rest is the stack's configuration."""
    return "".join(line for line in text.splitlines(keepends=True) if not line.startswith(SECRETS_PROVIDER_KEYS))
