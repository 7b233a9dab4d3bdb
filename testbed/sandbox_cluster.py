"""The sandbox's clusters: for each sandboxed stack with KMS, a local Kubernetes control plane whose KMS follows
the stand-in's ManagedCluster, so `kms-aks reencrypt` and `kms-aks key-status` run against it unchanged.

After every `kms-aks sandbox up`, `follow` reads the stack's ManagedCluster from the stand-in's cloud
(`securityProfile.azureKeyVaultKms`: enabled, keyId) and brings the stack's control plane in line:

- none yet: it starts etcd, kube-apiserver and the project's KMS v2 plugin (`testbed.controlplane.ControlPlane`,
  the binaries `make e2e-k8s` builds), detached, under `.sandbox/clusters/<stack>/`, Secrets encrypted with the
  cluster's key version. The Key Vault data plane it wraps through is the cloud's own (`keyvault.CloudKeyStore`):
  the versions the Azure stand-in's Key resources hold, and those `kms-aks sandbox key-version` added;
- a new keyId: the plugin's two slots move as AKS's do (the current key becomes the previous one, the previous
  one is dropped), and the API server picks the new key up from the plugin's Status. When a key is dropped,
  the API server restarts, as AKS's control plane does on an update: a Secret still under the dropped key
  cannot be read any more, and `follow` shows what a user then sees (readyz's informer-sync failure, 429 on
  lists of Secrets), the outage the rotation gate prevents.

`.sandbox/kubeconfig` holds one context per stack, `sandbox-<stack>`. Every process listens on 127.0.0.1 only.
`sandbox destroy` and `sandbox reset` stop them.

The control plane is the test bed's, which the installed package does not hold: `kms-aks sandbox` (which works
from a checkout, as the CLI build it runs does) runs this file as a script, never imports it:

    python testbed/sandbox_cluster.py follow --home .sandbox --stack dev --cluster aks-kms-dev
    python testbed/sandbox_cluster.py stop --home .sandbox [--stack dev]      # every stack without --stack
    python testbed/sandbox_cluster.py status --home .sandbox

Exit codes: 0 done; 1 the cluster could not start or follow (the message says why).
"""

from __future__ import annotations

import argparse
import contextlib
import shutil
import sys
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any

if __package__ in (None, ""):  # run as a script (see above): the checkout's root holds the testbed package
    sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

import requests
import yaml
from rich.console import Console
from rich.markup import escape

from azure_facts import VERSIONED_KEY_ID
from kms_aks_tools.cli.console import make_console
from kms_aks_tools.standin.saved import load_states
from testbed.controlplane import ControlPlane, ControlPlaneError, build_binaries

MANAGED_CLUSTER = "azure-native:containerservice:ManagedCluster"
# A restarted API server lists every Secret into its watch cache before it is ready; on a busy 2-core machine
# that takes up to a minute. One that is not ready after this long cannot read what it stores.
READY_TIMEOUT = 90.0


def context_name(stack: str) -> str:
    return f"sandbox-{stack}"


@dataclass(frozen=True)
class ClusterKms:
    """The stand-in's ManagedCluster's KMS settings."""

    enabled: bool
    key_id: str
    fqdn: str | None = None  # the API server's host name, which the local cluster's certificate carries


def cluster_kms(states: dict[str, tuple[str, dict[str, Any]]], cluster_name: str) -> ClusterKms | None:
    """The KMS of the cluster named `cluster_name` in the cloud; None when the cloud holds no such cluster."""
    for typ, outputs in states.values():
        if typ == MANAGED_CLUSTER and outputs.get("name") == cluster_name:
            kms = (outputs.get("securityProfile") or {}).get("azureKeyVaultKms") or {}
            fqdn = outputs.get("fqdn") or outputs.get("privateFQDN")
            return ClusterKms(
                enabled=bool(kms.get("enabled")),
                key_id=str(kms.get("keyId") or ""),
                fqdn=fqdn if isinstance(fqdn, str) and fqdn else None,
            )
    return None


class SandboxClusters:
    """The control planes of one sandbox (`home` is its `.sandbox/`)."""

    def __init__(self, home: Path) -> None:
        self.home = home
        self.kubeconfig = home / "kubeconfig"

    def folder(self, stack: str) -> Path:
        return self.home / "clusters" / stack

    def stacks(self) -> list[str]:
        return sorted(p.parent.name for p in (self.home / "clusters").glob("*/plane.json"))

    def attached(self, stack: str) -> ControlPlane | None:
        if not (self.folder(stack) / "plane.json").is_file():
            return None
        return ControlPlane.attach(self.folder(stack))

    def follow(
        self, stack: str, states: dict[str, tuple[str, dict[str, Any]]], cluster_name: str, console: Console
    ) -> None:
        """Brings the stack's control plane in line with its ManagedCluster in the cloud (see the module)."""
        kms = cluster_kms(states, cluster_name)
        plane = self.attached(stack)
        context = context_name(stack)
        if kms is None or not kms.enabled:
            state = "no cluster" if kms is None else "KMS disabled"
            console.print(f"sandbox cluster {context}: the stand-in's cluster {escape(cluster_name)} has {state}; "
                          "no KMS to follow")
            return
        parsed = VERSIONED_KEY_ID.match(kms.key_id)
        if parsed is None:
            console.print(f"sandbox cluster {context}: keyId {escape(kms.key_id)} is not a versioned key id")
            return
        vault_url = f"https://{parsed['vault']}.{parsed['suffix']}/"
        if plane is not None and not plane.running():
            console.print(
                f"[yellow]sandbox cluster {context}: its processes had stopped (e.g. the machine restarted); "
                "starting a new one, without the Secrets the old one held[/]"
            )
            self.stop(stack)
            plane = None
        if plane is None:
            self._start(stack, vault_url, parsed["name"], parsed["version"], console, server_name=kms.fqdn)
            return
        if plane.key_id(plane.current_version) == kms.key_id:
            console.print(f"sandbox cluster {context}: KMS key unchanged ({escape(kms.key_id)})")
            return
        if (plane.vault_url, plane.key_name) != (vault_url, parsed["name"]):
            console.print(
                f"[yellow]sandbox cluster {context}: the cluster moved to another key ({escape(kms.key_id)}); the "
                "sandbox's plugin follows new versions of one key only: `kms-aks sandbox destroy` and `up` again[/]"
            )
            return
        dropped = plane.previous_version
        plane.use_key_version(parsed["version"], wait=dropped is None)
        if dropped is not None:
            # AKS rolls its control plane on an update; the API server's DEK cache goes with it.
            plane.restart_apiserver(ready=False)
        plane.save()
        current, previous = plane.key_id(plane.current_version), plane.key_id(plane.previous_version or "")
        console.print(
            f"sandbox cluster {context}: the KMS plugin switched key: current {escape(current)}, "
            f"previous {escape(previous)}" + (f"; dropped {escape(plane.key_id(dropped))}" if dropped else "")
        )
        if dropped is not None:
            self.show_health(plane, console)

    def _start(
        self, stack: str, vault_url: str, key_name: str, version: str, console: Console, server_name: str | None
    ) -> None:
        context = context_name(stack)
        console.print(f"sandbox cluster {context}: starting etcd, kube-apiserver and the KMS plugin (key {version})")
        folder = self.folder(stack)
        folder.mkdir(parents=True, exist_ok=True)
        plane = ControlPlane.start(
            folder,
            bin_dir=build_binaries(),
            vault_url=vault_url,
            key_name=key_name,
            context=context,
            cloud=(self.home / "azure.json", self.home / "key-material.json"),
            first_version=version,
            detached=True,
            # As AKS's: the API server's certificate names the cluster's fqdn, which re-encryption records carry.
            server_name=server_name,
        )
        plane.save()
        self.write_kubeconfig()
        console.print(
            f"sandbox cluster {context}: ready at {plane.server}; "
            f"kubeconfig {escape(str(self.kubeconfig))}, context {context}"
        )

    def show_health(self, plane: ControlPlane, console: Console) -> None:
        """What a user of the cluster sees once the restarted API server has had READY_TIMEOUT seconds to become
        ready (its caches fill at start): readyz and a list of Secrets."""
        deadline = time.monotonic() + READY_TIMEOUT
        try:
            while True:
                ready = plane.api_get("/readyz?verbose", timeout=10)
                if ready.status_code == 200 or time.monotonic() > deadline:
                    break
                time.sleep(2.0)
            # A list as `kubectl get secrets -A` (or a rewrite tool) asks for it: served by the watch cache.
            listed = plane.api_get("/api/v1/secrets", timeout=30)
        except requests.RequestException as error:
            console.print(f"  the API server does not answer: {escape(str(error))}")
            return
        failing = [line for line in ready.text.splitlines() if line.startswith("[-]")]
        console.print(f"  GET /readyz: HTTP {ready.status_code}" + (f" ({'; '.join(failing)})" if failing else ""))
        console.print(f"  GET /api/v1/secrets: HTTP {listed.status_code}")
        if ready.status_code != 200 or listed.status_code != 200:
            console.print(
                "[bold red]  outage: Secrets stored under the dropped key cannot be read (AKS keeps two key slots; "
                "this rotation came before the Secrets were re-encrypted under the previous key)[/]"
            )

    def write_kubeconfig(self) -> None:
        """`.sandbox/kubeconfig`: each running cluster's context (`sandbox-<stack>`), its admin user, 0600."""
        merged: dict[str, Any] = {"apiVersion": "v1", "kind": "Config", "clusters": [], "users": [], "contexts": []}
        for stack in self.stacks():
            config = yaml.safe_load((self.folder(stack) / "kubeconfig").read_text())
            for section in ("clusters", "contexts"):
                merged[section] += config[section]
            user = f"{context_name(stack)}-admin"
            merged["users"].append({"name": user, "user": config["users"][0]["user"]})
            merged["contexts"][-1]["context"]["user"] = user
        if merged["contexts"]:
            merged["current-context"] = merged["contexts"][0]["name"]
        self.kubeconfig.parent.mkdir(parents=True, exist_ok=True)
        self.kubeconfig.touch(mode=0o600)
        self.kubeconfig.write_text(yaml.safe_dump(merged, sort_keys=False))

    def stop(self, stack: str) -> bool:
        """Stops the stack's control plane and forgets it; False when there was none."""
        folder = self.folder(stack)
        if not folder.exists():
            return False
        if (folder / "plane.json").is_file():
            # A half-written plane: its folder goes anyway.
            with contextlib.suppress(OSError, ValueError, KeyError, ControlPlaneError):
                ControlPlane.attach(folder).stop()
        shutil.rmtree(folder, ignore_errors=True)
        self.write_kubeconfig()
        return True

    def stop_all(self) -> None:
        for stack in self.stacks():
            self.stop(stack)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python testbed/sandbox_cluster.py", description=__doc__.split("\n")[0])
    parser.add_argument("action", choices=("follow", "stop", "status"))
    parser.add_argument("--home", type=Path, required=True, help="the sandbox's .sandbox/ folder")
    parser.add_argument("--stack", help="the stack (follow: required; stop: every stack without it)")
    parser.add_argument("--cluster", help="follow: the stack's ManagedCluster name (kms-aks:cluster.name)")
    args = parser.parse_args(argv)
    console = make_console()
    clusters = SandboxClusters(args.home.resolve())
    try:
        if args.action == "follow":
            if not args.stack or not args.cluster:
                parser.error("follow needs --stack and --cluster")
            clusters.follow(args.stack, load_states(clusters.home / "azure.json"), args.cluster, console)
        elif args.action == "stop":
            if args.stack:
                if clusters.stop(args.stack):
                    console.print(f"sandbox cluster {context_name(args.stack)}: stopped")
            else:
                clusters.stop_all()
        else:
            for stack in clusters.stacks():
                plane = clusters.attached(stack)
                assert plane is not None
                state = "running" if plane.running() else "stopped"
                previous = plane.key_id(plane.previous_version) if plane.previous_version else "none"
                console.print(
                    f"cluster {context_name(stack)} ({state}, {escape(str(clusters.kubeconfig))}): KMS key "
                    f"{escape(plane.key_id(plane.current_version))}, previous {escape(previous)}"
                )
    except ControlPlaneError as error:
        console.print(f"[bold red]sandbox cluster: {escape(str(error))}[/]")
        return 1
    return 0


if __name__ == "__main__":
    sys.exit(main())
