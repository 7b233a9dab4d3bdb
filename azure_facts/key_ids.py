"""Key Vault key ids, in the spellings the stack, the Azure KMS plugin and the API server's metrics write them,
and the one rule for when two key ids name the same key. Standard library only: the policy pack, the plan guard
and the cluster tools all compare key ids through here, so they cannot disagree on whether two are one key.

Three spellings of one key version:

- the **versioned key URL** the stack pins (`https://<vault>.vault.azure.net/keys/<name>/<version>`), the
  `keyId` of `securityProfile.azureKeyVaultKms`; `canonical_key_url` is how the plugin rebuilds it;
- the **plugin key id**: what the Azure KMS plugin returns from its Status call and writes into every
  envelope in etcd (`EncryptedObject.keyID`). The plugin computes it as the sha256 (hex) of the vault URL
  resolved against `keys/<name>/<version>` (`getKeyIDHash` in Azure/kubernetes-kms, pkg/plugin/keyvault.go:
  `fmt.Sprintf("%x", sha256.Sum256(...))`);
- the **metric label**: the API server never exports a key id itself, only `sha256:<hex of sha256(key id)>`
  in the `key_id_hash` label of `apiserver_envelope_encryption_key_id_hash_*` (`getHash` in
  k8s.io/apiserver pkg/storage/value/encrypt/envelope/metrics/metrics.go, v0.34.4). So a metric label is a hash
  of a hash.
"""

from __future__ import annotations

import hashlib
import re

from azure_facts import VERSIONED_KEY_ID

# https's default port, written out: `https://<vault>.vault.azure.net:443/keys/...` is the same endpoint and the
# same key as without it (RFC 3986 section 6.2.3: an explicit default port is normalised away).
_DEFAULT_PORT = re.compile(r"^(https://[^/:]+):443(?=/|$)")


class NotAVersionedKeyId(ValueError):
    """A key id that is not a versioned Key Vault key URL, where only one can name the key a cluster uses."""


def normalize_key_id(key_id: str) -> str:
    """A key id as compared with another: trimmed, lower-cased (Key Vault host and path compare case-insensitively
    and the version is hex), without a trailing slash and without the default port 443."""
    return _DEFAULT_PORT.sub(r"\1", key_id.strip().lower().rstrip("/"))


def canonical_key_url(versioned_key_url: str) -> str:
    """The URL as the Azure plugin rebuilds it: `https://<host>/keys/<name>/<version>`, no port, no slash (the
    only form AKS KMS accepts as `keyId`, so nothing else is taken for one)."""
    match = VERSIONED_KEY_ID.match(versioned_key_url.strip())
    if match is None:
        raise NotAVersionedKeyId(
            f"{versioned_key_url!r} is not a versioned Key Vault key id; expected "
            "https://<vault>.vault.azure.net/keys/<name>/<32-hex version>"
        )
    return f"https://{match['vault']}.{match['suffix']}/keys/{match['name']}/{match['version']}"


def plugin_key_id(versioned_key_url: str) -> str:
    """The key id the Azure KMS plugin reports for this key version (and that each envelope in etcd carries);
    `metric_key_id_hash` of it is the API server's metric label."""
    return hashlib.sha256(canonical_key_url(versioned_key_url).encode()).hexdigest()


def metric_key_id_hash(key_id: str) -> str:
    """The `key_id_hash` label kube-apiserver's envelope metrics give a key id: `sha256:<hex>`."""
    return "sha256:" + hashlib.sha256(key_id.encode()).hexdigest()
