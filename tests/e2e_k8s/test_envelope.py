"""Scenario 1: a Secret written through the API is a KMS v2 envelope in etcd, under the key the stack names.

Everything is asserted on etcd's own bytes, read from etcd's gateway, never through the API server. The key
ids are computed here from the key URL, independently of the harness and of the plugin (which is Go):
- the plugin's key id, as the Azure KMS plugin computes it: sha256 (hex) of the versioned key URL;
- the API server's metric label: "sha256:" + sha256 (hex) of that key id (k8s.io/apiserver v0.34.4,
  pkg/storage/value/encrypt/envelope/metrics/metrics.go, getHash).
The tests of a module share one control plane and run in order: the last one rotates the key.
"""

from __future__ import annotations

import base64
import hashlib
import secrets
import time

import pytest
from kubernetes import client
from kubernetes.client.rest import ApiException

from kms_aks_tools.cluster.metrics import STATUS, TOTAL, key_id_hash_samples
from testbed import ControlPlane, envelope_key_id, parse_envelope

NAMESPACE = "scenario-1"
VAULT = "https://kms-aks-dev.vault.azure.net/"
PROVIDER_PREFIX = b"k8s:enc:kms:v2:kms-aks:"


def azure_key_id(version: str) -> str:
    """The Azure plugin's key id for a version of the test key, from the URL Key Vault gives it."""
    return hashlib.sha256(f"{VAULT}keys/kms-key/{version}".encode()).hexdigest()


def metric_label(version: str) -> str:
    return "sha256:" + hashlib.sha256(azure_key_id(version).encode()).hexdigest()


def write_secret(core: client.CoreV1Api, name: str, value: bytes) -> None:
    body = client.V1Secret(metadata=client.V1ObjectMeta(name=name), data={"token": base64.b64encode(value).decode()})
    core.create_namespaced_secret(NAMESPACE, body)


def read_secret(core: client.CoreV1Api, name: str) -> bytes:
    return base64.b64decode(core.read_namespaced_secret(name, NAMESPACE).data["token"])


@pytest.fixture(scope="module")
def first_version(control_plane: ControlPlane) -> str:
    """The key version the cluster started with (taken before any test rotates)."""
    return control_plane.current_version


@pytest.fixture(scope="module")
def plaintext(core: client.CoreV1Api, first_version: str) -> bytes:
    """A Secret written under the first key version; its value, random per run, as the marker to hunt for."""
    core.create_namespace(client.V1Namespace(metadata=client.V1ObjectMeta(name=NAMESPACE)))
    value = f"kms-aks-plaintext-{secrets.token_hex(16)}".encode()
    write_secret(core, "first", value)
    return value


def test_a_secret_is_a_kms_v2_envelope_under_the_stack_key(
    control_plane: ControlPlane, core: client.CoreV1Api, plaintext: bytes, first_version: str
) -> None:
    raw = control_plane.etcd_get(f"/registry/secrets/{NAMESPACE}/first")
    assert raw is not None, "the Secret is not in etcd under /registry/secrets/<namespace>/<name>"
    assert raw.startswith(PROVIDER_PREFIX), raw[:40]
    envelope = parse_envelope(raw)
    assert envelope is not None and envelope.provider == "kms-aks"
    assert envelope_key_id(raw) == azure_key_id(first_version)
    assert len(envelope.encrypted_dek_source) == 256, "a DEK seed wrapped by a 2048-bit RSA key is 256 bytes"
    # The API server still reads it back.
    assert read_secret(core, "first") == plaintext


def test_the_plaintext_appears_nowhere_in_etcd(
    control_plane: ControlPlane, core: client.CoreV1Api, plaintext: bytes
) -> None:
    # The control: the same value in a ConfigMap (not encrypted) is found by the same scan, so the scan can fail.
    core.create_namespaced_config_map(
        NAMESPACE, client.V1ConfigMap(metadata=client.V1ObjectMeta(name="control"), data={"v": plaintext.decode()})
    )
    forms = (plaintext, base64.b64encode(plaintext))
    found = [key for key, value in control_plane.etcd_items() if any(form in value for form in forms)]
    assert found == [f"/registry/configmaps/{NAMESPACE}/control"]
    # Every Secret in etcd (the first one, and any the API server made itself) is an envelope.
    stored = {(ns, name): value for ns, name, value in control_plane.etcd_secrets()}
    assert (NAMESPACE, "first") in stored
    assert all(value.startswith(PROVIDER_PREFIX) for value in stored.values()), sorted(stored)


def test_the_api_server_metrics_carry_the_hash_of_the_key_id(control_plane: ControlPlane, first_version: str) -> None:
    samples = key_id_hash_samples(control_plane.metrics())
    written = {s.key_id_hash for s in samples if s.metric == TOTAL and s.transformation_type == "to_storage"}
    status = {s.key_id_hash for s in samples if s.metric == STATUS and s.provider == "kms-aks"}
    assert written == {metric_label(first_version)}
    assert status == {metric_label(first_version)}
    # A label is a hash of the key id, never the key id (or the key URL) itself.
    assert azure_key_id(first_version) not in control_plane.metrics()


def test_after_a_key_change_new_secrets_use_it_and_old_ones_still_read(
    control_plane: ControlPlane, core: client.CoreV1Api, plaintext: bytes, first_version: str
) -> None:
    second_version = control_plane.create_key_version()
    assert second_version != first_version
    control_plane.use_key_version(second_version)
    later = f"kms-aks-plaintext-{secrets.token_hex(16)}".encode()
    write_secret(core, "second", later)

    first = control_plane.etcd_get(f"/registry/secrets/{NAMESPACE}/first")
    second = control_plane.etcd_get(f"/registry/secrets/{NAMESPACE}/second")
    assert first is not None and second is not None
    assert envelope_key_id(first) == azure_key_id(first_version)
    assert envelope_key_id(second) == azure_key_id(second_version)
    # Two slots: the previous key still decrypts, the current one encrypts.
    assert read_secret(core, "first") == plaintext
    assert read_secret(core, "second") == later
    samples = key_id_hash_samples(control_plane.metrics())
    latest_status = max((s for s in samples if s.metric == STATUS), key=lambda s: s.value)
    assert latest_status.key_id_hash == metric_label(second_version)
    written = {s.key_id_hash for s in samples if s.metric == TOTAL and s.transformation_type == "to_storage"}
    assert metric_label(second_version) in written


def test_a_second_key_change_without_a_rewrite_loses_the_oldest_secrets(
    control_plane: ControlPlane, core: client.CoreV1Api, first_version: str
) -> None:
    """The hazard `reencrypt` exists for. After two key changes, data under the first key can no longer be read
    once the API server has forgotten the DEKs it had cached (a restart), and the restarted API server never
    becomes ready: its Secrets watch cache cannot fill, so even listing Secrets is refused."""
    third_version = control_plane.create_key_version()
    control_plane.use_key_version(third_version)
    assert read_secret(core, "first").startswith(b"kms-aks-plaintext-"), "the cached DEK still reads it"
    control_plane.restart_apiserver(ready=False)

    with pytest.raises(ApiException) as refused:
        read_secret(core, "first")
    assert refused.value.status == 500 and "failed to decrypt DEK" in refused.value.body
    # The previous slot (the second version) still reads one by one...
    assert read_secret(core, "second").startswith(b"kms-aks-plaintext-")
    # ...but a list, as `kubectl get secrets -A` or a rewrite tool does it, is refused while the cache retries.
    with pytest.raises(ApiException) as listing:
        core.list_namespaced_secret(NAMESPACE)
    assert listing.value.status == 429 and "storage is (re)initializing" in listing.value.body
    time.sleep(30)
    readyz = control_plane.api_get("/readyz?verbose")
    assert readyz.status_code == 500 and "[-]informer-sync failed" in readyz.text, readyz.text[-500:]
    # etcd still holds the Secret, under the first key: the data is there, the key to it is gone.
    first = control_plane.etcd_get(f"/registry/secrets/{NAMESPACE}/first")
    assert first is not None and envelope_key_id(first) == azure_key_id(first_version)
