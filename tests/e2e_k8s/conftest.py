"""A real control plane per test module: etcd, kube-apiserver, our KMS v2 plugin and the Key Vault stand-in.

`control_plane` starts them once per module (the binaries come from `e2e/k8s/build.sh`, built once and
cached in .tools/), so each scenario file starts from an empty etcd and the key's first version; the
processes are always ended, whatever the outcome. `core` is the official client's CoreV1Api on the plane's
kubeconfig and context. `kms_aks` and `kms_aks_process` run the command line in its own process, as an operator
does, from the project's root (the scenarios import them from here).
"""

from __future__ import annotations

import os
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path

import pytest
from kubernetes import client, config

from kms_aks_tools.offline.mock_engine import ROOT
from testbed import ControlPlane, ControlPlaneError, build_binaries

ENV = {**os.environ, "COLUMNS": "400", "TERM": "dumb"}


def kms_aks(*args: str, timeout: float = 600) -> subprocess.CompletedProcess[str]:
    """`kms-aks <args>` to its end, as an operator runs it: its exit code and output (stderr apart)."""
    return subprocess.run(
        [sys.executable, "-m", "kms_aks_tools.cli", *args],
        cwd=ROOT,
        env=ENV,
        capture_output=True,
        text=True,
        timeout=timeout,
        check=False,
    )


def kms_aks_process(*args: str) -> subprocess.Popen[str]:
    """`kms-aks <args>` started and left running (to be killed or waited for), stderr merged into stdout."""
    return subprocess.Popen(
        [sys.executable, "-m", "kms_aks_tools.cli", *args],
        cwd=ROOT,
        env=ENV,
        stdout=subprocess.PIPE,
        stderr=subprocess.STDOUT,
        text=True,
    )


def pytest_collection_modifyitems(items: list[pytest.Item]) -> None:
    for item in items:
        if Path(item.path).is_relative_to(Path(__file__).parent):
            item.add_marker(pytest.mark.e2e_k8s)


@pytest.fixture(scope="session")
def k8s_bin() -> Path:
    try:
        return build_binaries()
    except ControlPlaneError as err:
        pytest.fail(str(err))


@pytest.fixture(scope="module")
def control_plane(k8s_bin: Path, tmp_path_factory: pytest.TempPathFactory) -> Iterator[ControlPlane]:
    with ControlPlane.start(tmp_path_factory.mktemp("control-plane"), bin_dir=k8s_bin) as plane:
        yield plane


@pytest.fixture(scope="module")
def api_client(control_plane: ControlPlane) -> Iterator[client.ApiClient]:
    api = config.new_client_from_config(config_file=str(control_plane.kubeconfig), context=control_plane.context)
    with api:
        yield api


@pytest.fixture(scope="module")
def core(api_client: client.ApiClient) -> client.CoreV1Api:
    return client.CoreV1Api(api_client)


@pytest.hookimpl(hookwrapper=True)
def pytest_runtest_makereport(item: pytest.Item, call: pytest.CallInfo) -> Iterator[None]:
    """On a failure, the tails of the control plane's logs (they hold no tokens or plaintext)."""
    outcome = yield
    report = outcome.get_result()
    plane = item.funcargs.get("control_plane") if hasattr(item, "funcargs") else None
    if report.failed and isinstance(plane, ControlPlane):
        for log in sorted(plane.logs.glob("*.log")):
            tail = "\n".join(log.read_text(errors="replace").splitlines()[-15:])
            report.sections.append((f"control plane: {log.name} (last lines)", tail))
