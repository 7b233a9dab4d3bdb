"""Issue 22: one test per class of dangerous change, made as a user would make it, judged by the real policy pack.

Each case patches the program (`__main__.py`, a few lines appended) and/or the stack config, runs the patched
program under the mock engine as `pulumi preview` would (everything new, unknowns where the engine has them), and
sends the recorded stack to the real pack over its gRPC protocol with the stack's shipped policy config, as
`kms-aks plan` does in the PR check. The controls are harmless changes of the same kind, which must pass.

The recorded-stack mutations in tests/test_policies_protocol.py stay; these cases start one step earlier, from the
program a user edits.
"""

from __future__ import annotations

import shutil
from pathlib import Path
from typing import Any

import pytest

from kms_aks_tools.offline.mock_engine import ROOT, run_stack
from kms_aks_tools.offline.policy_pack import PolicyClient, load_policy_config
from kms_aks_tools.offline.recording import RecordedStack
from tests import engine
from tests.graph import SECRET

OTHER_SUBSCRIPTION = "00000000-0000-0000-0000-0000000000ff"
CRYPTO_USER = "12338af0-0e69-4776-bea7-57ae8d297424"
# Another team's principal (a literal object id), for the controls.
OTHER_PRINCIPAL = "11111111-2222-3333-4444-555555555555"

# The program's module-level names a patch uses: resource_group, resource_group_name, kms_key, kms_identity,
# client, config, pulumi, authorization, resources.
CRYPTO_USER_FOR_KMS_IDENTITY = """
authorization.RoleAssignment(
    "kms-crypto-user-{name}",
    principal_id=kms_identity.principal_id,
    principal_type="ServicePrincipal",
    role_definition_id=pulumi.Output.concat(
        "/subscriptions/", client.subscription_id, "/providers/Microsoft.Authorization/roleDefinitions/{role}"
    ),
    scope={scope},
)
"""


def preview(tmp_path: Path, stack: str, patch: str = "", config: dict[str, Any] | None = None) -> RecordedStack:
    """The patched program's preview: `__main__.py` with `patch` appended, run for `Pulumi.<stack>.yaml`.

    Without a patch the program is the shipped one: its run for these inputs is the session's (tests/engine.py), and
    the caller must not change it."""
    if not patch:
        recorded = engine.shared_stack(stack, config=config, preview=True)
        assert recorded.error is None, recorded.error
        return recorded
    shutil.copy(ROOT / "__main__.py", tmp_path / "__main__.py")
    shutil.copy(ROOT / f"Pulumi.{stack}.yaml", tmp_path / f"Pulumi.{stack}.yaml")
    shutil.copy(ROOT / "Pulumi.yaml", tmp_path / "Pulumi.yaml")
    with (tmp_path / "__main__.py").open("a") as program:
        program.write("\n# --- the user's change ---\n" + patch)
    recorded = run_stack(stack, config=config, preview=True, root=tmp_path)
    assert recorded.error is None, recorded.error
    return recorded


def judge(client: PolicyClient, stack: RecordedStack, policy_config: dict[str, Any] | None = None) -> Any:
    client.configure(policy_config if policy_config is not None else load_policy_config(stack.stack))
    # One generated Secret goes through Analyze (no resource policy reads one); the stack policies see them all.
    skipped = set([r.urn for r in stack.resources if r.type == SECRET][1:])
    return client.check(stack.resources, analyze=lambda r: r.urn not in skipped)


def mandatory(result: Any, policy: str) -> list[str]:
    return [v.message for v in result.mandatory if v.policy_name == policy]


@pytest.fixture
def client(ask_once_client: PolicyClient) -> PolicyClient:
    return ask_once_client  # the session's pack, each distinct question sent once (tests/conftest.py)


# ------------------------------------------------------------------------------------- 1. other shapes


def test_class_1_a_cluster_declared_through_a_generic_resource_is_refused(client: PolicyClient, tmp_path: Path) -> None:
    patch = """
resources.Resource(
    "shadow-cluster",
    resource_group_name=resource_group_name,
    resource_provider_namespace="Microsoft.ContainerService",
    parent_resource_path="",
    resource_type="managedClusters",
    resource_name_="aks-shadow",
    api_version="2024-09-01",
    location=config.location,
    identity={"type": "SystemAssigned"},
    properties={"dnsPrefix": "aks-shadow"},
)
"""
    found = mandatory(judge(client, preview(tmp_path, "dev", patch)), "aks-kms-closure")
    assert any("generic resources:Resource of Microsoft.ContainerService" in m for m in found), found
    assert all("Declare it as the azure-native resource it stands for" in m for m in found)


# ------------------------------------------------------------------------------ 2. second declarations


def test_class_2_a_second_access_policy_for_the_kms_identity_is_refused(client: PolicyClient, tmp_path: Path) -> None:
    # dev's vault is in access-policy mode: a second entry for the same principal, with fewer permissions, would
    # overwrite the KMS grant (Key Vault keeps one entry per object id).
    patch = """
from pulumi_azure_native import keyvault

keyvault.AccessPolicy(
    "kms-reader",
    resource_group_name=resource_group_name,
    vault_name=kms_key.vault_name,
    policy=keyvault.AccessPolicyEntryArgs(
        tenant_id=client.tenant_id,
        object_id=kms_identity.principal_id,
        permissions=keyvault.PermissionsArgs(keys=["get"]),
    ),
)
"""
    found = mandatory(judge(client, preview(tmp_path, "dev", patch)), "aks-kms-closure")
    assert any("a second AccessPolicy for principal" in m and "Declare one AccessPolicy" in m for m in found), found


def test_control_an_extra_reader_access_policy_for_another_principal_passes(
    client: PolicyClient, tmp_path: Path
) -> None:
    patch = f"""
from pulumi_azure_native import keyvault

keyvault.AccessPolicy(
    "team-reader",
    resource_group_name=resource_group_name,
    vault_name=kms_key.vault_name,
    policy=keyvault.AccessPolicyEntryArgs(
        tenant_id=client.tenant_id,
        object_id="{OTHER_PRINCIPAL}",
        permissions=keyvault.PermissionsArgs(keys=["get", "list"]),
    ),
)
"""
    assert judge(client, preview(tmp_path, "dev", patch)).mandatory == []


# ------------------------------------------------------------------------------- 3. unhonoured grants


@pytest.mark.parametrize(
    ("scope", "why"),
    [
        (f'"/subscriptions/{OTHER_SUBSCRIPTION}"', f"is in subscription {OTHER_SUBSCRIPTION}"),
        (
            'pulumi.Output.concat("/subscriptions/", client.subscription_id, "/resourceGroups/rg-unrelated")',
            "is resource group rg-unrelated, but the KMS vault is in resource group rg-kms-aks-prod",
        ),
    ],
)
def test_class_3_a_crypto_user_grant_outside_the_keys_scope_is_refused(
    client: PolicyClient, tmp_path: Path, scope: str, why: str
) -> None:
    patch = CRYPTO_USER_FOR_KMS_IDENTITY.format(name="elsewhere", role=CRYPTO_USER, scope=scope)
    found = mandatory(judge(client, preview(tmp_path, "prod", patch)), "aks-kms-identity-grant")
    [message] = found
    assert why in message
    assert "the key (scope=key.id), the vault, its resource group, its subscription, or a management group" in message


@pytest.mark.parametrize(
    "scope",
    [
        'pulumi.Output.concat("/subscriptions/", client.subscription_id)',
        '"/providers/Microsoft.Management/managementGroups/platform"',
        'pulumi.Output.concat("/subscriptions/", client.subscription_id, "/resourceGroups/", resource_group_name)',
    ],
)
def test_control_a_crypto_user_grant_at_a_scope_containing_the_key_passes(
    client: PolicyClient, tmp_path: Path, scope: str
) -> None:
    # The stack's own subscription, a management group, the vault's resource group (its literal name is known at
    # preview by design: __main__.py's resource_group_name).
    patch = CRYPTO_USER_FOR_KMS_IDENTITY.format(name="wider", role=CRYPTO_USER, scope=scope)
    assert judge(client, preview(tmp_path, "prod", patch)).mandatory == []


# ----------------------------------------------------------------------------- 4. a key that cannot encrypt


def test_class_4_an_expired_key_is_refused(client: PolicyClient, tmp_path: Path) -> None:
    stack = preview(tmp_path, "dev", config={"kms-aks:kmsKey": {"name": "aks-kms-dev", "expiresOn": "2024-01-01"}})
    found = mandatory(judge(client, stack), "aks-kms-key-vault-fit")
    assert any("expired" in m for m in found), found


# ----------------------------------------------------------------------------- 5. a prod guarantee, BYOK


BYOK = {
    "keyId": "https://kv-team-keys.vault.azure.net/keys/aks-etcd/0123456789abcdef0123456789abcdef",
    "keyVaultResourceId": "/subscriptions/6b1d2f5e-3c4a-4e8b-9a7d-1f2e3d4c5b6a/resourceGroups/rg-keys/providers/"
    "Microsoft.KeyVault/vaults/kv-team-keys",
    "permissionModel": "rbac",
}


def _byok(tmp_path: Path, vault_subscription: str | None = None, **declared: Any) -> RecordedStack:
    existing = {**BYOK, **declared}
    if vault_subscription is not None:
        existing["keyVaultResourceId"] = BYOK["keyVaultResourceId"].replace(
            "6b1d2f5e-3c4a-4e8b-9a7d-1f2e3d4c5b6a", vault_subscription
        )
    return preview(
        tmp_path,
        "prod",
        config={"kms-aks:keyVault": None, "kms-aks:kmsKey": None, "kms-aks:existingKey": existing},
    )


def _pinned() -> dict[str, Any]:
    return {**load_policy_config("prod"), "aks-kms-key-source": {"pinnedKeyIds": [BYOK["keyId"]]}}


def test_class_5_a_bring_your_own_key_on_prod_is_refused_until_declared_hsm(
    client: PolicyClient, tmp_path: Path
) -> None:
    [message] = mandatory(judge(client, _byok(tmp_path), _pinned()), "aks-kms-key-vault-fit")
    assert "has no declared key type or purge protection" in message and "kms-aks:existingKey" in message
    software = _byok(tmp_path, keyType="RSA", purgeProtection=True)
    [message] = mandatory(judge(client, software, _pinned()), "aks-kms-key-vault-fit")
    assert 'declared with key type "RSA"' in message


@pytest.mark.parametrize("vault_subscription", [None, OTHER_SUBSCRIPTION])
def test_control_a_bring_your_own_key_declared_hsm_and_purge_protected_passes(
    client: PolicyClient, tmp_path: Path, vault_subscription: str | None
) -> None:
    # Also when the key's vault is in another team's subscription: the Crypto User grant at the key's own id (the
    # program's, scope=the key's ARM id) contains the key wherever the vault is.
    stack = _byok(
        tmp_path,
        vault_subscription,
        keyType="RSA-HSM",
        purgeProtection=True,
        softDeleteRetentionDays=90,
        auditLogging=True,
    )
    assert judge(client, stack, _pinned()).mandatory == []


@pytest.mark.parametrize(("audit_logging", "said"), [(None, "is not declared"), (False, "declared without audit")])
def test_class_5_prod_audit_logging_still_applies_to_a_bring_your_own_keys_vault(
    client: PolicyClient, tmp_path: Path, audit_logging: bool | None, said: str
) -> None:
    # The vault is its owner's: prod's mandatory audit logging is shown by a declaration, or refused.
    declared = {} if audit_logging is None else {"auditLogging": audit_logging}
    stack = _byok(tmp_path, keyType="RSA-HSM", purgeProtection=True, **declared)
    [message] = mandatory(judge(client, stack, _pinned()), "aks-kms-vault-audit-logging")
    assert "kv-team-keys" in message and said in message and "kms-aks:existingKey.auditLogging: true" in message
    # On dev the same policy is advisory: the stack's policy config decides, not the rule.
    dev_config = {**load_policy_config("dev"), "aks-kms-key-source": {"pinnedKeyIds": [BYOK["keyId"]]}}
    assert mandatory(judge(client, stack, dev_config), "aks-kms-vault-audit-logging") == []


# ----------------------------------------------------------------------------- 6. policy config bounds


def test_class_6_max_secrets_cannot_lift_the_kms_v1_limit(client: PolicyClient, tmp_path: Path) -> None:
    patch = """
for number in range(2100):
    pulumi.CustomResource(
        "kubernetes:core/v1:Secret",
        f"app-secret-{number}",
        {"metadata": {"name": f"app-secret-{number}", "namespace": "apps"}, "type": "Opaque"},
    )
"""
    stack = preview(
        tmp_path,
        "dev",
        patch,
        config={
            "kms-aks:cluster": {"name": "aks-kms-dev", "kubernetesVersion": "1.26", "systemNodePool": {"count": 2}}
        },
    )
    policy_config = {**load_policy_config("dev"), "aks-kms-secret-limit": {"maxSecrets": 5000}}
    found = mandatory(judge(client, stack, policy_config), "aks-kms-secret-limit")
    assert any("2100" in m for m in found), found


# ----------------------------------------------------------------------------- 7. unknowns at preview


def test_class_7_a_grant_whose_scope_is_unknown_at_preview_is_refused_there(
    client: PolicyClient, tmp_path: Path
) -> None:
    # The resource group's id is unknown until it exists, and is not the Key's or the Vault's: the pack cannot show
    # at preview that the scope contains the key, and during `pulumi up` it would judge only after the grant exists
    # (pulumi/pulumi#3366).
    patch = CRYPTO_USER_FOR_KMS_IDENTITY.format(name="group-id", role=CRYPTO_USER, scope="resource_group.id")
    found = mandatory(judge(client, preview(tmp_path, "prod", patch)), "aks-kms-identity-grant")
    assert any("cannot be decided at preview" in m and "scope=key.id" in m for m in found), found


def test_class_7_the_program_gives_the_pack_literal_names_at_preview(tmp_path: Path) -> None:
    # By design: the vault's resource group and the key's vault are literals at preview, still depending on the
    # resources they name (so Pulumi creates them in order).
    stack = preview(tmp_path, "prod")
    by_type = {r.type.rsplit(":", 1)[-1]: r for r in stack.resources}
    vault, key = by_type["Vault"], by_type["Key"]
    assert vault.inputs["resourceGroupName"] == "rg-kms-aks-prod"
    assert key.inputs["vaultName"] == "kv-kmsaks-prod-01"
    assert vault.property_dependencies["resourceGroupName"] == (by_type["ResourceGroup"].urn,)
    assert key.property_dependencies["vaultName"] == (vault.urn,)
