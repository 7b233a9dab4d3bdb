"""The real Pulumi CLI and engine, attached to the Azure stand-in, with a local file backend.

One session: the toolchain is built (or reused) by `e2e/toolchain/build.sh`, the stand-in serves azure-native,
azuread and time for the whole session (one in-memory Azure), and the project is copied into a temporary
workspace so that `pulumi stack init` and config edits never touch the checkout. The commands are the
workflows' own (`.ci/pulumi-stack`), run with the environment CI gives them.
"""

from __future__ import annotations

import os
import shutil
import subprocess
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path

import pytest
import yaml

from kms_aks_tools.standin_provider import Standin, running_standin

ROOT = Path(__file__).resolve().parents[2]
PASSPHRASE = "kms-aks e2e passphrase"
# Generous: the first preview of a session imports azure-native (~10 s) while the pack boots.
COMMAND_TIMEOUT = 600


def pytest_collection_modifyitems(items: list[pytest.Item]) -> None:
    for item in items:
        if Path(item.path).is_relative_to(Path(__file__).parent):
            item.add_marker(pytest.mark.e2e)


@dataclass
class Workspace:
    """A copy of the project where the real CLI runs, with the environment CI gives it."""

    path: Path
    env: dict[str, str]
    out: Path
    runs: list[str] = field(default_factory=list)
    standin: Standin | None = None  # the session's Azure stand-in (one cloud for every workspace)

    def run(self, *args: str, timeout: float = COMMAND_TIMEOUT) -> subprocess.CompletedProcess[str]:
        """Runs a command in the workspace; the transcript is kept for the failure report."""
        result = subprocess.run(
            list(args), cwd=self.path, env=self.env, capture_output=True, text=True, timeout=timeout, check=False
        )
        self.runs.append(
            f"$ {' '.join(args)}  -> exit {result.returncode}\n{result.stdout[-4000:]}{result.stderr[-4000:]}"
        )
        return result

    def pulumi(self, *args: str) -> subprocess.CompletedProcess[str]:
        return self.run("pulumi", *args, "--non-interactive")

    def ci(self, *args: str) -> subprocess.CompletedProcess[str]:
        """The workflows' commands (`.ci/pulumi-stack`)."""
        return self.run("bash", ".ci/pulumi-stack", *args)

    def stack_file(self, stack: str) -> Path:
        return self.path / f"Pulumi.{stack}.yaml"

    def set_config(self, stack: str, key: str, value: object) -> None:
        """Edits Pulumi.<stack>.yaml as a reviewer's PR would (`cluster.systemNodePool.count` style paths)."""
        document = yaml.safe_load(self.stack_file(stack).read_text())
        top, _, rest = key.partition(".")
        node = document["config"]
        parts = [f"kms-aks:{top}", *rest.split(".")] if rest else [f"kms-aks:{top}"]
        for part in parts[:-1]:
            node = node.setdefault(part, {})
        node[parts[-1]] = value
        self.stack_file(stack).write_text(yaml.safe_dump(document, sort_keys=False))

    def export(self, stack: str) -> dict:
        result = self.pulumi("stack", "export", "--stack", stack)
        assert result.returncode == 0, result.stderr
        return __import__("json").loads(result.stdout)


def _toolchain_bin() -> Path:
    built = subprocess.run(
        ["bash", str(ROOT / "e2e" / "toolchain" / "build.sh")], capture_output=True, text=True, check=False
    )
    if built.returncode != 0:
        pytest.fail(f"the Pulumi CLI could not be built:\n{built.stderr[-6000:]}")
    return Path(built.stdout.strip().splitlines()[-1])


def _copy_project(destination: Path) -> None:
    listed = subprocess.run(
        ["git", "ls-files", "-co", "--exclude-standard"], cwd=ROOT, capture_output=True, text=True, check=True
    ).stdout.splitlines()
    for relative in listed:
        source = ROOT / relative
        if source.is_file() and not relative.startswith(("tests/", "benchmarks/", "docs/")):
            target = destination / relative
            target.parent.mkdir(parents=True, exist_ok=True)
            shutil.copy2(source, target)
    # The program's virtualenv (Pulumi.yaml: virtualenv: .venv) is the one `make` built.
    (destination / ".venv").symlink_to(ROOT / ".venv")


@pytest.fixture(scope="session")
def workspace(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Workspace]:
    bin_dir = _toolchain_bin()
    base = tmp_path_factory.mktemp("e2e")
    project = base / "project"
    _copy_project(project)
    (base / "state").mkdir()
    with running_standin(sleep_cap=1.0) as standin:
        env = {
            "PATH": os.pathsep.join([str(bin_dir), str(ROOT / ".venv" / "bin"), "/usr/local/bin", "/usr/bin", "/bin"]),
            "HOME": str(base),
            "PULUMI_HOME": str(base / "pulumi-home"),
            "PULUMI_BACKEND_URL": (base / "state").as_uri(),
            "PULUMI_CONFIG_PASSPHRASE": PASSPHRASE,
            "PULUMI_SKIP_UPDATE_CHECK": "true",
            "PULUMI_DISABLE_AUTOMATIC_PLUGIN_ACQUISITION": "true",
            "PULUMI_DEBUG_PROVIDERS": standin.debug_providers,
            "KMS_AKS": str(ROOT / ".venv" / "bin" / "kms-aks"),
            "PYTHON": str(ROOT / ".venv" / "bin" / "python"),
            "LANG": "C.UTF-8",
            # HOME is the session's own; pip keeps the developer's download cache.
            "PIP_CACHE_DIR": os.environ.get("PIP_CACHE_DIR", str(Path.home() / ".cache" / "pip")),
        }
        space = Workspace(path=project, env=env, out=base / "out", standin=standin)
        prepared = space.ci("policy-venv")
        assert prepared.returncode == 0, prepared.stderr
        yield space


@pytest.hookimpl(hookwrapper=True)
def pytest_runtest_makereport(item: pytest.Item, call: pytest.CallInfo) -> Iterator[None]:
    outcome = yield
    report = outcome.get_result()
    space = item.funcargs.get("workspace") if hasattr(item, "funcargs") else None
    if report.failed and isinstance(space, Workspace) and space.runs:
        report.sections.append(("real CLI transcript (last commands)", "\n".join(space.runs[-4:])))
