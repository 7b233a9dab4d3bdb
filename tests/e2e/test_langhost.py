"""The e2e Python language host against the real one (docs/real-cli.md, "The language host against the real one").

Each scenario is a minimal Python project of its own under the real CLI (same backend and environment as the
session's workspace), so only the host's behaviour is under test: what it does with the runtime options, the
stack's config and a missing virtualenv, and which RPCs it answers. The expected texts are the real host's
(pulumi/pulumi sdk/python/cmd/pulumi-language-python/main.go).
"""

from __future__ import annotations

import subprocess
from collections.abc import Iterator
from pathlib import Path

import grpc
import pytest
from google.protobuf import empty_pb2
from pulumi.runtime.proto import language_pb2, language_pb2_grpc

from tests.e2e.conftest import ROOT, Workspace

PROGRAM = """import os
import pulumi

pulumi.log.info("PULUMI_CONFIG=" + repr(os.environ.get("PULUMI_CONFIG")))
pulumi.log.info("PULUMI_CONFIG_SECRET_KEYS=" + repr(os.environ.get("PULUMI_CONFIG_SECRET_KEYS")))
"""


def _project(workspace: Workspace, path: Path, options: str, venv: str = ".venv") -> Workspace:
    path.mkdir(parents=True)
    (path / "Pulumi.yaml").write_text(
        f"name: langhost-check\nruntime:\n  name: python\n  options:\n    virtualenv: {venv}\n{options}"
    )
    (path / "__main__.py").write_text(PROGRAM)
    (path / "requirements.txt").write_text("# nothing: the scenario checks the host, not the program\n")
    if venv == ".venv":
        (path / ".venv").symlink_to(ROOT / ".venv")
    space = Workspace(path=path, env=workspace.env, out=path / "out")
    stack = f"lh-{path.name}"
    created = space.pulumi("stack", "init", stack, "--secrets-provider", "passphrase")
    assert created.returncode == 0, created.stderr
    return space


def _preview(space: Workspace) -> tuple[int, str]:
    result = space.pulumi("preview", "--stack", f"lh-{space.path.name}")
    return result.returncode, result.stdout + result.stderr


def test_a_stack_without_config_gets_no_pulumi_config_variable(workspace: Workspace, tmp_path: Path) -> None:
    code, output = _preview(_project(workspace, tmp_path / "noconfig", ""))
    assert code == 0, output[-3000:]
    # The real host sets PULUMI_CONFIG only when the engine sent config; the secret keys default to [].
    assert "PULUMI_CONFIG=None" in output, output[-3000:]
    assert "PULUMI_CONFIG_SECRET_KEYS='[]'" in output, output[-3000:]


def test_the_typechecker_option_runs_mypy_and_fails_when_it_is_not_installed(
    workspace: Workspace, tmp_path: Path
) -> None:
    code, output = _preview(_project(workspace, tmp_path / "mypy", "    typechecker: mypy\n"))
    assert code != 0
    assert (
        "The typechecker option is set to mypy, but mypy is not installed. Please add an entry for mypy to "
        "requirements.txt and run `.venv/bin/pip install -r requirements.txt`"
    ) in output, output[-3000:]


def test_an_unknown_toolchain_or_typechecker_is_refused(workspace: Workspace, tmp_path: Path) -> None:
    code, output = _preview(_project(workspace, tmp_path / "conda", "    toolchain: conda\n"))
    assert code != 0 and "unsupported toolchain option: conda" in output, output[-3000:]
    code, output = _preview(_project(workspace, tmp_path / "pytype", "    typechecker: pytype\n"))
    assert code != 0 and "unsupported typechecker option: pytype" in output, output[-3000:]


def test_a_missing_virtualenv_is_created_not_refused(workspace: Workspace, tmp_path: Path) -> None:
    space = _project(workspace, tmp_path / "freshvenv", "", venv="venv")
    # Nothing may download at run time: pip sees no index (the toolchain's pip upgrade then fails, after the
    # virtualenv exists; what matters here is that the host created it instead of refusing the run).
    space.env = {**space.env, "PIP_NO_INDEX": "1"}
    assert not (space.path / "venv").exists()
    _, output = _preview(space)
    # GetRequiredPackages ensured the virtualenv (`python -m venv`, then requirements.txt) before Run validated it;
    # the old host refused with the toolchain's "virtualenv ... does not exist".
    assert (space.path / "venv" / "bin" / "python").exists(), output[-3000:]
    assert "does not exist" not in output, output[-3000:]


@pytest.fixture
def host(workspace: Workspace) -> Iterator[language_pb2_grpc.LanguageRuntimeStub]:
    binary = Path(workspace.env["PATH"].split(":")[0]) / "pulumi-language-python"
    process = subprocess.Popen([str(binary)], stdout=subprocess.PIPE, text=True)
    try:
        port = int(process.stdout.readline())  # type: ignore[union-attr]
        yield language_pb2_grpc.LanguageRuntimeStub(grpc.insecure_channel(f"127.0.0.1:{port}"))
    finally:
        process.terminate()
        process.wait(timeout=10)


def test_the_host_answers_cancel_and_refuses_what_it_does_not_implement(
    host: language_pb2_grpc.LanguageRuntimeStub,
) -> None:
    assert host.Cancel(empty_pb2.Empty()) == empty_pb2.Empty()  # the real host's Cancel interrupts the program
    for call, request in (
        (host.GetRequiredPlugins, language_pb2.GetRequiredPluginsRequest()),  # Unimplemented in the real host too
        (host.GeneratePackage, language_pb2.GeneratePackageRequest()),  # codegen: not in this host
    ):
        with pytest.raises(grpc.RpcError) as refused:
            call(request)
        assert refused.value.code() == grpc.StatusCode.UNIMPLEMENTED
