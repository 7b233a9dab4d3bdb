"""azure_facts against Microsoft's documentation: every expected value below is a literal copied from the page cited
next to it, never taken from azure_facts (or from the program), so a typo in a fact fails here."""

from __future__ import annotations

import pytest

import azure_facts as facts

# https://learn.microsoft.com/azure/role-based-access-control/built-in-roles/security (each role's "ID" row)
SECURITY_ROLES = "https://learn.microsoft.com/azure/role-based-access-control/built-in-roles/security"
# https://learn.microsoft.com/azure/role-based-access-control/built-in-roles/networking#network-contributor
NETWORKING_ROLES = "https://learn.microsoft.com/azure/role-based-access-control/built-in-roles/networking"
# https://learn.microsoft.com/azure/role-based-access-control/built-in-roles/storage#storage-blob-data-contributor
STORAGE_ROLES = "https://learn.microsoft.com/azure/role-based-access-control/built-in-roles/storage"


@pytest.mark.parametrize(
    ("fact", "documented", "name", "page"),
    [
        ("KEY_VAULT_CRYPTO_USER_ROLE", "12338af0-0e69-4776-bea7-57ae8d297424", "Key Vault Crypto User", SECURITY_ROLES),
        (
            "KEY_VAULT_CRYPTO_OFFICER_ROLE",
            "14b46e9e-c2b7-41b4-b07b-48a6ebf60603",
            "Key Vault Crypto Officer",
            SECURITY_ROLES,
        ),
        (
            "KEY_VAULT_ADMINISTRATOR_ROLE",
            "00482a5a-887f-4fb3-b363-3b7fe8e74483",
            "Key Vault Administrator",
            SECURITY_ROLES,
        ),
        ("KEY_VAULT_CONTRIBUTOR_ROLE", "f25e0fa2-a7c8-4377-a976-54943a77a395", "Key Vault Contributor", SECURITY_ROLES),
        ("NETWORK_CONTRIBUTOR_ROLE", "4d97b98b-1d4f-4787-a291-c67834d212e7", "Network Contributor", NETWORKING_ROLES),
        (
            "STORAGE_BLOB_DATA_CONTRIBUTOR_ROLE",
            "ba92f5b4-2d11-453d-a403-e96b0029c9fe",
            "Storage Blob Data Contributor",
            STORAGE_ROLES,
        ),
    ],
)
def test_built_in_role_ids_are_microsofts(fact: str, documented: str, name: str, page: str) -> None:
    assert getattr(facts, fact) == documented, f"{name}: see {page}"
    assert facts.ROLE_NAMES[documented] == name


def test_kms_crypto_roles_are_the_ones_with_key_encrypt_and_decrypt() -> None:
    # SECURITY_ROLES: Crypto User, Crypto Officer and Administrator list Microsoft.KeyVault/vaults/keys/encrypt/action
    # and .../decrypt/action (Officer and Administrator through vaults/keys/*); Contributor is management plane only.
    assert {
        "12338af0-0e69-4776-bea7-57ae8d297424",
        "14b46e9e-c2b7-41b4-b07b-48a6ebf60603",
        "00482a5a-887f-4fb3-b363-3b7fe8e74483",
    } == facts.KMS_CRYPTO_ROLES


def test_key_vault_dns_suffixes() -> None:
    # https://learn.microsoft.com/azure/key-vault/general/about-keys-secrets-certificates#dns-suffixes-for-object-identifiers
    # (Azure Germany's .vault.microsoftazure.de is left out: that cloud closed in 2021.)
    assert set(facts.KEY_VAULT_DNS_SUFFIXES) == {"vault.azure.net", "vault.azure.cn", "vault.usgovcloudapi.net"}


def test_kms_v2_threshold() -> None:
    # https://learn.microsoft.com/azure/aks/use-kms-etcd-encryption: "Starting with Kubernetes version 1.27,
    # turning on the feature ... is KMS v2" (and the 2000-secret limit is KMS v1 only).
    assert facts.KMS_V2_MIN_KUBERNETES_VERSION == (1, 27)


# Key identifiers as Microsoft documents them: the Key Vault REST reference's "Create Key" response `kid`
# (https://learn.microsoft.com/rest/api/keyvault/keys/create-key/create-key) and the object identifier form
# https://{vault-name}.vault.azure.net/{object-type}/{object-name}/{object-version}
# (https://learn.microsoft.com/azure/key-vault/general/about-keys-secrets-certificates#object-identifiers).
DOCUMENTED_KEY_IDS = [
    "https://myvault.vault.azure.net/keys/CreateSoftKeyTest/78deebed173b48e48f55abf87ed4cf71",
    "https://myvault.vault.azure.cn/keys/CreateSoftKeyTest/78deebed173b48e48f55abf87ed4cf71",
    "https://myvault.vault.usgovcloudapi.net/keys/CreateSoftKeyTest/78deebed173b48e48f55abf87ed4cf71",
]
NOT_VERSIONED_KEY_IDS = [
    "https://myvault.vault.azure.net/keys/CreateSoftKeyTest",  # versionless
    "https://myvault.vault.azure.net/keys/CreateSoftKeyTest/78deebed173b48e48f55abf87ed4cf7",  # 31 hex digits
    "https://myvault.vault.azure.net/secrets/CreateSoftKeyTest/78deebed173b48e48f55abf87ed4cf71",  # a secret
    "https://myvault.managedhsm.azure.net/keys/CreateSoftKeyTest/78deebed173b48e48f55abf87ed4cf71",  # managed HSM
    "https://my_vault.vault.azure.net/keys/CreateSoftKeyTest/78deebed173b48e48f55abf87ed4cf71",  # '_' in a vault
    "https://1vault.vault.azure.net/keys/CreateSoftKeyTest/78deebed173b48e48f55abf87ed4cf71",  # starts with a digit
    "https://kv.vault.azure.net/keys/CreateSoftKeyTest/78deebed173b48e48f55abf87ed4cf71",  # 2 characters
]


@pytest.mark.parametrize("key_id", DOCUMENTED_KEY_IDS)
def test_documented_key_ids_are_versioned_key_ids(key_id: str) -> None:
    match = facts.VERSIONED_KEY_ID.match(key_id)
    assert match is not None
    assert (match["vault"], match["name"], match["version"]) == (
        "myvault",
        "CreateSoftKeyTest",
        "78deebed173b48e48f55abf87ed4cf71",
    )
    assert facts.KEY_URL.match(key_id)["version"] == "78deebed173b48e48f55abf87ed4cf71"


@pytest.mark.parametrize("key_id", NOT_VERSIONED_KEY_IDS)
def test_other_urls_are_not_versioned_key_ids(key_id: str) -> None:
    import re

    assert facts.VERSIONED_KEY_ID.match(key_id) is None
    assert re.search(facts.VERSIONED_KEY_ID_PATTERN, key_id) is None


def test_vault_and_key_name_rules() -> None:
    # https://learn.microsoft.com/azure/azure-resource-manager/management/resource-name-rules#microsoftkeyvault:
    # vaults 3-24 characters, alphanumerics and hyphens, start with a letter, end with a letter or digit.
    # Key names (object names): 1-127 characters, 0-9, a-z, A-Z and - (about-keys-secrets-certificates, as above).
    # Key versions: the management API's keyVersion parameter, "pattern": "^[a-fA-F0-9]{32}$"
    # (azure-rest-api-specs keyvault/resource-manager/Microsoft.KeyVault/stable/2024-11-01/keys.json).
    import re

    vault = re.compile(rf"^{facts.VAULT_NAME_PATTERN}$")
    assert vault.match("abc") and vault.match("a" * 24) and vault.match("kv-kms-01")
    for bad in ("ab", "a" * 25, "kv-", "1kv", "kv_1"):
        assert not vault.match(bad), bad
    key = re.compile(rf"^{facts.KEY_NAME_PATTERN}$")
    assert key.match("a") and key.match("k" * 127) and key.match("aks-kms")
    assert not key.match("k" * 128) and not key.match("aks_kms")
    assert facts.KEY_VERSION.match("78deebed173b48e48f55abf87ed4cf71")
    assert not facts.KEY_VERSION.match("78deebed173b48e48f55abf87ed4cf7g")


def test_vault_resource_id() -> None:
    # The form of Microsoft.KeyVault/vaults ids: /subscriptions/{subscriptionId}/resourceGroups/{resourceGroupName}/
    # providers/Microsoft.KeyVault/vaults/{vaultName} (https://learn.microsoft.com/rest/api/keyvault/keyvault/vaults/get).
    match = facts.VAULT_RESOURCE_ID.match(
        "/subscriptions/00000000-0000-0000-0000-000000000000/resourceGroups/sample-group"
        "/providers/Microsoft.KeyVault/vaults/sample-vault"
    )
    assert match is not None
    assert (match["resource_group"], match["vault"]) == ("sample-group", "sample-vault")
    assert not facts.VAULT_RESOURCE_ID.match(
        "/subscriptions/00000000-0000-0000-0000-000000000000/resourceGroups/sample-group"
        "/providers/Microsoft.KeyVault/vaults/sample-vault/keys/sample-key"
    )


# ------------------------------------------------------------------------------------------------ key ids


def test_key_ids_compare_case_slash_and_default_port_insensitively() -> None:
    from azure_facts.key_ids import normalize_key_id

    same = (
        "https://kv-kms-01.vault.azure.net/keys/etcd/0123456789abcdef0123456789abcdef",
        " HTTPS://KV-KMS-01.vault.azure.net/keys/Etcd/0123456789ABCDEF0123456789ABCDEF/ ",
        "https://kv-kms-01.vault.azure.net:443/keys/etcd/0123456789abcdef0123456789abcdef",
    )
    assert {normalize_key_id(k) for k in same} == {same[0]}
    assert normalize_key_id("https://kv-kms-01.vault.azure.net:8443/keys/etcd/v") != normalize_key_id(
        "https://kv-kms-01.vault.azure.net/keys/etcd/v"
    )


def test_plugin_key_id_and_metric_label_of_a_key_url() -> None:
    # The Azure KMS plugin's key id: sha256 hex of the rebuilt URL; the API server's label: "sha256:" + hex of that.
    from azure_facts.key_ids import NotAVersionedKeyId, canonical_key_url, metric_key_id_hash, plugin_key_id

    url = "https://kv-kms-01.vault.azure.net/keys/etcd/0123456789abcdef0123456789abcdef"
    assert canonical_key_url(f" {url} ") == url
    assert plugin_key_id(url) == "eec3faeac42306dedd5fa31cf26f541837e62f4e8816943de950ee44f88070ba"
    assert plugin_key_id(url.replace("kv-kms-01", "KV-KMS-01")) != plugin_key_id(url)  # the plugin hashes as given
    # sha256("abc") is FIPS 180-2's first test vector.
    assert metric_key_id_hash("abc") == "sha256:ba7816bf8f01cfea414140de5dae2223b00361a396177a9cb410ff61f20015ad"
    with pytest.raises(NotAVersionedKeyId, match="not a versioned Key Vault key id"):
        canonical_key_url("https://kv-kms-01.vault.azure.net/keys/etcd")
