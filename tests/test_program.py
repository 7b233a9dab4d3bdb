"""The real program under the mock engine: what it registers, how it is wired, what it protects."""

from __future__ import annotations

import pytest

from components.kms_identity import KEY_VAULT_CRYPTO_USER_ROLE
from kms_aks_tools.offline.mock_engine import SUBSCRIPTION_ID
from kms_aks_tools.offline.recording import RecordedStack
from tests.engine import run_stack
from tests.graph import (
    ACCESS_POLICY,
    CLUSTER,
    ENTRA_GROUP,
    IDENTITY,
    KEY,
    RESOURCE_GROUP,
    ROLE_ASSIGNMENT,
    VAULT,
    cloud_resources,
    depends_on,
    longest_chain,
    waits_for_propagation,
)

BYOK_KEY_ID = "https://kv-team-keys.vault.azure.net/keys/aks-etcd/0123456789abcdef0123456789abcdef"
BYOK_VAULT_ID = (
    "/subscriptions/11111111-2222-3333-4444-555555555555/resourceGroups/rg-keys/providers/Microsoft.KeyVault"
    "/vaults/kv-team-keys"
)


def _component(stack: RecordedStack, token: str):
    return stack.one(f"kms-aks:index:{token}")


# ------------------------------------------------------------------------------------------- components


@pytest.mark.parametrize("stack_name", ["dev", "prod"])
def test_each_cloud_resource_is_a_child_of_its_component(stack_name: str, request) -> None:
    stack: RecordedStack = request.getfixturevalue(f"{stack_name}_stack")
    key_vault = _component(stack, "KeyVaultWithKey")
    identity = _component(stack, "KmsIdentity")
    cluster = _component(stack, "KmsAksCluster")
    root = stack.one("pulumi:pulumi:Stack")
    for component in (key_vault, identity, cluster):
        assert component.parent == root.urn
        assert not component.custom

    assert stack.one(VAULT).parent == key_vault.urn
    assert stack.one(KEY).parent == key_vault.urn
    assert stack.one(IDENTITY).parent == identity.urn
    grant_type = ACCESS_POLICY if stack_name == "dev" else ROLE_ASSIGNMENT
    assert stack.one(grant_type).parent == identity.urn
    assert stack.one(CLUSTER).parent == cluster.urn
    assert stack.one(ENTRA_GROUP).parent == cluster.urn
    assert stack.one(RESOURCE_GROUP).parent == root.urn


def test_dev_vault_and_key(dev_stack: RecordedStack) -> None:
    vault = dev_stack.one(VAULT)
    props = vault.inputs["properties"]
    assert vault.inputs["vaultName"] == "kv-kmsaks-dev-01"
    assert props["sku"] == {"family": "A", "name": "standard"}
    assert props["enablePurgeProtection"] is True
    assert props["enableSoftDelete"] is True
    assert props["softDeleteRetentionInDays"] == 7
    assert props["enableRbacAuthorization"] is False
    assert props["publicNetworkAccess"] == "Enabled"
    # Grants are separate resources: inline policies would wipe them on every vault update.
    assert "accessPolicies" not in props

    key = dev_stack.one(KEY).inputs
    assert key["keyName"] == "aks-kms-dev"
    assert key["properties"]["kty"] == "RSA"
    assert key["properties"]["keySize"] == 2048
    assert set(key["properties"]["keyOps"]) >= {"encrypt", "decrypt"}
    assert "rotationPolicy" not in key["properties"]


def test_prod_vault_and_key_are_hsm_backed_with_rotation(prod_stack: RecordedStack) -> None:
    props = prod_stack.one(VAULT).inputs["properties"]
    assert props["sku"]["name"] == "premium"
    assert props["enableRbacAuthorization"] is True
    assert props["softDeleteRetentionInDays"] == 90
    assert props["enablePurgeProtection"] is True

    key = prod_stack.one(KEY).inputs["properties"]
    assert key["kty"] == "RSA-HSM"
    assert key["keySize"] == 3072
    rotation = key["rotationPolicy"]
    assert rotation["attributes"]["expiryTime"] == "P395D"
    actions = {a["action"]["type"]: a["trigger"] for a in rotation["lifetimeActions"]}
    assert actions == {"rotate": {"timeAfterCreate": "P335D"}, "notify": {"timeBeforeExpiry": "P30D"}}


def test_dev_grant_is_an_access_policy_with_encrypt_and_decrypt_only(dev_stack: RecordedStack) -> None:
    policy = dev_stack.one(ACCESS_POLICY)
    identity = dev_stack.one(IDENTITY)
    vault = dev_stack.one(VAULT)
    assert policy.inputs["policy"]["permissions"] == {"keys": ["encrypt", "decrypt"]}
    assert policy.inputs["policy"]["objectId"] == identity.outputs["principalId"]
    assert policy.inputs["vaultName"] == vault.outputs["name"]
    assert dev_stack.by_type(ROLE_ASSIGNMENT) == []


def test_prod_grant_is_crypto_user_at_key_scope(prod_stack: RecordedStack) -> None:
    grant = prod_stack.one(ROLE_ASSIGNMENT).inputs
    identity = prod_stack.one(IDENTITY)
    key = prod_stack.one(KEY)
    assert grant["roleDefinitionId"] == (
        f"/subscriptions/{SUBSCRIPTION_ID}/providers/Microsoft.Authorization/roleDefinitions/{KEY_VAULT_CRYPTO_USER_ROLE}"
    )
    assert grant["scope"] == key.id
    assert grant["principalId"] == identity.outputs["principalId"]
    assert grant["principalType"] == "ServicePrincipal"
    assert prod_stack.by_type(ACCESS_POLICY) == []


@pytest.mark.parametrize("stack_name", ["dev", "prod"])
def test_cluster_uses_kms_with_the_user_assigned_identity(stack_name: str, request) -> None:
    stack: RecordedStack = request.getfixturevalue(f"{stack_name}_stack")
    cluster = stack.one(CLUSTER)
    identity = stack.one(IDENTITY)
    key = stack.one(KEY)
    assert cluster.inputs["identity"] == {"type": "UserAssigned", "userAssignedIdentities": [identity.id]}
    assert cluster.inputs["securityProfile"]["azureKeyVaultKms"] == {
        "enabled": True,
        "keyId": key.outputs["keyUriWithVersion"],
        "keyVaultNetworkAccess": "Public",
    }
    # The provider answers with the map shape, carrying the identity's own principal.
    assert cluster.outputs["identity"]["userAssignedIdentities"] == {
        identity.id: {"principalId": identity.outputs["principalId"], "clientId": identity.outputs["clientId"]}
    }


@pytest.mark.parametrize("stack_name", ["dev", "prod"])
def test_cluster_hardening(stack_name: str, request) -> None:
    stack: RecordedStack = request.getfixturevalue(f"{stack_name}_stack")
    cluster = stack.one(CLUSTER).inputs
    group = stack.one(ENTRA_GROUP)
    assert cluster["disableLocalAccounts"] is True
    assert cluster["enableRBAC"] is True
    assert cluster["aadProfile"]["managed"] is True
    assert cluster["aadProfile"]["enableAzureRBAC"] is True
    assert cluster["aadProfile"]["adminGroupObjectIDs"] == [group.outputs["objectId"]]
    assert group.inputs["securityEnabled"] is True
    assert cluster["autoUpgradeProfile"] == {"upgradeChannel": "patch", "nodeOSUpgradeChannel": "NodeImage"}
    assert cluster["networkProfile"]["networkPolicy"] == "cilium"
    assert cluster["oidcIssuerProfile"] == {"enabled": True}
    assert cluster["securityProfile"]["workloadIdentity"] == {"enabled": True}
    assert cluster["securityProfile"]["imageCleaner"]["enabled"] is True
    assert cluster["addonProfiles"]["azurepolicy"] == {"enabled": True}
    assert cluster["kubernetesVersion"] == "1.33"
    pool = cluster["agentPoolProfiles"][0]
    assert pool["mode"] == "System"
    assert pool["count"] == {"dev": 2, "prod": 3}[stack_name]
    assert pool["enableNodePublicIP"] is False


def test_dev_cluster_restricts_the_api_server(dev_stack: RecordedStack) -> None:
    # A documentation range (RFC 5737) like prod's: the first-deploy checklist says to replace both.
    assert dev_stack.one(CLUSTER).inputs["apiServerAccessProfile"]["authorizedIPRanges"] == ["198.51.100.0/24"]


def test_prod_cluster_restricts_the_api_server_and_spreads_zones(prod_stack: RecordedStack) -> None:
    cluster = prod_stack.one(CLUSTER).inputs
    assert cluster["apiServerAccessProfile"]["authorizedIPRanges"] == ["203.0.113.0/24"]
    assert cluster["agentPoolProfiles"][0]["availabilityZones"] == ["1", "2", "3"]
    assert cluster["sku"] == {"name": "Base", "tier": "Standard"}


# ------------------------------------------------------------------------------------------- ordering


@pytest.mark.parametrize("stack_name, grant_type", [("dev", ACCESS_POLICY), ("prod", ROLE_ASSIGNMENT)])
def test_cluster_waits_explicitly_for_the_grant_and_for_the_key(stack_name: str, grant_type: str, request) -> None:
    stack: RecordedStack = request.getfixturevalue(f"{stack_name}_stack")
    cluster = stack.one(CLUSTER)
    grant = stack.one(grant_type)
    key = stack.one(KEY)
    # The cluster waits for the propagation wait, which waits for the grant: existing is not yet effective.
    assert waits_for_propagation(stack, cluster, [grant])
    assert grant.urn not in cluster.dependencies
    assert key.urn in cluster.property_dependencies["securityProfile"]
    assert stack.one(IDENTITY).urn in cluster.property_dependencies["identity"]
    # The component as a whole is ordered after the grant in __main__ too.
    assert waits_for_propagation(stack, _component(stack, "KmsAksCluster"), [grant])


def test_nothing_waits_on_what_it_does_not_need(dev_stack: RecordedStack, prod_stack: RecordedStack) -> None:
    for stack in (dev_stack, prod_stack):
        identity, vault, key = stack.one(IDENTITY), stack.one(VAULT), stack.one(KEY)
        group = stack.one(ENTRA_GROUP)
        assert not depends_on(stack, identity, vault)
        assert not depends_on(stack, vault, identity)
        assert not depends_on(stack, key, identity)
        assert group.dependencies == ()
    # An access policy lives on the vault and needs nothing of the key.
    assert not depends_on(dev_stack, dev_stack.one(ACCESS_POLICY), dev_stack.one(KEY))
    # A role assignment at the key's scope needs the key to exist.
    assert depends_on(prod_stack, prod_stack.one(ROLE_ASSIGNMENT), prod_stack.one(KEY))


AFTER_THE_CLUSTER = {"monitoring-cluster-diagnostics", "monitoring-container-insights-association"}


def test_critical_path_is_only_as_long_as_the_real_dependencies(
    dev_stack: RecordedStack, prod_stack: RecordedStack
) -> None:
    # Access policy on the vault: resource group -> (vault | identity) -> grant -> wait -> cluster -> its
    # diagnostic setting.
    dev_path = longest_chain(dev_stack)
    assert len(dev_path) == 6
    assert dev_path[0] == "rg" and dev_path[-3:-1] == ["kms-grant-propagation", "aks-cluster"]
    # Two extension resources on the cluster tie for last: the cluster's diagnostic setting and the Container
    # Insights association.
    assert dev_path[-1] in AFTER_THE_CLUSTER
    # RBAC at the key's scope needs the key first: resource group -> vault -> key -> grant -> wait -> cluster.
    prod_path = longest_chain(prod_stack)
    assert prod_path[:-1] == ["rg", "kms-vault", "kms-key", "kms-crypto-user", "kms-grant-propagation", "aks-cluster"]
    assert prod_path[-1] in AFTER_THE_CLUSTER


# ------------------------------------------------------------------------------------------- protection


def test_prod_protects_key_vault_and_identity(prod_stack: RecordedStack) -> None:
    for token in (KEY, VAULT, IDENTITY):
        assert prod_stack.one(token).protect is True, token


def test_dev_lifts_protection_by_explicit_switch_and_warns(dev_stack: RecordedStack) -> None:
    for token in (KEY, VAULT, IDENTITY):
        assert dev_stack.one(token).protect is False, token
    assert any("protectKmsResources is false" in w for w in dev_stack.warnings)


def test_protection_is_the_default_when_the_switch_is_absent() -> None:
    recorded = run_stack("dev", config={"kms-aks:protectKmsResources": None})
    assert recorded.error is None
    for token in (KEY, VAULT, IDENTITY):
        assert recorded.one(token).protect is True, token


def test_key_version_follows_config_only(dev_stack: RecordedStack) -> None:
    # Unpinned: the cluster keeps the version it was created with; a refresh cannot move it.
    assert dev_stack.one(CLUSTER).ignore_changes == ("securityProfile.azureKeyVaultKms.keyId",)
    version = "fedcba9876543210fedcba9876543210"
    pinned = run_stack(
        "dev", config={"kms-aks:kmsKey": {"name": "aks-kms-dev", "type": "RSA", "size": 2048, "version": version}}
    )
    cluster = pinned.one(CLUSTER)
    assert cluster.ignore_changes == ()
    key_uri = pinned.one(KEY).outputs["keyUri"]
    assert cluster.inputs["securityProfile"]["azureKeyVaultKms"]["keyId"] == f"{key_uri}/{version}"
    assert pinned.one(KEY).urn in cluster.property_dependencies["securityProfile"]


# ------------------------------------------------------------------------------------------- other modes


def _bring_your_own_key(stack: str, permission_model: str) -> RecordedStack:
    byok = {"keyId": BYOK_KEY_ID, "keyVaultResourceId": BYOK_VAULT_ID, "permissionModel": permission_model}
    return run_stack(stack, config={"kms-aks:keyVault": None, "kms-aks:kmsKey": None, "kms-aks:existingKey": byok})


def test_bring_your_own_key_creates_no_vault_or_key_and_grants_on_that_key() -> None:
    recorded = _bring_your_own_key("prod", "rbac")
    assert recorded.error is None
    assert recorded.by_type(VAULT) == [] and recorded.by_type(KEY) == []
    grant = recorded.one(ROLE_ASSIGNMENT)
    assert grant.inputs["scope"] == f"{BYOK_VAULT_ID}/keys/aks-etcd"
    cluster = recorded.one(CLUSTER)
    assert cluster.inputs["securityProfile"]["azureKeyVaultKms"]["keyId"] == BYOK_KEY_ID
    assert waits_for_propagation(recorded, cluster, [grant])
    assert recorded.outputs["keyVaultResourceId"] == BYOK_VAULT_ID
    assert recorded.outputs["keyVaultUri"] == "https://kv-team-keys.vault.azure.net/"


def test_bring_your_own_key_in_access_policy_mode_targets_its_vault() -> None:
    recorded = _bring_your_own_key("dev", "accessPolicy")
    assert recorded.error is None
    policy = recorded.one(ACCESS_POLICY).inputs
    assert policy["vaultName"] == "kv-team-keys"
    assert policy["resourceGroupName"] == "rg-keys"


def test_rbac_mode_on_dev_switches_the_grant_and_the_vault() -> None:
    recorded = run_stack(
        "dev",
        config={"kms-aks:keyVault": {"name": "kv-kmsaks-dev-01", "permissionModel": "rbac"}},
    )
    assert recorded.error is None
    assert recorded.one(VAULT).inputs["properties"]["enableRbacAuthorization"] is True
    assert recorded.one(ROLE_ASSIGNMENT).inputs["scope"] == recorded.one(KEY).id
    assert recorded.by_type(ACCESS_POLICY) == []


def test_hsm_mode_on_dev_with_a_premium_vault() -> None:
    recorded = run_stack(
        "dev",
        config={
            "kms-aks:keyVault": {"name": "kv-kmsaks-dev-01", "sku": "premium", "permissionModel": "accessPolicy"},
            "kms-aks:kmsKey": {"type": "RSA-HSM", "size": 4096},
        },
    )
    assert recorded.error is None
    assert recorded.one(VAULT).inputs["properties"]["sku"]["name"] == "premium"
    assert recorded.one(KEY).inputs["properties"]["kty"] == "RSA-HSM"
    assert recorded.one(KEY).inputs["properties"]["keySize"] == 4096


def test_admin_groups_given_by_object_id_create_no_group() -> None:
    admins = ["3f2504e0-4f89-41d3-9a0c-0305e82c3301"]
    recorded = run_stack(
        "dev",
        config={
            "kms-aks:cluster": {
                "name": "aks-kms-dev",
                "kubernetesVersion": "1.33",
                "adminGroupObjectIds": admins,
            }
        },
    )
    assert recorded.error is None
    assert recorded.by_type(ENTRA_GROUP) == []
    assert recorded.one(CLUSTER).inputs["aadProfile"]["adminGroupObjectIDs"] == admins


def test_exports_what_an_operator_needs(prod_stack: RecordedStack) -> None:
    cluster, key = prod_stack.one(CLUSTER), prod_stack.one(KEY)
    identity, vault = prod_stack.one(IDENTITY), prod_stack.one(VAULT)
    assert prod_stack.outputs["clusterName"] == "aks-kms-prod"
    assert prod_stack.outputs["clusterResourceId"] == cluster.id
    assert prod_stack.outputs["kmsKeyId"] == key.outputs["keyUriWithVersion"]
    assert prod_stack.outputs["keyVaultResourceId"] == vault.id
    assert prod_stack.outputs["keyVaultUri"] == "https://kv-kmsaks-prod-01.vault.azure.net/"
    assert prod_stack.outputs["kmsIdentityResourceId"] == identity.id
    assert prod_stack.outputs["kmsIdentityPrincipalId"] == identity.outputs["principalId"]
    assert prod_stack.outputs["kmsIdentityClientId"] == identity.outputs["clientId"]
    assert prod_stack.secret_outputs == frozenset()


def test_every_cloud_resource_is_registered_once(dev_stack: RecordedStack) -> None:
    urns = [r.urn for r in cloud_resources(dev_stack)]
    # 7 for the cluster and its key, 1 propagation wait, 10 for monitoring (workspace, action group, 2 diagnostic
    # settings, system topic, 2 key alerts, the KMS access alert, Container Insights' rule and its association).
    assert len(urns) == len(set(urns)) == 18
