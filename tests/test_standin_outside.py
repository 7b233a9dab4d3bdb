"""Resources outside every stack (`sandbox-azure.yaml`, `kms_aks_tools.standin.outside`): a bring-your-own-key
vault and key with its versions, another team's grant. AKS's checks in the stand-in (`standin.arm`) see them as
they see the stack's own; a file that is not such a declaration is named, field and all."""

from __future__ import annotations

from pathlib import Path

import pytest

from kms_aks_tools.standin.arm import ArmRefusal, check_managed_cluster
from kms_aks_tools.standin.outside import OutsideError, add_outside, outside_states, read_outside

SUB = "11111111-2222-3333-4444-555555555555"
VAULT_ID = f"/subscriptions/{SUB}/resourceGroups/rg-keys/providers/Microsoft.KeyVault/vaults/kv-team-keys"
V1, V2 = "1a" * 16, "2b" * 16
KEY_URL = "https://kv-team-keys.vault.azure.net/keys/aks-etcd"
KEY_VAULT_CRYPTO_USER = "12338af0-0e69-4776-bea7-57ae8d297424"
CRYPTO_USER = f"/subscriptions/{SUB}/providers/Microsoft.Authorization/roleDefinitions/{KEY_VAULT_CRYPTO_USER}"
PRINCIPAL = "0f0e0d0c-0b0a-4909-8807-060504030201"
IDENTITY_ID = f"/subscriptions/{SUB}/resourceGroups/rg-aks/providers/Microsoft.ManagedIdentity/userAssignedIdentities/i"
DECLARED = f"""
# Azure resources no stack of this project creates. Reviewed like code.
vaults:
  - id: {VAULT_ID}
    permissionModel: rbac
    keys:
      - name: aks-etcd
        versions: [{V1}, {V2}]
roleAssignments:
  - scope: {VAULT_ID}
    roleDefinitionId: {CRYPTO_USER}
    principalId: {PRINCIPAL}
"""


def cluster(key_id: str) -> dict:
    return {
        "identity": {"type": "UserAssigned", "userAssignedIdentities": [IDENTITY_ID]},
        "securityProfile": {"azureKeyVaultKms": {"enabled": True, "keyId": key_id, "keyVaultNetworkAccess": "Public"}},
    }


def declared(tmp_path: Path, text: str = DECLARED) -> Path:
    path = tmp_path / "sandbox-azure.yaml"
    path.write_text(text)
    return path


def test_a_byok_key_and_another_teams_grant_let_aks_take_every_declared_version(tmp_path: Path) -> None:
    identity = {IDENTITY_ID: ("azure-native:managedidentity:UserAssignedIdentity", {"principalId": PRINCIPAL})}
    # Without the declarations, the BYOK key does not exist: AKS's KeyNotFound.
    with pytest.raises(ArmRefusal, match="KeyNotFound"):
        check_managed_cluster(cluster(f"{KEY_URL}/{V2}"), None, dict(identity), {}, 0.0)
    states = dict(identity)
    added = add_outside(states, declared(tmp_path))
    assert VAULT_ID in added and f"{VAULT_ID}/keys/aks-etcd" in added and len(added) == 4
    for version in (V1, V2):  # the older version and the current one
        check_managed_cluster(cluster(f"{KEY_URL}/{version}"), None, states, {}, 0.0)
    with pytest.raises(ArmRefusal, match="KeyNotFound"):
        check_managed_cluster(cluster(f"{KEY_URL}/{'3' * 32}"), None, states, {}, 0.0)
    # The grant is the other team's: without it, AKS refuses the identity.
    without_grant = {k: v for k, v in states.items() if "roleAssignments" not in k}
    with pytest.raises(ArmRefusal, match="AzureKeyVaultKmsValidateIdentityPermissionCustomerError"):
        check_managed_cluster(cluster(f"{KEY_URL}/{V2}"), None, without_grant, {}, 0.0)
    # A saved cloud keeps what happened since (a later version added): declaring again adds nothing.
    assert add_outside(states, tmp_path / "sandbox-azure.yaml") == []
    assert states[f"{VAULT_ID}/keys/aks-etcd"][1]["keyUriWithVersion"] == f"{KEY_URL}/{V2}"


def test_the_ids_are_stable_and_an_absent_file_declares_nothing(tmp_path: Path) -> None:
    assert outside_states(read_outside(declared(tmp_path))) == outside_states(read_outside(declared(tmp_path)))
    assert add_outside({}, tmp_path / "absent.yaml") == []


@pytest.mark.parametrize(
    ("text", "message"),
    [
        ("vaults: [{id: /subscriptions/x/vaults/v}]", "sandbox-azure.yaml: vaults.0.id: String should match pattern"),
        (f"vaults: [{{id: {VAULT_ID}, keys: [{{name: k, versions: [abc]}}]}}]", "is not 32 lowercase hex digits"),
        (f"vaults: [{{id: {VAULT_ID}, everything: true}}]", "vaults.0.everything: Extra inputs are not permitted"),
        ("vaults: [", "sandbox-azure.yaml: not valid YAML"),
    ],
)
def test_a_bad_declaration_is_named(tmp_path: Path, text: str, message: str) -> None:
    with pytest.raises(OutsideError, match=message.replace("[", r"\[").replace("(", r"\(")):
        read_outside(declared(tmp_path, text))
