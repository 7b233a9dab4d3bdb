"""Scenarios 2, 3, 4, 5, 6 and 7 of issue 15, and the verification of issue 23: `kms-aks reencrypt` and
`kms-aks key-status` on a real kube-apiserver and etcd, Secrets encrypted by our KMS v2 plugin
(tests/e2e_k8s/conftest.py's `control_plane`). Two kube-apiservers on one etcd: tests/e2e_k8s/test_verify.py.

Every claim is checked on etcd's own bytes (the envelope's keyID, read through etcd's gateway) or etcd's own
counters (each key's `version`: how many times it was written), never only on what the tool says. Expected key
ids are computed here from the key URL (sha256 of the versioned URL, as the Azure plugin computes it), apart
from the tool's code; the plugin that wrote the envelopes is Go.

The tests of this module share one control plane and run in order, as an operator would:
thousands of Secrets under v1 -> the guard refuses v1 -> v2 until a pass on v1 leaves its verified record, and
refuses that record for another cluster -> the key moves to v2 -> key-status before the rewrite -> reencrypt
killed mid-run -> `key-status --verify` and the dry run count what etcd holds under v1 -> rerun -> key-status
after -> the key moves to v3 -> reencrypt while another client writes -> a user who may not read /metrics
gets an `unverified` record, which the gate refuses -> failures that must write nothing.
"""

from __future__ import annotations

import base64
import hashlib
import json
import os
import re
import signal
import subprocess
import threading
import time
from collections import Counter
from collections.abc import Iterator
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import pytest
import requests
import yaml
from kubernetes import client

from kms_aks_tools.offline.mock_engine import ROOT
from testbed import ControlPlane, envelope_key_id
from tests.e2e_k8s.conftest import kms_aks, kms_aks_process

NAMESPACES = 40
SECRETS_PER_NAMESPACE = 50  # 2,000 Secrets
STACK = "e2ek8s"
# The recorded dev preview's cluster (its old state's `name`); its API server here is the control plane's.
CLUSTER_NAME = "aks-kms-dev"
RECORDED_FQDN = "aks-kms-dev-2eb7208f.hcp.westeurope.azmk8s.io"


def azure_key_id(key_url: str) -> str:
    return hashlib.sha256(key_url.encode()).hexdigest()


def metric_label(key_url: str) -> str:
    return "sha256:" + hashlib.sha256(azure_key_id(key_url).encode()).hexdigest()


# ------------------------------------------------------------------------------------------- helpers


def write_stack(directory: Path, key_url: str) -> Path:
    """A bring-your-own-key stack pinning `key_url` (the control plane's vault); records go to directory/rotations."""
    vault = key_url.split("//", 1)[1].split(".", 1)[0]
    path = directory / f"Pulumi.{STACK}.yaml"
    path.write_text(
        "config:\n"
        "  azure-native:location: westeurope\n"
        "  kms-aks:location: westeurope\n"
        "  kms-aks:existingKey:\n"
        f"    keyId: {key_url}\n"
        "    keyVaultResourceId: /subscriptions/11111111-2222-3333-4444-555555555555/resourceGroups/rg-keys/"
        f"providers/Microsoft.KeyVault/vaults/{vault}\n"
        "    permissionModel: rbac\n"
        "  kms-aks:cluster:\n"
        f"    name: {CLUSTER_NAME}\n"
        '    kubernetesVersion: "1.33"\n'
        "    apiServerAuthorizedIpRanges: [198.51.100.0/24]\n"
    )
    return path


def etcd_key_ids(plane: ControlPlane) -> dict[tuple[str, str], str | None]:
    """Each Secret's envelope keyID, from etcd's bytes."""
    return {(ns, name): envelope_key_id(raw) for ns, name, raw in plane.etcd_secrets()}


def etcd_versions(plane: ControlPlane) -> dict[tuple[str, str], int]:
    """Each Secret's etcd `version`: 1 after its create, +1 per write since."""
    versions: dict[tuple[str, str], int] = {}
    prefix = b"/registry/secrets/"
    start, end = prefix, prefix[:-1] + bytes([prefix[-1] + 1])
    while True:
        body = {
            "key": base64.b64encode(start).decode(),
            "range_end": base64.b64encode(end).decode(),
            "limit": 1000,
            "keys_only": True,
        }
        answer = requests.post(f"{plane.etcd_url}/v3/kv/range", json=body, timeout=30).json()
        kvs = answer.get("kvs", [])
        for kv in kvs:
            namespace, _, name = base64.b64decode(kv["key"]).decode()[len(prefix) :].partition("/")
            versions[(namespace, name)] = int(kv["version"])
        if not answer.get("more") or not kvs:
            return versions
        start = base64.b64decode(kvs[-1]["key"]) + b"\x00"


def api_secrets(core: client.CoreV1Api) -> dict[tuple[str, str], str]:
    """Each Secret's type and data, hashed, as the API returns them (paged)."""
    hashes: dict[tuple[str, str], str] = {}
    token = None
    while True:
        page = core.list_secret_for_all_namespaces(limit=500, _continue=token)
        for s in page.items:
            digest = hashlib.sha256(json.dumps([s.type, s.data], sort_keys=True).encode()).hexdigest()
            hashes[(s.metadata.namespace, s.metadata.name)] = digest
        token = page.metadata._continue
        if not token:
            return hashes


def to_storage_writes(plane: ControlPlane, key_url: str) -> int:
    """apiserver_envelope_encryption_key_id_hash_total{transformation_type="to_storage"} for the key, read here
    with a regular expression (independently of the tool's parser)."""
    pattern = re.compile(r"^apiserver_envelope_encryption_key_id_hash_total\{([^}]*)\} (\S+)$", re.M)
    total = 0
    for labels, value in pattern.findall(plane.metrics()):
        if f'key_id_hash="{metric_label(key_url)}"' in labels and 'transformation_type="to_storage"' in labels:
            total += int(float(value))
    return total


def create_secrets(core: client.CoreV1Api, prefix: str) -> None:
    def one_namespace(n: int) -> None:
        namespace = f"{prefix}-{n:02d}"
        core.create_namespace(client.V1Namespace(metadata=client.V1ObjectMeta(name=namespace)))
        for i in range(SECRETS_PER_NAMESPACE):
            value = hashlib.sha256(f"{namespace}/{i}/{os.urandom(8).hex()}".encode()).hexdigest()
            core.create_namespaced_secret(
                namespace,
                client.V1Secret(
                    metadata=client.V1ObjectMeta(name=f"s{i:03d}", labels={"kms-aks-e2e": "reencrypt"}),
                    type="Opaque",
                    data={"password": base64.b64encode(value.encode()).decode()},
                    string_data={"user": f"user-{i}"},
                ),
            )

    with ThreadPoolExecutor(max_workers=6) as pool:
        list(pool.map(one_namespace, range(NAMESPACES)))


def rotate(plane: ControlPlane) -> str:
    version = plane.create_key_version()
    plane.use_key_version(version, wait=True)
    return version


def load_checkpoint(path: Path) -> dict | None:
    try:
        return json.loads(path.read_text())
    except (OSError, ValueError):
        return None


# ------------------------------------------------------------------------------------------- the story


class Story:
    """What the scenarios share: the key versions, the stack file, the data before the rewrite."""

    v1: str
    v2: str
    v3: str
    stack: Path
    rotations: Path
    hashes_before: dict[tuple[str, str], str]
    sample_plaintext: str


@pytest.fixture(scope="module")
def story(control_plane: ControlPlane, core: client.CoreV1Api, tmp_path_factory: pytest.TempPathFactory) -> Story:
    """Thousands of Secrets under v1, and a stack that pins v1."""
    state = Story()
    state.v1 = control_plane.current_version
    create_secrets(core, "reenc")
    state.hashes_before = api_secrets(core)
    state.sample_plaintext = base64.b64decode(core.read_namespaced_secret("s000", "reenc-01").data["password"]).decode()
    directory = tmp_path_factory.mktemp("stack")
    state.stack = write_stack(directory, control_plane.key_id(state.v1))
    state.rotations = directory / "rotations"
    return state


# The guard's preview of a key rotation on stack dev, recorded from the real Pulumi CLI through the workflows'
# commands (.ci/pulumi-stack preview, `make fixtures`): its key ids are moved to the control plane's vault.
RECORDED_ROTATION = ROOT / "tests" / "fixtures" / "recorded" / "dev-key-rotation.json"
RECORDED_OLD_VERSION, RECORDED_NEW_VERSION = "63c557640353de6ba206ccfe5de1b795", "0123456789abcdef0123456789abcdef"
CLUSTER_URN = (
    f"urn:pulumi:{STACK}::kms-aks::kms-aks:index:KmsAksCluster"
    "$azure-native:containerservice:ManagedCluster::aks-cluster"
)


def rotation_preview(
    plane: ControlPlane, directory: Path, old: str, new: str, *, api_server_host: str = "127.0.0.1"
) -> Path:
    """The recorded rotation, moved to the control plane: its vault, its key versions, its API server host
    (the cluster's `fqdn` in the old state, which a record's server must match)."""
    text = RECORDED_ROTATION.read_text()
    assert RECORDED_OLD_VERSION in text and RECORDED_NEW_VERSION in text and "urn:pulumi:dev::" in text
    assert text.count(f'"fqdn": "{RECORDED_FQDN}"') == 1 and f'"name": "{CLUSTER_NAME}"' in text
    text = (
        text.replace(
            "https://kv-kmsaks-dev-01.vault.azure.net/keys/aks-kms-dev", f"{plane.vault_url}keys/{plane.key_name}"
        )
        .replace(RECORDED_OLD_VERSION, old)
        .replace(RECORDED_NEW_VERSION, new)
        .replace("urn:pulumi:dev::", f"urn:pulumi:{STACK}::")
        .replace(f'"fqdn": "{RECORDED_FQDN}"', f'"fqdn": "{api_server_host}"')
    )
    path = directory / f"preview-{api_server_host}.json"
    path.write_text(text)
    return path


def test_scenario_5_the_gate_refuses_a_rotation_until_a_pass_leaves_the_current_keys_record(
    control_plane: ControlPlane, story: Story, tmp_path: Path
) -> None:
    story.v2 = control_plane.create_key_version()
    preview = rotation_preview(control_plane, tmp_path, story.v1, story.v2)
    allow = [
        "--allow-key-rotation",
        f"{CLUSTER_URN}={control_plane.key_id(story.v2)}",
        "--records",
        str(story.rotations),
    ]
    refused = kms_aks("guard", str(preview), *allow)
    assert refused.returncode == 1, refused.stdout + refused.stderr
    assert "REFUSED [rotation-without-reencryption]" in refused.stdout
    assert f"kms-aks reencrypt --stack {STACK}" in refused.stdout.replace("\n    ", " ")

    versions = etcd_versions(control_plane)
    reencrypt = kms_aks("reencrypt", *common(control_plane, story))
    assert reencrypt.returncode == 0, reencrypt.stdout + reencrypt.stderr
    total = NAMESPACES * SECRETS_PER_NAMESPACE
    # Every Secret is already under v1, the current key: the API server writes none of them again.
    assert f"{total} Secrets listed: 0 rewritten, {total} already under the current key" in reencrypt.stdout
    assert etcd_versions(control_plane) == versions
    [record] = yaml.safe_load((story.rotations / f"{STACK}.yaml").read_text())["records"]
    assert record["keyId"] == control_plane.key_id(story.v1) and record["complete"] is True
    # The evidence: every Secret read back from etcd under v1's label, on the one API server there is.
    evidence = record["verification"]
    v1_label = metric_label(control_plane.key_id(story.v1))
    assert evidence["status"] == "verified" and evidence["keyIdHash"] == v1_label
    assert evidence["readsByKey"] == {v1_label: total} and evidence["secretsRead"] == total and evidence["exact"]
    assert evidence["apiServers"] == [apiserver_label(control_plane)]
    assert record["cluster"]["name"] == CLUSTER_NAME

    allowed = kms_aks("guard", str(preview), *allow)
    assert allowed.returncode == 0, allowed.stdout + allowed.stderr
    assert "rotation-without-reencryption" not in allowed.stdout

    # The same record, for a preview of another cluster (another API server host): refused.
    elsewhere = rotation_preview(
        control_plane, tmp_path, story.v1, story.v2, api_server_host="aks-kms-dev-00000000.hcp.westeurope.azmk8s.io"
    )
    other = kms_aks("guard", str(elsewhere), *allow)
    assert other.returncode == 1, other.stdout + other.stderr
    assert "REFUSED [rotation-without-reencryption]" in other.stdout
    assert "it is about the API server 127.0.0.1, not aks-kms-dev-00000000" in " ".join(other.stdout.split())

    # The change is applied: AKS moves the cluster to v2 (the plugin's current slot), the stack pins it.
    control_plane.use_key_version(story.v2, wait=True)
    write_stack(story.stack.parent, control_plane.key_id(story.v2))


def apiserver_label(plane: ControlPlane) -> str:
    """The `apiserver_id_hash` of the plane's API server: the hash of its identity Lease's name, read here."""
    [lease] = [
        item
        for item in plane.api_get("/apis/coordination.k8s.io/v1/namespaces/kube-system/leases").json()["items"]
        if (item["metadata"].get("labels") or {}).get("apiserver.kubernetes.io/identity") == "kube-apiserver"
    ]
    return "sha256:" + hashlib.sha256(lease["metadata"]["name"].encode()).hexdigest()


def common(plane: ControlPlane, story: Story) -> list[str]:
    return ["--stack", str(story.stack), "--kubeconfig", str(plane.kubeconfig), "--context", plane.context]


def test_scenario_2_before_the_rewrite_etcd_holds_every_secret_under_v1(
    control_plane: ControlPlane, story: Story
) -> None:
    key_ids = etcd_key_ids(control_plane)
    assert len(key_ids) == NAMESPACES * SECRETS_PER_NAMESPACE == len(story.hashes_before)
    assert Counter(key_ids.values()) == {azure_key_id(control_plane.key_id(story.v1)): len(key_ids)}


def test_scenario_6_key_status_before_the_rewrite_shows_v2_current_and_no_record(
    control_plane: ControlPlane, story: Story
) -> None:
    result = kms_aks(
        "key-status", *common(control_plane, story), "--known-key-id", control_plane.key_id(story.v1), "--json"
    )
    assert result.returncode == 1, result.stdout + result.stderr
    status = json.loads(result.stdout)
    assert status["currentKeyId"] == control_plane.key_id(story.v2)
    assert status["currentKeyIdHash"] == metric_label(control_plane.key_id(story.v2))
    assert status["findings"] == [
        f"the current key {control_plane.key_id(story.v2)} has no complete re-encryption record in "
        f"{story.rotations / f'{STACK}.yaml'}: run `kms-aks reencrypt --stack {STACK}` before the next key change"
    ]


def test_scenario_3_reencrypt_killed_mid_run_then_rerun_rewrites_each_secret_once(
    control_plane: ControlPlane, core: client.CoreV1Api, story: Story
) -> None:
    checkpoint = story.rotations / f"{STACK}.reencrypt-checkpoint.json"
    total = len(story.hashes_before)
    # Slow enough to be killed in the middle: 100 Secrets a page, 100 replaces a second.
    process = kms_aks_process("reencrypt", *common(control_plane, story), "--page-size", "100", "--rate", "100")
    deadline = time.monotonic() + 120
    while time.monotonic() < deadline and ((load_checkpoint(checkpoint) or {}).get("pagesDone") or 0) < 5:
        assert process.poll() is None, process.stdout.read() if process.stdout else ""
        time.sleep(0.1)
    process.send_signal(signal.SIGKILL)
    process.wait(timeout=30)
    assert process.returncode == -signal.SIGKILL

    stopped = load_checkpoint(checkpoint)
    assert stopped is not None and 5 <= stopped["pagesDone"] < total // 100 and not stopped["listingDone"]
    mixed = Counter(etcd_key_ids(control_plane).values())
    v1_id, v2_id = azure_key_id(control_plane.key_id(story.v1)), azure_key_id(control_plane.key_id(story.v2))
    assert set(mixed) == {v1_id, v2_id} and mixed[v2_id] >= 500, "the kill came mid-run: some under v2, some under v1"
    records = yaml.safe_load((story.rotations / f"{STACK}.yaml").read_text())["records"]
    assert [r["keyId"] for r in records] == [control_plane.key_id(story.v1)], "no record for an unfinished pass"

    # What is still under v1 after the kill, as the API server's counters show it, is what etcd's bytes show.
    v1_label, v2_label = metric_label(control_plane.key_id(story.v1)), metric_label(control_plane.key_id(story.v2))
    status = kms_aks(
        "key-status",
        *common(control_plane, story),
        "--known-key-id",
        control_plane.key_id(story.v1),
        "--verify",
        "--json",
    )
    assert status.returncode == 1, status.stdout + status.stderr
    checked = json.loads(status.stdout)["verification"]
    assert checked["exact"] and checked["listed"] == checked["read"] == total
    assert {k["keyIdHash"]: k["secrets"] for k in checked["byKey"]} == {v1_label: mixed[v1_id], v2_label: mixed[v2_id]}
    assert {k["keyId"] for k in checked["byKey"]} == {control_plane.key_id(story.v1), control_plane.key_id(story.v2)}
    assert not checked["verified"] and checked["notKms"] == 0 and checked["unreadable"] == []
    assert (
        f"{mixed[v1_id]} Secret(s) are still stored under {control_plane.key_id(story.v1)}, not the current key"
        in json.loads(status.stdout)["findings"]
    )
    dry = kms_aks("reencrypt", *common(control_plane, story), "--dry-run")
    assert dry.returncode == 0, dry.stdout + dry.stderr
    assert f"reencrypt --dry-run: {mixed[v1_id]} Secrets would be rewritten" in dry.stdout
    assert Counter(etcd_key_ids(control_plane).values()) == mixed, "neither wrote anything"

    rerun = kms_aks("reencrypt", *common(control_plane, story), "--rate", "0", "--progress-every", "500")
    output = rerun.stdout + rerun.stderr
    assert rerun.returncode == 0, output
    assert "reencrypt: continuing the pass started" in output
    assert re.search(rf"^reencrypt: \d+/{total} Secrets \(rewritten \d+", output, re.M), "plain progress lines"

    # Scenario 2's end: every Secret in etcd under v2, as many as the API lists.
    key_ids = etcd_key_ids(control_plane)
    assert Counter(key_ids.values()) == {v2_id: total}
    hashes_after = api_secrets(core)
    assert len(hashes_after) == len(key_ids) == total
    # Scenario 3: the data unchanged, and each Secret written exactly once since its create (etcd's version 2),
    # so the Secrets of the page the kill interrupted were not written a second time.
    assert hashes_after == story.hashes_before
    assert Counter(etcd_versions(control_plane).values()) == {2: total}
    assert to_storage_writes(control_plane, control_plane.key_id(story.v2)) == total

    assert not checkpoint.exists(), "the checkpoint is removed once the pass is complete"
    document = yaml.safe_load((story.rotations / f"{STACK}.yaml").read_text())
    [_, record] = document["records"]
    assert record["keyId"] == control_plane.key_id(story.v2)
    assert record["pluginKeyId"] == v2_id
    assert record["complete"] is True
    assert record["secrets"]["listed"] == total and record["secrets"]["failed"] == 0
    assert record["secrets"]["rewritten"] + record["secrets"]["unchanged"] == total
    assert record["secrets"]["deleted"] == 0
    assert record["cluster"] == {"name": CLUSTER_NAME, "context": control_plane.context, "server": control_plane.server}
    assert record["verification"]["status"] == "verified"
    assert record["verification"]["readsByKey"] == {metric_label(control_plane.key_id(story.v2)): total}
    assert record["apiServer"]["metricsServed"] is True and record["apiServer"]["currentKeyMatches"] is True
    assert record["apiServer"]["currentKeyIdHash"] == metric_label(control_plane.key_id(story.v2))
    assert story.sample_plaintext not in output


def test_scenario_6_key_status_after_the_rewrite_shows_v2_current_and_the_reads_with_v1(
    control_plane: ControlPlane, story: Story
) -> None:
    result = kms_aks(
        "key-status", *common(control_plane, story), "--known-key-id", control_plane.key_id(story.v1), "--json"
    )
    assert result.returncode == 0, result.stdout + result.stderr
    status = json.loads(result.stdout)
    by_url = {k["keyId"]: k for k in status["keys"]}
    v1, v2 = by_url[control_plane.key_id(story.v1)], by_url[control_plane.key_id(story.v2)]
    assert status["currentKeyId"] == control_plane.key_id(story.v2) and v2["current"] and not v1["current"]
    assert v1["keyIdHash"] == metric_label(control_plane.key_id(story.v1))
    # The reads under v1: every Secret at least once (the listing before the rewrite decrypted each).
    assert v1["reads"] >= NAMESPACES * SECRETS_PER_NAMESPACE
    assert v1["lastRead"] <= v2["record"], "v1 was last read before the record of v2's rewrite"
    assert v2["writes"] >= NAMESPACES * SECRETS_PER_NAMESPACE and v2["record"] is not None
    assert status["findings"] == []

    table = kms_aks("key-status", *common(control_plane, story), "--known-key-id", control_plane.key_id(story.v1))
    assert table.returncode == 0
    assert "key-status: the current key is the stack's and every Secret was rewritten under it" in table.stdout


def test_scenario_4_updates_by_another_client_during_reencrypt_all_survive(
    control_plane: ControlPlane, core: client.CoreV1Api, story: Story
) -> None:
    story.v3 = rotate(control_plane)
    write_stack(story.stack.parent, control_plane.key_id(story.v3))
    targets = [
        (f"reenc-{n:02d}", f"s{i:03d}") for n in range(0, NAMESPACES, 2) for i in range(0, SECRETS_PER_NAMESPACE, 5)
    ]
    last_written: dict[tuple[str, str], str] = {}
    stop = threading.Event()

    def other_client() -> None:
        round_ = 0
        while not stop.is_set():
            round_ += 1
            for namespace, name in targets:
                value = f"update-{round_}-{namespace}-{name}"
                core.patch_namespaced_secret(
                    name, namespace, {"data": {"password": base64.b64encode(value.encode()).decode()}}
                )
                last_written[(namespace, name)] = value
                if stop.is_set():
                    return

    writer = threading.Thread(target=other_client)
    process = kms_aks_process("reencrypt", *common(control_plane, story), "--page-size", "200", "--rate", "150")
    writer.start()
    try:
        output, _ = process.communicate(timeout=300)
    finally:
        stop.set()
        writer.join(timeout=60)
    assert process.returncode == 0, output
    conflicts = int(re.search(r"(\d+) conflicts resolved by a fresh read", output).group(1))  # type: ignore[union-attr]
    assert conflicts > 0, "the other client's writes raced the rewrite (409s were met and retried)"

    assert len(last_written) == len(targets)
    for (namespace, name), value in last_written.items():
        assert base64.b64decode(core.read_namespaced_secret(name, namespace).data["password"]).decode() == value
    v3_id = azure_key_id(control_plane.key_id(story.v3))
    assert Counter(etcd_key_ids(control_plane).values()) == {v3_id: NAMESPACES * SECRETS_PER_NAMESPACE}


# ------------------------------------------------------------------------------------------- scenario 7


@pytest.fixture
def clean_stack(control_plane: ControlPlane, tmp_path: Path) -> Iterator[Path]:
    stack = write_stack(tmp_path, control_plane.key_id(control_plane.current_version))
    yield stack
    written = sorted(p.name for p in tmp_path.rglob("*") if p.is_file())
    assert written == sorted([stack.name, *(p.name for p in tmp_path.glob("*.kubeconfig"))]), "nothing written"


def kubeconfig_with(
    plane: ControlPlane, directory: Path, *, server: str | None = None, token: str | None = None
) -> Path:
    document = yaml.safe_load(plane.kubeconfig.read_text())
    if server is not None:
        document["clusters"][0]["cluster"]["server"] = server
    if token is not None:
        document["users"][0]["user"]["token"] = token
    path = directory / "other.kubeconfig"
    path.write_text(yaml.safe_dump(document))
    return path


def one_error(result: subprocess.CompletedProcess[str]) -> str:
    output = result.stdout + result.stderr
    assert result.returncode == 2, output
    assert "Traceback" not in output
    lines = [line for line in output.splitlines() if line.strip()]
    assert len(lines) == 1 and lines[0].startswith("error: "), output
    return lines[0]


@pytest.mark.parametrize("command", ["reencrypt", "key-status"])
def test_scenario_7_unreachable_api_server(
    control_plane: ControlPlane, clean_stack: Path, tmp_path: Path, command: str
) -> None:
    closed = socket_port_closed()
    kubeconfig = kubeconfig_with(control_plane, tmp_path, server=f"https://127.0.0.1:{closed}")
    message = one_error(kms_aks(command, "--stack", str(clean_stack), "--kubeconfig", str(kubeconfig)))
    assert f"cannot reach the API server https://127.0.0.1:{closed} (context '{control_plane.context}')" in message
    assert "Connection refused" in message


@pytest.mark.parametrize("command", ["reencrypt", "key-status"])
def test_scenario_7_wrong_context(control_plane: ControlPlane, clean_stack: Path, command: str) -> None:
    message = one_error(
        kms_aks(
            command, "--stack", str(clean_stack), "--kubeconfig", str(control_plane.kubeconfig), "--context", "prod"
        )
    )
    assert message == (
        f"error: context 'prod' is not in kubeconfig {control_plane.kubeconfig}; contexts: {control_plane.context}"
    )


@pytest.mark.parametrize("command", ["reencrypt", "key-status"])
def test_scenario_7_unauthorised_token(
    control_plane: ControlPlane, clean_stack: Path, tmp_path: Path, command: str
) -> None:
    kubeconfig = kubeconfig_with(control_plane, tmp_path, token="not-" + control_plane.token[:8])
    message = one_error(kms_aks(command, "--stack", str(clean_stack), "--kubeconfig", str(kubeconfig)))
    assert "refused the credentials of the context (HTTP 401 Unauthorized)" in message


def test_scenario_7_a_user_without_rights_on_secrets(
    control_plane: ControlPlane, clean_stack: Path, tmp_path: Path
) -> None:
    kubeconfig = kubeconfig_with(control_plane, tmp_path, token=control_plane.unprivileged_token)
    message = one_error(kms_aks("reencrypt", "--stack", str(clean_stack), "--kubeconfig", str(kubeconfig)))
    assert "this user may not list or get or update Secrets in all namespaces" in message


def test_scenario_7_a_cluster_not_on_the_stack_key(control_plane: ControlPlane, story: Story, tmp_path: Path) -> None:
    stale = write_stack(tmp_path, control_plane.key_id(story.v1))
    result = kms_aks(
        "reencrypt", "--stack", str(stale), "--kubeconfig", str(control_plane.kubeconfig), "--wait-for-key", "0"
    )
    message = one_error(result)
    assert f"encrypts with key {metric_label(control_plane.key_id(control_plane.current_version))}" in message
    assert f"not the key stack {STACK} pins ({control_plane.key_id(story.v1)}" in message
    assert sorted(p.name for p in tmp_path.rglob("*") if p.is_file()) == [stale.name]
    # Where the stack's records know the cluster's key (its last rotation's record), it is named by its URL.
    current_url = control_plane.key_id(control_plane.current_version)
    records = tmp_path / "rotations" / f"{STACK}.yaml"
    records.parent.mkdir()
    records.write_text(
        yaml.safe_dump(
            {
                "stack": STACK,
                "records": [
                    {
                        "keyId": current_url,
                        "pluginKeyId": azure_key_id(current_url),
                        "complete": True,
                        "finishedAt": "2026-11-30T12:00:00Z",
                        "durationSeconds": 1.0,
                        "cluster": {"context": control_plane.context, "server": control_plane.server},
                        "secrets": {"listed": 0, "rewritten": 0, "deleted": 0, "failed": 0},
                        "apiServer": {"metricsServed": True},
                    }
                ],
            }
        )
    )
    result = kms_aks(
        "reencrypt", "--stack", str(stale), "--kubeconfig", str(control_plane.kubeconfig), "--wait-for-key", "0"
    )
    assert f"encrypts with key {current_url} ({metric_label(current_url)})" in one_error(result)


def socket_port_closed() -> int:
    import socket

    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return probe.getsockname()[1]


def test_dry_run_counts_and_writes_nothing(control_plane: ControlPlane, core: client.CoreV1Api, story: Story) -> None:
    versions = etcd_versions(control_plane)
    value = base64.b64decode(core.read_namespaced_secret("s001", "reenc-01").data["password"]).decode()
    result = kms_aks("reencrypt", *common(control_plane, story), "--dry-run")
    assert result.returncode == 0 and value not in result.stdout + result.stderr
    assert etcd_versions(control_plane) == versions
    total = NAMESPACES * SECRETS_PER_NAMESPACE
    # Every Secret is under the stack's key (etcd says so): nothing to rewrite, as the counters show.
    assert Counter(etcd_key_ids(control_plane).values()) == {azure_key_id(control_plane.key_id(story.v3)): total}
    assert f"{total} of {total} Secrets read from etcd on 1 API server replica(s)" in result.stdout
    assert "none under another key" in result.stdout
    assert "reencrypt --dry-run: 0 Secrets would be rewritten" in result.stdout


def test_a_user_who_may_not_read_metrics_gets_an_unverified_record_and_the_gate_refuses_it(
    control_plane: ControlPlane, api_client: client.ApiClient, story: Story, tmp_path: Path
) -> None:
    """The operator may list, get and update Secrets and list the API servers' Leases, not GET /metrics."""
    rbac = client.RbacAuthorizationV1Api(api_client)
    rbac.create_cluster_role(
        client.V1ClusterRole(
            metadata=client.V1ObjectMeta(name="kms-aks-reencrypt"),
            rules=[
                client.V1PolicyRule(api_groups=[""], resources=["secrets"], verbs=["list", "get", "update"]),
                client.V1PolicyRule(api_groups=["coordination.k8s.io"], resources=["leases"], verbs=["list"]),
            ],
        )
    )
    rbac.create_cluster_role_binding(
        client.V1ClusterRoleBinding(
            metadata=client.V1ObjectMeta(name="kms-aks-reencrypt"),
            role_ref=client.V1RoleRef(
                api_group="rbac.authorization.k8s.io", kind="ClusterRole", name="kms-aks-reencrypt"
            ),
            subjects=[
                client.RbacV1Subject(api_group="rbac.authorization.k8s.io", kind="User", name="kms-aks-operator")
            ],
        )
    )
    stack = write_stack(tmp_path, control_plane.key_id(story.v3))
    kubeconfig = kubeconfig_with(control_plane, tmp_path, token=control_plane.operator_token)
    denied = requests.get(
        f"{control_plane.server}/metrics",
        headers={"Authorization": f"Bearer {control_plane.operator_token}"},
        verify=str(control_plane.ca_file),
        timeout=30,
    )
    assert denied.status_code == 403, "the control: this user may not read /metrics"
    versions = etcd_versions(control_plane)

    result = kms_aks("reencrypt", "--stack", str(stack), "--kubeconfig", str(kubeconfig), "--wait-for-key", "0")
    output = result.stdout + result.stderr
    assert result.returncode == 1, output
    assert "every Secret was rewritten, but that could not be verified" in output
    # Every Secret was already under v3 (etcd's bytes): the pass wrote none of them.
    assert etcd_versions(control_plane) == versions
    [record] = yaml.safe_load((tmp_path / "rotations" / f"{STACK}.yaml").read_text())["records"]
    assert record["complete"] is False and record["apiServer"]["metricsServed"] is False
    assert record["verification"]["status"] == "unverified"
    assert record["verification"]["reason"] == "GET /metrics: HTTP 403 (this user may not read /metrics)"

    v4 = control_plane.create_key_version()
    preview = rotation_preview(control_plane, tmp_path, story.v3, v4)
    allow = [f"{CLUSTER_URN}={control_plane.key_id(v4)}"]
    refused = kms_aks("guard", str(preview), "--allow-key-rotation", *allow, "--records", str(tmp_path / "rotations"))
    assert refused.returncode == 1, refused.stdout + refused.stderr
    assert "REFUSED [rotation-without-reencryption]" in refused.stdout
    assert "unverified: GET /metrics: HTTP 403" in " ".join(refused.stdout.split())
