"""The real Pulumi CLI and engine, attached to the Azure stand-in, with a local file backend.

One session: the toolchain is built (or reused) by `e2e/toolchain/build.sh`, the stand-in serves azure-native,
azuread and time for the whole session (one in-memory Azure), and the project is copied into a temporary
workspace so that `pulumi stack init` and config edits never touch the checkout. The commands are the
workflows' own (`.ci/pulumi-stack`), run with the environment CI gives them. The toolchain, the copy and the
environment are `kms_aks_tools.offline.realcli`'s, which `kms-aks sandbox` uses too.
"""

from __future__ import annotations

import json
import subprocess
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path

import pytest

from kms_aks_tools.offline import realcli
from kms_aks_tools.standin.provider import Standin, running_standin

ROOT = realcli.ROOT
PASSPHRASE = "kms-aks e2e passphrase"
# Generous: the first preview of a session imports azure-native (~10 s) while the pack boots.
COMMAND_TIMEOUT = 600


def pytest_collection_modifyitems(items: list[pytest.Item]) -> None:
    for item in items:
        if Path(item.path).is_relative_to(Path(__file__).parent):
            item.add_marker(pytest.mark.e2e)


@dataclass
class Workspace(realcli.CliWorkspace):
    """A copy of the project where the real CLI runs, with the environment CI gives it (`kms_aks_tools.offline.realcli`,
    shared with `kms-aks sandbox`), keeping a transcript of its commands for the failure report."""

    out: Path = field(default=Path())
    runs: list[str] = field(default_factory=list)
    standin: Standin | None = None  # the session's Azure stand-in (one cloud for every workspace)

    def run(  # type: ignore[override]
        self, *args: str, timeout: float = COMMAND_TIMEOUT, stream: bool = False
    ) -> subprocess.CompletedProcess[str]:
        result = super().run(*args, timeout=timeout, stream=stream)
        self.runs.append(
            f"$ {' '.join(args)}  -> exit {result.returncode}\n{(result.stdout or '')[-4000:]}"
            f"{(result.stderr or '')[-4000:]}"
        )
        return result

    def set_config(self, stack: str, key: str, value: object) -> None:
        """Edits Pulumi.<stack>.yaml as a reviewer's PR would (`cluster.systemNodePool.count` style paths)."""
        realcli.set_stack_config(self.stack_file(stack), key, value)

    def export(self, stack: str) -> dict:
        result = self.pulumi("stack", "export", "--stack", stack)
        assert result.returncode == 0, result.stderr
        return json.loads(result.stdout)


def toolchain_bin() -> Path:
    try:
        return realcli.toolchain_bin()
    except realcli.ToolchainError as error:
        pytest.fail(f"the Pulumi CLI could not be built: {error}")


@pytest.fixture(scope="session")
def workspace(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Workspace]:
    bin_dir = toolchain_bin()
    base = tmp_path_factory.mktemp("e2e")
    project = base / "project"
    realcli.copy_project(ROOT, project)
    (base / "state").mkdir()
    with running_standin(sleep_cap=1.0) as standin:
        env = realcli.cli_environment(
            bin_dir, home=base, backend=base / "state", passphrase=PASSPHRASE, debug_providers=standin.debug_providers
        )
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
