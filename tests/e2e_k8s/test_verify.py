"""Two kube-apiservers on one etcd, behind one endpoint (a round-robin TCP load balancer, as AKS has one
endpoint for its replicas): the verification pass reads both replicas' counters and adds them up.

Each kube-apiserver runs with a host name of its own, so it has an identity of its own: its Lease in
kube-system and the `apiserver_id_hash` on its metrics. The expected identities are computed here from the host
names, as k8s.io/apiserver pkg/server/config.go (NewConfig) does, apart from the tool; the expected counts come
from etcd's bytes; the per-replica reads from each API server's own /metrics, asked directly (not through the
load balancer), with a regular expression.
"""

from __future__ import annotations

import base64
import hashlib
import json
import re
import struct
import time
from collections import Counter
from collections.abc import Iterator
from pathlib import Path

import pytest
import yaml
from kubernetes import client, config

from testbed import ControlPlane, envelope_key_id
from tests.e2e_k8s.conftest import kms_aks
from tests.e2e_k8s.test_reencrypt import STACK, azure_key_id, metric_label, write_stack

HOSTNAMES = ("kms-aks-apiserver-0", "kms-aks-apiserver-1")
NAMESPACES, PER_NAMESPACE, REWRITTEN = 3, 100, 120


def apiserver_id(hostname: str) -> str:
    """NewConfig: "apiserver-" + base32 (no padding, lower case) of the first 16 bytes of the sha256 of the
    host name and "kube-apiserver", each prefixed with its 16-bit length (cryptobyte)."""
    data = b"".join(struct.pack(">H", len(part)) + part for part in (hostname.encode(), b"kube-apiserver"))
    digest = hashlib.sha256(data).digest()[:16]
    return "apiserver-" + base64.b32encode(digest).decode().rstrip("=").lower()


def replica_label(hostname: str) -> str:
    return "sha256:" + hashlib.sha256(apiserver_id(hostname).encode()).hexdigest()


@pytest.fixture(scope="module")
def plane(k8s_bin: Path, tmp_path_factory: pytest.TempPathFactory) -> Iterator[ControlPlane]:
    with ControlPlane.start(tmp_path_factory.mktemp("two-apiservers"), bin_dir=k8s_bin, apiservers=2) as started:
        yield started


@pytest.fixture(scope="module")
def core(plane: ControlPlane) -> Iterator[client.CoreV1Api]:
    with config.new_client_from_config(config_file=str(plane.kubeconfig), context=plane.context) as api:
        yield client.CoreV1Api(api)


def from_storage(plane: ControlPlane, index: int, key_url: str) -> int:
    pattern = re.compile(r"^apiserver_envelope_encryption_key_id_hash_total\{([^}]*)\} (\S+)$", re.M)
    return sum(
        int(float(value))
        for labels, value in pattern.findall(plane.metrics(index))
        if f'key_id_hash="{metric_label(key_url)}"' in labels and 'transformation_type="from_storage"' in labels
    )


def settled_reads(plane: ControlPlane, key_url: str) -> list[int]:
    """Each replica's from_storage count once it has stopped moving for 2 s (the watch events of the test's own
    writes are decoded in the background, prevKV included), at most 60 s."""
    last = [from_storage(plane, index, key_url) for index in (0, 1)]
    for _ in range(30):
        time.sleep(2)
        now = [from_storage(plane, index, key_url) for index in (0, 1)]
        if now == last:
            return now
        last = now
    raise AssertionError(f"the replicas' reads under {key_url} did not settle: {last}")


def test_two_apiservers_on_one_etcd_are_counted_together(
    plane: ControlPlane, core: client.CoreV1Api, tmp_path: Path
) -> None:
    # Each replica has its identity Lease, named from its host name.
    leases = plane.api_get("/apis/coordination.k8s.io/v1/namespaces/kube-system/leases").json()["items"]
    names = {
        item["metadata"]["name"]
        for item in leases
        if (item["metadata"].get("labels") or {}).get("apiserver.kubernetes.io/identity") == "kube-apiserver"
    }
    assert names == {apiserver_id(h) for h in HOSTNAMES}

    v1 = plane.current_version
    for n in range(NAMESPACES):
        core.create_namespace(client.V1Namespace(metadata=client.V1ObjectMeta(name=f"two-{n}")))
        for i in range(PER_NAMESPACE):
            core.create_namespaced_secret(
                f"two-{n}",
                client.V1Secret(metadata=client.V1ObjectMeta(name=f"s{i:03d}"), string_data={"v": f"{n}-{i}"}),
            )
    v2 = plane.create_key_version()
    plane.use_key_version(v2, wait=True)  # both replicas report v2
    for n in range(NAMESPACES):
        for i in range(REWRITTEN // NAMESPACES):
            core.patch_namespaced_secret(f"s{i:03d}", f"two-{n}", {"stringData": {"v": f"new-{n}-{i}"}})
    in_etcd = Counter(envelope_key_id(raw) for _, _, raw in plane.etcd_secrets())
    v1_id, v2_id = azure_key_id(plane.key_id(v1)), azure_key_id(plane.key_id(v2))
    assert in_etcd == {v1_id: NAMESPACES * PER_NAMESPACE - REWRITTEN, v2_id: REWRITTEN}

    stack = write_stack(tmp_path, plane.key_id(v2))
    reads_before = settled_reads(plane, plane.key_id(v1))
    result = kms_aks(
        "key-status",
        "--stack",
        str(stack),
        "--kubeconfig",
        str(plane.kubeconfig),
        "--known-key-id",
        plane.key_id(v1),
        "--verify",
        "--json",
    )
    assert result.returncode == 1, result.stdout + result.stderr
    checked = json.loads(result.stdout)["verification"]
    reads_after = [from_storage(plane, index, plane.key_id(v1)) for index in (0, 1)]
    # Both replicas answered some of the GETs: neither alone saw every Secret under v1 ...
    per_replica = [after - before for before, after in zip(reads_before, reads_after, strict=True)]
    assert all(n > 0 for n in per_replica) and sum(per_replica) == in_etcd[v1_id], per_replica
    # ... and the tool added them up: the count is etcd's.
    assert sorted(checked["apiServers"]) == sorted(replica_label(h) for h in HOSTNAMES)
    assert checked["exact"] and checked["read"] == NAMESPACES * PER_NAMESPACE
    by_key = {k["keyIdHash"]: k["secrets"] for k in checked["byKey"]}
    assert by_key == {metric_label(plane.key_id(v1)): in_etcd[v1_id], metric_label(plane.key_id(v2)): REWRITTEN}

    # The rewrite through the one endpoint, then its record: verified on both replicas.
    rewrite = kms_aks("reencrypt", "--stack", str(stack), "--kubeconfig", str(plane.kubeconfig), timeout=900)
    assert rewrite.returncode == 0, rewrite.stdout + rewrite.stderr
    assert Counter(envelope_key_id(raw) for _, _, raw in plane.etcd_secrets()) == {v2_id: NAMESPACES * PER_NAMESPACE}
    [record] = yaml.safe_load((tmp_path / "rotations" / f"{STACK}.yaml").read_text())["records"]
    evidence = record["verification"]
    assert record["complete"] is True and evidence["status"] == "verified"
    assert sorted(evidence["apiServers"]) == sorted(replica_label(h) for h in HOSTNAMES)
    assert evidence["readsByKey"] == {metric_label(plane.key_id(v2)): NAMESPACES * PER_NAMESPACE}
