"""The real control plane's tooling without the binaries: the Key Vault stand-in, the envelope parser, the
key-id hashes and the metrics parser. (The control plane itself runs in `make e2e-k8s`, tests/e2e_k8s/.)"""

from __future__ import annotations

import base64
import hashlib
import threading
from collections.abc import Iterator
from http.server import ThreadingHTTPServer
from pathlib import Path

import pytest
import requests
import yaml
from cryptography.hazmat.primitives import hashes
from cryptography.hazmat.primitives.asymmetric import padding, rsa

from azure_facts.key_ids import metric_key_id_hash, plugin_key_id
from kms_aks_tools.cluster.metrics import STATUS, TOTAL, key_id_hash_samples, status_key_id_hash
from testbed import envelope_key_id, parse_envelope
from testbed.keyvault import KeyStore, make_handler

VAULT = "https://kms-aks-dev.vault.azure.net/"
TOKEN = "test-vault-token"
OAEP256 = padding.OAEP(mgf=padding.MGF1(hashes.SHA256()), algorithm=hashes.SHA256(), label=None)


def b64url(data: bytes) -> str:
    return base64.urlsafe_b64encode(data).rstrip(b"=").decode()


def unb64url(text: str) -> bytes:
    return base64.urlsafe_b64decode(text + "=" * (-len(text) % 4))


class Vault:
    def __init__(self, endpoint: str) -> None:
        self.endpoint = endpoint
        self.http = requests.Session()

    def call(
        self,
        method: str,
        path: str,
        body: dict | None = None,
        *,
        token: str | None = TOKEN,
        api_version: str | None = "7.4",
    ) -> requests.Response:
        headers = {"Authorization": f"Bearer {token}"} if token else {}
        params = {"api-version": api_version} if api_version else {}
        return self.http.request(method, self.endpoint + path, json=body, headers=headers, params=params, timeout=10)

    def create(self) -> dict:
        answer = self.call(
            "POST", "/keys/kms-key/create", {"kty": "RSA", "key_size": 2048, "key_ops": ["encrypt", "decrypt"]}
        )
        assert answer.status_code == 200, answer.text
        return answer.json()["key"]


@pytest.fixture(scope="module")
def vault() -> Iterator[Vault]:
    server = ThreadingHTTPServer(("127.0.0.1", 0), make_handler(KeyStore(VAULT), TOKEN))
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    yield Vault(f"http://127.0.0.1:{server.server_address[1]}")
    server.shutdown()
    server.server_close()


def test_a_new_version_is_a_real_rsa_key_that_decrypts_what_its_public_key_encrypted(vault: Vault) -> None:
    key = vault.create()
    name, version = key["kid"].removeprefix(f"{VAULT}keys/").split("/")
    assert name == "kms-key" and len(version) == 32
    public = rsa.RSAPublicNumbers(int.from_bytes(unb64url(key["e"]), "big"), int.from_bytes(unb64url(key["n"]), "big"))
    dek = b"\x07" * 32
    ciphertext = public.public_key().encrypt(dek, OAEP256)
    answer = vault.call(
        "POST", f"/keys/kms-key/{version}/decrypt", {"alg": "RSA-OAEP-256", "value": b64url(ciphertext)}
    )
    assert answer.status_code == 200, answer.text
    assert answer.json() == {"kid": key["kid"], "value": b64url(dek)}


def test_encrypt_then_decrypt_round_trips_and_each_version_keeps_its_own_key(vault: Vault) -> None:
    v1 = vault.create()["kid"].rsplit("/", 1)[1]
    v2 = vault.create()["kid"].rsplit("/", 1)[1]
    wrapped = vault.call(
        "POST", f"/keys/kms-key/{v1}/encrypt", {"alg": "RSA-OAEP-256", "value": b64url(b"seed")}
    ).json()
    assert wrapped["kid"] == f"{VAULT}keys/kms-key/{v1}"
    back = vault.call("POST", f"/keys/kms-key/{v1}/decrypt", {"alg": "RSA-OAEP-256", "value": wrapped["value"]})
    assert unb64url(back.json()["value"]) == b"seed"
    # The newer version cannot unwrap what the older one wrapped: Key Vault answers 400 for a bad ciphertext.
    other = vault.call("POST", f"/keys/kms-key/{v2}/decrypt", {"alg": "RSA-OAEP-256", "value": wrapped["value"]})
    assert other.status_code == 400 and other.json()["error"]["code"] == "BadParameter"
    # GET without a version is the newest.
    assert vault.call("GET", "/keys/kms-key").json()["key"]["kid"].endswith(v2)


@pytest.mark.parametrize(
    ("path", "body", "kwargs", "status", "code"),
    [
        (
            "/keys/kms-key/0123456789abcdef0123456789abcdef/encrypt",
            {"alg": "RSA-OAEP-256", "value": "AA"},
            {},
            404,
            "KeyNotFound",
        ),
        ("/keys/other-key/create", None, {"token": None}, 401, "Unauthorized"),
        ("/keys/other-key/create", None, {"token": "wrong"}, 401, "Unauthorized"),
        ("/keys/other-key/create", None, {"api_version": None}, 400, "BadParameter"),
        ("/keys/other-key/create", {"kty": "EC"}, {}, 400, "BadParameter"),
    ],
    ids=["unknown-version", "no-token", "wrong-token", "no-api-version", "not-rsa"],
)
def test_refused_as_key_vault_refuses(
    vault: Vault, path: str, body: dict | None, kwargs: dict, status: int, code: str
) -> None:
    vault.create()
    answer = vault.call("POST", path, body or {"kty": "RSA"}, **kwargs)
    assert (answer.status_code, answer.json()["error"]["code"]) == (status, code)


def test_refuses_an_unknown_algorithm_and_a_value_that_is_not_base64url(vault: Vault) -> None:
    version = vault.create()["kid"].rsplit("/", 1)[1]
    for body in ({"alg": "A256GCM", "value": "AA"}, {"alg": "RSA-OAEP-256", "value": "not base64!"}):
        answer = vault.call("POST", f"/keys/kms-key/{version}/encrypt", body)
        assert (answer.status_code, answer.json()["error"]["code"]) == (400, "BadParameter"), body


def test_an_operation_the_key_does_not_allow_is_forbidden(vault: Vault) -> None:
    answer = vault.call("POST", "/keys/sign-only/create", {"kty": "RSA", "key_ops": ["sign", "verify"]})
    version = answer.json()["key"]["kid"].rsplit("/", 1)[1]
    refused = vault.call("POST", f"/keys/sign-only/{version}/encrypt", {"alg": "RSA-OAEP-256", "value": "AA"})
    assert refused.status_code == 403


# An EncryptedObject on the wire, written byte by byte from api.proto's field numbers (not by the parser's
# descriptor): 1 encryptedData, 2 keyID, 3 encryptedDEKSource, 4 annotations (map entry), 5 source type.
KEY_ID = "ab" * 32
WIRE = (
    b"\x0a\x04data" + b"\x12\x40" + KEY_ID.encode() + b"\x1a\x03dek" + b"\x22\x0b\x0a\x04a.io\x12\x03val" + b"\x28\x01"
)


def test_an_envelope_is_read_by_field_number() -> None:
    envelope = parse_envelope(b"k8s:enc:kms:v2:kms-aks:" + WIRE)
    assert envelope is not None
    assert (envelope.provider, envelope.key_id, envelope.encrypted_data, envelope.encrypted_dek_source) == (
        "kms-aks",
        KEY_ID,
        b"data",
        b"dek",
    )
    assert envelope.annotations == {"a.io": b"val"}
    assert envelope.dek_source_type == "HKDF_SHA256_XNONCE_AES_GCM_SEED"
    assert envelope_key_id(b"k8s:enc:kms:v2:kms-aks:" + WIRE) == KEY_ID


def test_a_value_that_is_not_kms_v2_has_no_key_id_and_a_broken_envelope_is_an_error() -> None:
    assert envelope_key_id(b"k8s\x00\n\x0c\n\x02v1\x12\x06Secret") is None  # identity: protobuf in plain
    assert envelope_key_id(b"k8s:enc:aescbc:v1:key1:...") is None
    for broken in (b"k8s:enc:kms:v2:kms-aks:\xff\xff\xff", b"k8s:enc:kms:v2:kms-aks:\x0a\x01x", b"k8s:enc:kms:v2:"):
        with pytest.raises(ValueError, match="KMS v2"):
            envelope_key_id(broken)


def test_key_id_hashes() -> None:
    url = f"{VAULT}keys/kms-key/0123456789abcdef0123456789abcdef"
    assert plugin_key_id(url) == hashlib.sha256(url.encode()).hexdigest()
    assert metric_key_id_hash("abc") == "sha256:" + hashlib.sha256(b"abc").hexdigest()


STATUS_LABELS = 'apiserver_id_hash="sha256:a",key_id_hash="sha256:{}",provider_name="kms-aks"'
METRICS = "\n".join(
    [
        f"# TYPE {STATUS} gauge",
        f"{STATUS}{{{STATUS_LABELS.format('old')}}} 1.7e+09",
        f"{STATUS}{{{STATUS_LABELS.format('new')}}} 1.8e+09",
        f"# TYPE {TOTAL} counter",
        f'{TOTAL}{{{STATUS_LABELS.format("old")},transformation_type="from_storage"}} 3',
        "",
    ]
)


def test_metrics_parser_finds_the_series_and_the_latest_status() -> None:
    samples = key_id_hash_samples(METRICS)
    assert {(s.metric, s.key_id_hash) for s in samples} == {
        (STATUS, "sha256:old"),
        (STATUS, "sha256:new"),
        (TOTAL, "sha256:old"),
    }
    assert next(s for s in samples if s.metric == TOTAL).transformation_type == "from_storage"
    assert status_key_id_hash(METRICS, "kms-aks") == "sha256:new"
    assert status_key_id_hash(METRICS, "other") is None


# ------------------------------------------------------------------------ the data plane of the stand-in's cloud


def test_the_cloud_backed_vault_holds_exactly_the_versions_the_cloud_holds(tmp_path: Path) -> None:
    """The sandbox's data plane (`CloudKeyStore`): one vault with the Azure stand-in's Key resources. A version
    exists once the cloud holds it (also one `sandbox key-version` added later); its RSA key outlives the process."""
    from kms_aks_tools.standin.key_versions import new_key_version
    from kms_aks_tools.standin.saved import save_states
    from testbed.keyvault import CloudKeyStore

    vault_url = "https://kv-kmsaks-dev-01.vault.azure.net/"
    first = f"{vault_url}keys/aks-kms-dev/{'1a' * 16}"
    cloud, material = tmp_path / "azure.json", tmp_path / "key-material.json"
    states = {
        "/subscriptions/s/resourceGroups/rg/providers/Microsoft.KeyVault/vaults/kv-kmsaks-dev-01/keys/aks-kms-dev": (
            "azure-native:keyvault:Key",
            {"keyUri": f"{vault_url}keys/aks-kms-dev", "keyUriWithVersion": first},
        )
    }
    save_states(states, cloud)
    server = ThreadingHTTPServer(
        ("127.0.0.1", 0),
        make_handler(CloudKeyStore(vault_url, cloud_file=cloud, material_file=material), TOKEN),
    )
    threading.Thread(target=server.serve_forever, daemon=True).start()
    try:
        vault = Vault(f"http://127.0.0.1:{server.server_address[1]}")
        dek = b64url(b"\x05" * 32)
        wrapped = vault.call("POST", f"/keys/aks-kms-dev/{'1a' * 16}/encrypt", {"alg": "RSA-OAEP-256", "value": dek})
        assert wrapped.status_code == 200 and wrapped.json()["kid"] == first
        assert material.stat().st_mode & 0o777 == 0o600
        # A version the cloud does not hold: Key Vault's KeyNotFound. The data plane makes none of its own.
        later = vault.call("POST", f"/keys/aks-kms-dev/{'2b' * 16}/encrypt", {"alg": "RSA-OAEP-256", "value": dek})
        assert later.status_code == 404 and later.json()["error"]["code"] == "KeyNotFound"
        assert vault.call("POST", "/keys/aks-kms-dev/create", {"kty": "RSA"}).status_code == 403
        # Key Vault's rotate, in the cloud: the data plane serves the new version at once, and it is the newest.
        rotated = new_key_version(states, "kv-kmsaks-dev-01", "aks-kms-dev")
        save_states(states, cloud)
        assert vault.call("GET", "/keys/aks-kms-dev").json()["key"]["kid"] == rotated
        # Another process over the same files unwraps what this one wrapped: the key material is kept.
        again = CloudKeyStore(vault_url, cloud_file=cloud, material_file=material)
        unwrapped = again.operate(
            "aks-kms-dev", "1a" * 16, "decrypt", {"alg": "RSA-OAEP-256", "value": wrapped.json()["value"]}
        )
        assert unwrapped["value"] == dek
    finally:
        server.shutdown()
        server.server_close()


def test_the_server_a_record_names_is_the_one_the_certificate_was_checked_against(tmp_path: Path) -> None:
    """A kubeconfig with `tls-server-name` (a tunnel or local port to a cluster whose certificate names its fqdn):
    the client verifies the certificate against that name, so that is the API server's host in a record."""
    from kms_aks_tools.cluster.connection import connect

    def kubeconfig(extra: dict[str, str]) -> str:
        cluster = {"server": "https://127.0.0.1:6443", "insecure-skip-tls-verify": True, **extra}
        document = {
            "apiVersion": "v1",
            "kind": "Config",
            "clusters": [{"name": "c", "cluster": cluster}],
            "users": [{"name": "u", "user": {"token": "t"}}],
            "contexts": [{"name": "ctx", "context": {"cluster": "c", "user": "u"}}],
            "current-context": "ctx",
        }
        path = tmp_path / f"kubeconfig-{len(extra)}"
        path.write_text(yaml.safe_dump(document))
        return str(path)

    named = connect(kubeconfig({"tls-server-name": "aks-dev-1a2b3c4d.hcp.westeurope.azmk8s.io"}), None)
    plain = connect(kubeconfig({}), None)
    try:
        assert named.server == "https://aks-dev-1a2b3c4d.hcp.westeurope.azmk8s.io:6443"
        assert named.api.configuration.host == "https://127.0.0.1:6443"  # requests still go where the URL says
        assert plain.server == "https://127.0.0.1:6443"
    finally:
        named.close()
        plain.close()
