"""Shared fixtures, one of each per test session (per xdist worker): the shipped stacks recorded once under the
mock engine, one policy pack process, and `kms-aks` run in-process against that pack and those runs.

Starting Python, importing the SDKs and booting the pack cost more than most tests themselves, so a test runs
the command line in-process unless it is about the process (exit status reaching the shell, the Makefile).
Program runs are shared through tests/engine.py: a run with the same inputs is made once per session.
docs/development.md ("The test suite") says what is shared and how a new test uses it.
"""

from __future__ import annotations

import gc
import io
import subprocess
from collections.abc import Callable, Iterator
from pathlib import Path

import pytest

from kms_aks_tools.cli import main as cli
from kms_aks_tools.offline import mock_engine
from kms_aks_tools.offline import plan as plan_module
from kms_aks_tools.offline.policy_pack import POLICY_PACK_DIR, PolicyClient, PolicyPackProcess
from kms_aks_tools.offline.recording import RecordedStack
from tests import engine
from tests.policy_support import AskOnceClient

# The order the two workers get the test files in: the costliest first (tests/file_order.py).
pytest_plugins = ["tests.file_order"]


def pytest_collection_finish(session: pytest.Session) -> None:
    """What collection imported (the SDKs, the program, every test module) lives as long as the session: moved out
    of the collector's sight, so that each full collection later scans only what tests allocate."""
    gc.freeze()


def _clean(stack: str, *, preview: bool = False) -> RecordedStack:
    recorded = engine.shared_stack(stack, preview=preview)
    assert recorded.error is None, recorded.error
    return recorded


@pytest.fixture(scope="session")
def dev_stack() -> RecordedStack:
    return _clean("dev")


@pytest.fixture(scope="session")
def prod_stack() -> RecordedStack:
    return _clean("prod")


@pytest.fixture(scope="session")
def dev_preview() -> RecordedStack:
    return _clean("dev", preview=True)


@pytest.fixture(scope="session")
def prod_preview() -> RecordedStack:
    return _clean("prod", preview=True)


@pytest.fixture(scope="session")
def policy_pack() -> Iterator[PolicyPackProcess]:
    """The real pack, started once and driven over its gRPC protocol; each user configures it before a check."""
    with PolicyPackProcess() as process:
        yield process


@pytest.fixture
def pack_client(policy_pack: PolicyPackProcess) -> PolicyClient:
    return policy_pack.client


@pytest.fixture(scope="session")
def _ask_once_session(policy_pack: PolicyPackProcess) -> Iterator[AskOnceClient]:
    client = AskOnceClient(policy_pack)
    try:
        yield client
    finally:
        client.close()


@pytest.fixture
def ask_once_client(_ask_once_session: AskOnceClient) -> AskOnceClient:
    """The session's pack, each distinct question sent once per session (`AskOnceClient`)."""
    _ask_once_session.forget_configuration()
    return _ask_once_session


class _RunningPack:
    """Stands in for a fresh `PolicyPackProcess` in `kms-aks plan`: the session's pack, already running, each distinct
    question asked once (`AskOnceClient`; the plan configures it before its checks, as it would a fresh pack)."""

    def __init__(self, client: AskOnceClient) -> None:
        self._client = client

    def start(self) -> _RunningPack:
        return self

    def wait_ready(self, timeout: float = 0) -> PolicyClient:
        self._client.forget_configuration()
        return self._client

    def close(self) -> None:
        """The session owns the process."""


KmsAks = Callable[..., subprocess.CompletedProcess[str]]


@pytest.fixture
def kms_aks(
    _ask_once_session: AskOnceClient, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> KmsAks:
    """`kms-aks <args>` in this process, as the console script runs it; returns (returncode, stdout, stderr).

    The program runs through tests/engine.py (each distinct run once per session) and the pack is the session's,
    asked each distinct question once."""

    def process(pack_dir: Path = POLICY_PACK_DIR) -> PolicyPackProcess | _RunningPack:
        return _RunningPack(_ask_once_session) if Path(pack_dir) == POLICY_PACK_DIR else PolicyPackProcess(pack_dir)

    monkeypatch.setattr(plan_module, "PolicyPackProcess", process)
    monkeypatch.setattr(mock_engine, "run_config", engine.run_config)

    def run(*args: str, stdin: str | None = None) -> subprocess.CompletedProcess[str]:
        capsys.readouterr()  # start from nothing
        if stdin is not None:
            monkeypatch.setattr("sys.stdin", io.StringIO(stdin))
        try:
            code = cli.main(list(args))
        except SystemExit as exit_:  # argparse's usage errors
            code = exit_.code if isinstance(exit_.code, int) else 2
        captured = capsys.readouterr()
        return subprocess.CompletedProcess(["kms-aks", *args], code, captured.out, captured.err)

    return run
