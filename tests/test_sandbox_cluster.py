"""The sandbox's cluster following the stand-in's ManagedCluster, without the binaries: which key the plugin's two
slots hold after each `up` (the slots file the Go plugin reads), when the API server restarts, and what the user is
shown. The processes themselves run in `make e2e` (tests/e2e/test_sandbox_loop.py)."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import pytest
import requests

from kms_aks_tools.cli.console import make_console
from testbed.controlplane import ControlPlane
from testbed.sandbox_cluster import MANAGED_CLUSTER, SandboxClusters, cluster_kms

VAULT = "https://kv-kmsaks-dev-01.vault.azure.net/"
V1, V2, V3 = "1a" * 16, "2b" * 16, "3c" * 16


def cloud(version: str, enabled: bool = True) -> dict[str, tuple[str, dict[str, Any]]]:
    kms = {"enabled": enabled, "keyId": f"{VAULT}keys/aks-kms-dev/{version}"}
    outputs = {"name": "aks-kms-dev", "securityProfile": {"azureKeyVaultKms": kms}}
    return {"/x/managedClusters/aks-kms-dev": (MANAGED_CLUSTER, outputs)}


class Answer:
    def __init__(self, status_code: int, text: str = "") -> None:
        self.status_code, self.text = status_code, text


class FakePlane(ControlPlane):
    """A ControlPlane whose processes are not started: its slot bookkeeping (and slots file) is the real one."""

    events: list[str]

    def __init__(self, workdir: Path) -> None:
        super().__init__(workdir, Path("/nonexistent"), vault_url=VAULT, key_name="aks-kms-dev", detached=True)
        self.current_version, self.events = V1, []
        self.workdir.mkdir(parents=True)
        self._write_slots()

    def _wait_for_status_key(self, key_id: str) -> None:
        self.events.append("waited for the new key's Status")

    def restart_apiserver(self, *, ready: bool = True, timeout: float = 0) -> None:
        self.events.append(f"restarted the API server (ready={ready})")

    def running(self) -> bool:
        return True

    def save(self) -> Path:
        self.events.append("saved")
        return self.workdir / "plane.json"

    def api_get(self, path: str, *, timeout: float = 30) -> requests.Response:
        if path.startswith("/readyz"):
            return Answer(500, "[+]ping ok\n[-]informer-sync failed: reason withheld\nreadyz check failed")  # type: ignore[return-value]
        return Answer(429)  # type: ignore[return-value]

    def slots(self) -> dict[str, str | None]:
        return json.loads((self.workdir / "key-slots.json").read_text())


def test_cluster_kms_reads_the_managed_cluster_by_name() -> None:
    assert cluster_kms(cloud(V1), "aks-kms-dev").key_id.endswith(V1)  # type: ignore[union-attr]
    assert cluster_kms(cloud(V1, enabled=False), "aks-kms-dev").enabled is False  # type: ignore[union-attr]
    assert cluster_kms(cloud(V1), "another") is None


def test_two_rotations_move_the_slots_as_akss_plugin_does_and_the_second_shows_the_outage(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    plane = FakePlane(tmp_path / "plane")
    clusters = SandboxClusters(tmp_path)
    monkeypatch.setattr(clusters, "attached", lambda stack: plane)
    console = make_console()

    clusters.follow("dev", cloud(V1), "aks-kms-dev", console)
    assert plane.slots() == {"current": f"{VAULT}keys/aks-kms-dev/{V1}", "previous": None} and plane.events == []
    assert "KMS key unchanged" in capsys.readouterr().out

    # The first rotation: v1 moves to the previous slot (still decrypts); nothing dropped, no restart.
    clusters.follow("dev", cloud(V2), "aks-kms-dev", console)
    assert plane.slots() == {"current": f"{VAULT}keys/aks-kms-dev/{V2}", "previous": f"{VAULT}keys/aks-kms-dev/{V1}"}
    assert plane.events == ["waited for the new key's Status", "saved"]
    out = capsys.readouterr().out
    assert "switched key" in out and "dropped" not in out and "outage" not in out

    # The second rotation: v1 is dropped. The API server restarts (its DEK cache goes) and the user sees the outage.
    plane.events.clear()
    monkeypatch.setattr("testbed.sandbox_cluster.READY_TIMEOUT", 0.0)
    clusters.follow("dev", cloud(V3), "aks-kms-dev", console)
    assert plane.slots() == {"current": f"{VAULT}keys/aks-kms-dev/{V3}", "previous": f"{VAULT}keys/aks-kms-dev/{V2}"}
    assert plane.events == ["restarted the API server (ready=False)", "saved"]
    out = " ".join(capsys.readouterr().out.split())
    assert f"dropped {VAULT}keys/aks-kms-dev/{V1}" in out
    assert "GET /readyz: HTTP 500 ([-]informer-sync failed: reason withheld)" in out
    assert "GET /api/v1/secrets: HTTP 429" in out and "outage" in out


def test_kms_off_or_another_key_is_said_not_followed_silently(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    plane = FakePlane(tmp_path / "plane")
    clusters = SandboxClusters(tmp_path)
    monkeypatch.setattr(clusters, "attached", lambda stack: plane)
    clusters.follow("dev", cloud(V2, enabled=False), "aks-kms-dev", make_console())
    assert "KMS disabled; no KMS to follow" in capsys.readouterr().out
    kms = {"enabled": True, "keyId": f"https://kv-other.vault.azure.net/keys/k/{V2}"}
    other = {"/x": (MANAGED_CLUSTER, {"name": "aks-kms-dev", "securityProfile": {"azureKeyVaultKms": kms}})}
    clusters.follow("dev", other, "aks-kms-dev", make_console())
    assert "moved to another key" in " ".join(capsys.readouterr().out.split())
    assert plane.slots()["current"] == f"{VAULT}keys/aks-kms-dev/{V1}" and plane.events == []
