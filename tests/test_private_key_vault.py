"""Private key vault mode: the config that turns it on, the graph the program records for it, and the policy pack
that blocks it by default and, once a team allows it, insists on everything current AKS needs."""

from __future__ import annotations

import dataclasses
from pathlib import Path
from typing import Any

import pytest

from components.kms_identity import KEY_VAULT_CONTRIBUTOR_ROLE, KEY_VAULT_CRYPTO_USER_ROLE, NETWORK_CONTRIBUTOR_ROLE
from kms_aks_tools.offline.mock_engine import SUBSCRIPTION_ID
from kms_aks_tools.offline.policy_pack import PolicyClient, load_policy_config
from kms_aks_tools.offline.recording import UNKNOWN, RecordedResource, RecordedStack
from tests.conftest import KmsAks
from tests.engine import run_stack
from tests.graph import (
    ACCESS_POLICY,
    CLUSTER,
    IDENTITY,
    KEY,
    ROLE_ASSIGNMENT,
    SLEEP,
    VAULT,
    depends_on,
    longest_chain,
    waits_for_propagation,
)

STACKS = Path(__file__).parent / "stacks"
POLICY_CONFIGS = Path(__file__).parent / "policy_configs"
PRIVATE = str(STACKS / "Pulumi.private.yaml")
PRIVATE_BYOK = str(STACKS / "Pulumi.private-byok.yaml")
VNET = "azure-native:network:VirtualNetwork"
SUBNET = "azure-native:network:Subnet"
NETWORK_COMPONENT = "kms-aks:index:KmsNetwork"
NO_PRIVATE_LINK = "aks-kms-no-private-link"

BYOK_KEY_ID = "https://kv-team-keys.vault.azure.net/keys/aks-etcd/0123456789abcdef0123456789abcdef"
BYOK_VAULT_ID = (
    "/subscriptions/11111111-2222-3333-4444-555555555555/resourceGroups/rg-keys/providers/Microsoft.KeyVault"
    "/vaults/kv-team-keys"
)
NETWORK = {
    "vnetAddressSpace": "10.20.0.0/22",
    "apiServerSubnetPrefix": "10.20.0.0/28",
    "nodeSubnetPrefix": "10.20.1.0/24",
}
DEV_CLUSTER = {"name": "aks-kms-dev", "kubernetesVersion": "1.33", "systemNodePool": {"count": 2}}


def _clean(stack: str, *, preview: bool = False, config: dict[str, Any] | None = None) -> RecordedStack:
    recorded = run_stack(stack, preview=preview, config=config)
    assert recorded.error is None, recorded.error
    return recorded


@pytest.fixture(scope="module")
def private_stack() -> RecordedStack:
    return _clean(PRIVATE)


@pytest.fixture(scope="module")
def private_preview() -> RecordedStack:
    return _clean(PRIVATE, preview=True)


@pytest.fixture(scope="module")
def private_byok() -> RecordedStack:
    return _clean(PRIVATE_BYOK)


def _role(grant: RecordedResource) -> str:
    return grant.inputs["roleDefinitionId"].rsplit("/", 1)[-1]


def _grants(stack: RecordedStack) -> dict[str, RecordedResource]:
    return {r.name: r for r in stack.by_type(ROLE_ASSIGNMENT)}


def _subnet(stack: RecordedStack, name: str) -> RecordedResource:
    return next(r for r in stack.by_type(SUBNET) if r.inputs["subnetName"] == name)


# ---------------------------------------------------------------------------------------------- config


def _refused(overrides: dict[str, Any]) -> str:
    """Runs dev with `overrides`; asserts the program stopped before registering anything."""
    recorded = run_stack("dev", config=overrides)
    assert recorded.error is not None, "the program accepted a config it should refuse"
    assert [r.type for r in recorded.resources if r.type != "pulumi:pulumi:Stack"] == []
    assert "Traceback" not in recorded.error
    return recorded.error


def test_private_access_without_a_network_is_refused_naming_both_keys() -> None:
    error = _refused({"kms-aks:keyVaultNetworkAccess": "Private"})
    assert "kms-aks:network: required when kms-aks:keyVaultNetworkAccess is Private" in error
    assert "network.vnetAddressSpace, network.apiServerSubnetPrefix and network.nodeSubnetPrefix" in error


def test_a_network_without_private_access_is_refused() -> None:
    error = _refused({"kms-aks:network": NETWORK})
    assert "kms-aks:network: set, but kms-aks:keyVaultNetworkAccess is 'Public'" in error
    assert "set kms-aks:keyVaultNetworkAccess: Private or remove kms-aks:network" in error


def test_a_network_missing_a_subnet_is_refused_naming_it() -> None:
    network = {k: v for k, v in NETWORK.items() if k != "apiServerSubnetPrefix"}
    error = _refused({"kms-aks:keyVaultNetworkAccess": "Private", "kms-aks:network": network})
    assert "kms-aks:network.apiServerSubnetPrefix: required but not set" in error


@pytest.mark.parametrize(
    ("network", "expected"),
    [
        (
            {**NETWORK, "nodeSubnetPrefix": "10.21.0.0/24"},
            "nodeSubnetPrefix 10.21.0.0/24 is not inside vnetAddressSpace",
        ),
        ({**NETWORK, "nodeSubnetPrefix": "10.20.0.0/24"}, "apiServerSubnetPrefix 10.20.0.0/28 and nodeSubnetPrefix"),
        (
            {**NETWORK, "apiServerSubnetPrefix": "10.20.0.0/29"},
            "apiServerSubnetPrefix 10.20.0.0/29 is too small: API server VNet integration needs at least a /28",
        ),
        (
            {
                "vnetAddressSpace": "10.0.0.0/8",
                "apiServerSubnetPrefix": "10.1.0.0/28",
                "nodeSubnetPrefix": "10.1.1.0/24",
            },
            "overlaps the cluster's pod CIDR 10.244.0.0/16 and service CIDR 10.0.0.0/16",
        ),
        ({**NETWORK, "vnetAddressSpace": "10.20.0.1/22"}, "network.vnetAddressSpace: must be an IPv4 CIDR range"),
    ],
)
def test_a_network_that_cannot_work_is_refused(network: dict[str, str], expected: str) -> None:
    error = _refused({"kms-aks:keyVaultNetworkAccess": "Private", "kms-aks:network": network})
    assert expected in error


@pytest.mark.parametrize(("count", "refused"), [(2, False), (3, True)])
def test_node_subnet_must_hold_the_nodes_and_the_upgrade_surge(count: int, refused: bool) -> None:
    # A /29 has 3 usable addresses (Azure keeps 5): 2 nodes + 1 surge fit, 3 nodes + 1 surge do not.
    config = {
        "kms-aks:keyVaultNetworkAccess": "Private",
        "kms-aks:network": {**NETWORK, "nodeSubnetPrefix": "10.20.1.0/29"},
        "kms-aks:cluster": {**DEV_CLUSTER, "systemNodePool": {"count": count}},
    }
    if not refused:
        assert run_stack("dev", config=config).error is None
        return
    assert (
        "kms-aks:network.nodeSubnetPrefix: 10.20.1.0/29 has 3 usable addresses, but "
        "kms-aks:cluster.systemNodePool.count 3 needs 4 (the nodes plus the 33% upgrade surge)"
    ) in _refused(config)


def test_network_access_takes_only_what_aks_takes() -> None:
    error = _refused({"kms-aks:keyVaultNetworkAccess": "private", "kms-aks:network": NETWORK})
    assert "kms-aks:keyVaultNetworkAccess: Input should be 'Public' or 'Private' (got 'private')" in error
    # The pairing rule is not stacked on top of a value that is wrong on its own.
    assert "kms-aks:network: set, but" not in error


def test_every_problem_is_reported_at_once() -> None:
    error = _refused(
        {
            "kms-aks:keyVaultNetworkAccess": "Private",
            "kms-aks:network": {**NETWORK, "apiServerSubnetPrefix": "banana"},
            "kms-aks:cluster": {**DEV_CLUSTER, "systemNodePool": {"count": 0}},
        }
    )
    assert "kms-aks:network.apiServerSubnetPrefix: must be an IPv4 CIDR range" in error
    assert "kms-aks:cluster.systemNodePool.count" in error


# ---------------------------------------------------------------------------------------------- graph


def test_network_component_holds_the_vnet_and_both_subnets(private_stack: RecordedStack) -> None:
    component = private_stack.one(NETWORK_COMPONENT)
    assert component.parent == private_stack.one("pulumi:pulumi:Stack").urn
    vnet = private_stack.one(VNET)
    api, nodes = _subnet(private_stack, "snet-apiserver"), _subnet(private_stack, "snet-nodes")
    for resource in (vnet, api, nodes):
        assert resource.parent == component.urn
    assert vnet.inputs["virtualNetworkName"] == "vnet-aks-kms-priv"
    assert vnet.inputs["addressSpace"] == {"addressPrefixes": ["10.20.0.0/22"]}
    # Subnets are their own resources; inline subnets would fight them on every VNet update.
    assert "subnets" not in vnet.inputs
    assert api.inputs["addressPrefix"] == "10.20.0.0/28"
    assert api.inputs["delegations"] == [
        {"name": "aks-apiserver", "serviceName": "Microsoft.ContainerService/managedClusters"}
    ]
    assert nodes.inputs["addressPrefix"] == "10.20.1.0/24"
    assert "delegations" not in nodes.inputs
    for subnet in (api, nodes):
        assert subnet.inputs["virtualNetworkName"] == vnet.outputs["name"]
        assert vnet.urn in subnet.property_dependencies["virtualNetworkName"]
    # One subnet write per VNet at a time.
    assert api.urn in nodes.dependencies


def test_mock_network_outputs_are_shaped_like_azure_native(private_stack: RecordedStack) -> None:
    vnet = private_stack.one(VNET)
    api = _subnet(private_stack, "snet-apiserver")
    vnet_id = (
        f"/subscriptions/{SUBSCRIPTION_ID}/resourceGroups/rg-kms-aks-private/providers/Microsoft.Network"
        "/virtualNetworks/vnet-aks-kms-priv"
    )
    assert vnet.id == vnet_id
    assert vnet.outputs["provisioningState"] == "Succeeded"
    assert vnet.outputs["addressSpace"] == {"addressPrefixes": ["10.20.0.0/22"]}
    assert api.id == f"{vnet_id}/subnets/snet-apiserver"
    assert api.outputs["name"] == "snet-apiserver"
    assert api.outputs["provisioningState"] == "Succeeded"
    [delegation] = api.outputs["delegations"]
    assert delegation["serviceName"] == "Microsoft.ContainerService/managedClusters"
    assert delegation["id"] == f"{api.id}/delegations/aks-apiserver"
    assert "Microsoft.Network/virtualNetworks/subnets/join/action" in delegation["actions"]


def test_vault_is_closed_to_public_traffic(private_stack: RecordedStack) -> None:
    props = private_stack.one(VAULT).inputs["properties"]
    assert props["publicNetworkAccess"] == "Disabled"
    assert props["networkAcls"] == {"bypass": "AzureServices", "defaultAction": "Deny"}
    assert props["enablePurgeProtection"] is True


def test_cluster_uses_the_private_vault_from_its_vnet(private_stack: RecordedStack) -> None:
    cluster = private_stack.one(CLUSTER)
    vault, key = private_stack.one(VAULT), private_stack.one(KEY)
    api, nodes = _subnet(private_stack, "snet-apiserver"), _subnet(private_stack, "snet-nodes")
    assert cluster.inputs["securityProfile"]["azureKeyVaultKms"] == {
        "enabled": True,
        "keyId": key.outputs["keyUriWithVersion"],
        "keyVaultNetworkAccess": "Private",
        "keyVaultResourceId": vault.id,
    }
    access = cluster.inputs["apiServerAccessProfile"]
    assert access["enableVnetIntegration"] is True
    assert access["subnetId"] == api.id
    assert cluster.inputs["agentPoolProfiles"][0]["vnetSubnetID"] == nodes.id
    assert {vault.urn, key.urn} <= set(cluster.property_dependencies["securityProfile"])
    assert api.urn in cluster.property_dependencies["apiServerAccessProfile"]
    assert nodes.urn in cluster.property_dependencies["agentPoolProfiles"]


def test_identity_gets_what_aks_does_in_its_name(private_stack: RecordedStack) -> None:
    identity = private_stack.one(IDENTITY)
    component = private_stack.one("kms-aks:index:KmsIdentity")
    vault, key = private_stack.one(VAULT), private_stack.one(KEY)
    api, nodes = _subnet(private_stack, "snet-apiserver"), _subnet(private_stack, "snet-nodes")
    grants = _grants(private_stack)
    expected = {
        "kms-crypto-user": (KEY_VAULT_CRYPTO_USER_ROLE, key.id),
        "kms-kv-contributor": (KEY_VAULT_CONTRIBUTOR_ROLE, vault.id),
        "kms-network-contributor-apiserver": (NETWORK_CONTRIBUTOR_ROLE, api.id),
        "kms-network-contributor-nodes": (NETWORK_CONTRIBUTOR_ROLE, nodes.id),
    }
    assert {name: (_role(g), g.inputs["scope"]) for name, g in grants.items()} == expected
    for grant in grants.values():
        assert grant.inputs["roleDefinitionId"].startswith(f"/subscriptions/{SUBSCRIPTION_ID}/providers/")
        assert grant.inputs["principalId"] == identity.outputs["principalId"]
        assert grant.inputs["principalType"] == "ServicePrincipal"
        assert grant.parent == component.urn


def test_cluster_waits_explicitly_for_every_grant(private_stack: RecordedStack) -> None:
    cluster = private_stack.one(CLUSTER)
    component = private_stack.one("kms-aks:index:KmsAksCluster")
    grant_urns = {g.urn for g in private_stack.by_type(ROLE_ASSIGNMENT)}
    assert len(grant_urns) == 4
    grants = private_stack.by_type(ROLE_ASSIGNMENT)
    assert waits_for_propagation(private_stack, cluster, grants)
    assert waits_for_propagation(private_stack, component, grants)


def test_network_waits_for_nothing_of_the_key_or_the_identity(private_stack: RecordedStack) -> None:
    vnet, vault, identity = private_stack.one(VNET), private_stack.one(VAULT), private_stack.one(IDENTITY)
    for subnet in private_stack.by_type(SUBNET):
        assert not depends_on(private_stack, subnet, vault)
        assert not depends_on(private_stack, subnet, identity)
    assert not depends_on(private_stack, vault, vnet)
    assert not depends_on(private_stack, identity, vnet)
    # The longest chain is the network's: its two subnets are written one after the other.
    path = longest_chain(private_stack)
    assert path[:-1] == [
        "rg",
        "kms-vnet",
        "kms-apiserver-subnet",
        "kms-node-subnet",
        "kms-network-contributor-nodes",
        "kms-grant-propagation",
        "aks-cluster",
    ]
    # Two extension resources on the cluster tie for last place.
    assert path[-1] in {"monitoring-cluster-diagnostics", "monitoring-container-insights-association"}


def test_private_mode_exports_the_network(private_stack: RecordedStack) -> None:
    assert private_stack.outputs["vnetId"] == private_stack.one(VNET).id
    assert private_stack.outputs["apiServerSubnetId"] == _subnet(private_stack, "snet-apiserver").id
    assert private_stack.outputs["nodeSubnetId"] == _subnet(private_stack, "snet-nodes").id


def test_preview_keeps_the_vault_id_tied_to_the_vault(private_preview: RecordedStack) -> None:
    cluster = private_preview.one(CLUSTER)
    kms = cluster.inputs["securityProfile"]["azureKeyVaultKms"]
    assert kms["keyVaultNetworkAccess"] == "Private"
    assert kms["keyVaultResourceId"] == UNKNOWN
    assert private_preview.one(VAULT).urn in cluster.property_dependencies["securityProfile"]
    assert cluster.inputs["apiServerAccessProfile"]["enableVnetIntegration"] is True


def test_bring_your_own_private_key_grants_on_that_vault(private_byok: RecordedStack) -> None:
    assert private_byok.by_type(VAULT) == [] and private_byok.by_type(KEY) == []
    kms = private_byok.one(CLUSTER).inputs["securityProfile"]["azureKeyVaultKms"]
    assert kms == {
        "enabled": True,
        "keyId": BYOK_KEY_ID,
        "keyVaultNetworkAccess": "Private",
        "keyVaultResourceId": BYOK_VAULT_ID,
    }
    grants = _grants(private_byok)
    assert grants["kms-kv-contributor"].inputs["scope"] == BYOK_VAULT_ID
    assert grants["kms-crypto-user"].inputs["scope"] == f"{BYOK_VAULT_ID}/keys/aks-etcd"
    assert waits_for_propagation(private_byok, private_byok.one(CLUSTER), list(grants.values()))
    # The stack cannot close a vault it does not own: it says so.
    assert any("this stack does not manage that vault" in w for w in private_byok.warnings)


def test_access_policy_vault_in_private_mode_keeps_its_access_policy_and_warns() -> None:
    recorded = _clean("dev", config={"kms-aks:keyVaultNetworkAccess": "Private", "kms-aks:network": NETWORK})
    assert recorded.one(ACCESS_POLICY).inputs["policy"]["permissions"] == {"keys": ["encrypt", "decrypt"]}
    assert {_role(g) for g in recorded.by_type(ROLE_ASSIGNMENT)} == {
        KEY_VAULT_CONTRIBUTOR_ROLE,
        NETWORK_CONTRIBUTOR_ROLE,
    }
    assert any("Prefer permissionModel: rbac" in w for w in recorded.warnings)


@pytest.mark.parametrize("stack_name", ["dev", "prod"])
def test_default_stacks_stay_public_and_create_no_network(stack_name: str, request: pytest.FixtureRequest) -> None:
    stack: RecordedStack = request.getfixturevalue(f"{stack_name}_stack")
    assert stack.by_type(VNET) == [] and stack.by_type(SUBNET) == [] and stack.by_type(NETWORK_COMPONENT) == []
    cluster = stack.one(CLUSTER).inputs
    assert "enableVnetIntegration" not in cluster.get("apiServerAccessProfile", {})
    assert "vnetSubnetID" not in cluster["agentPoolProfiles"][0]
    assert stack.one(VAULT).inputs["properties"]["publicNetworkAccess"] == "Enabled"
    assert "vnetId" not in stack.outputs


# ---------------------------------------------------------------------------------------------- policy pack


@pytest.fixture
def client(pack_client: PolicyClient) -> PolicyClient:
    return pack_client  # the session's pack (tests/conftest.py)


def _allow() -> dict[str, Any]:
    return load_policy_config(POLICY_CONFIGS / "allow-private.json")


def _check(client: PolicyClient, resources: list[RecordedResource], config: dict[str, Any], **options: Any):
    client.configure(config)
    return client.check(resources, **options)


def test_default_policy_config_blocks_the_private_vault(client: PolicyClient, private_stack: RecordedStack) -> None:
    result = _check(client, private_stack.resources, {})
    assert {v.policy_name for v in result.mandatory} == {NO_PRIVATE_LINK}
    blocked = {v.urn for v in result.by_policy(NO_PRIVATE_LINK)}
    assert blocked == {private_stack.one(CLUSTER).urn, private_stack.one(VAULT).urn}


@pytest.mark.parametrize("properties", ["inputs", "outputs", "inputs+outputs"])
def test_allowed_private_vault_passes_when_everything_holds(
    client: PolicyClient, private_stack: RecordedStack, properties: str
) -> None:
    result = _check(client, private_stack.resources, _allow(), properties=properties)
    assert result.violations == []


def test_allowed_private_vault_preview_is_decided_and_passes(
    client: PolicyClient, private_preview: RecordedStack
) -> None:
    result = _check(client, private_preview.resources, _allow())
    assert result.mandatory == [] and result.undecided == []


def test_allowed_private_byok_passes_with_its_key_pinned(client: PolicyClient, private_byok: RecordedStack) -> None:
    config = load_policy_config(POLICY_CONFIGS / "allow-private-byok.json")
    assert _check(client, private_byok.resources, config).violations == []


def _without_grant(resources: list[RecordedResource], name: str) -> list[RecordedResource]:
    urn = next(r.urn for r in resources if r.name == name)
    kept = [r for r in resources if r.urn != urn]
    return [dataclasses.replace(r, dependencies=tuple(d for d in r.dependencies if d != urn)) for r in kept]


def _cluster_edited(resources: list[RecordedResource], change) -> list[RecordedResource]:
    result = []
    for resource in resources:
        if resource.type == CLUSTER:
            inputs, outputs = change(dict(resource.inputs)), change(dict(resource.outputs))
            resource = dataclasses.replace(resource, inputs=inputs, outputs=outputs)
        result.append(resource)
    return result


def _vnet_integration_off(props: dict[str, Any]) -> dict[str, Any]:
    return {**props, "apiServerAccessProfile": {**props["apiServerAccessProfile"], "enableVnetIntegration": False}}


def _no_vault_resource_id(props: dict[str, Any]) -> dict[str, Any]:
    kms = {k: v for k, v in props["securityProfile"]["azureKeyVaultKms"].items() if k != "keyVaultResourceId"}
    return {**props, "securityProfile": {**props["securityProfile"], "azureKeyVaultKms": kms}}


def _contributor_on_the_key(resources: list[RecordedResource]) -> list[RecordedResource]:
    key_id = next(r.id for r in resources if r.type == KEY)

    def rescope(resource: RecordedResource) -> RecordedResource:
        if resource.name != "kms-kv-contributor":
            return resource
        return dataclasses.replace(
            resource,
            inputs={**resource.inputs, "scope": key_id},
            outputs={**resource.outputs, "scope": key_id},
        )

    return [rescope(r) for r in resources]


def _cluster_not_waiting_for(resources: list[RecordedResource], name: str) -> list[RecordedResource]:
    # Neither the cluster nor the propagation wait before it waits for this grant.
    urn = next(r.urn for r in resources if r.name == name)
    return [
        dataclasses.replace(r, dependencies=tuple(d for d in r.dependencies if d != urn))
        if r.type in (CLUSTER, SLEEP)
        else r
        for r in resources
    ]


@pytest.mark.parametrize(
    ("mutation", "expected"),
    [
        (lambda r: _without_grant(r, "kms-kv-contributor"), 'needs "Key Vault Contributor"'),
        (lambda r: _cluster_not_waiting_for(r, "kms-kv-contributor"), "AKS creates the private endpoint while"),
        (_contributor_on_the_key, 'needs "Key Vault Contributor"'),
        (lambda r: _cluster_edited(r, _vnet_integration_off), "needs API server VNet integration"),
        (lambda r: _cluster_edited(r, _no_vault_resource_id), "keyVaultResourceId is not set"),
    ],
    ids=[
        "no Key Vault Contributor",
        "Key Vault Contributor not waited for",
        "Key Vault Contributor on the key only",
        "VNet integration off",
        "no vault id",
    ],
)
def test_allowed_private_vault_missing_one_requirement_is_still_blocked(
    client: PolicyClient, private_stack: RecordedStack, mutation, expected: str
) -> None:
    resources = mutation(list(private_stack.resources))
    result = _check(client, resources, _allow())
    violations = result.by_policy(NO_PRIVATE_LINK)
    assert violations, "a private vault missing a requirement passed"
    assert all(v.mandatory for v in violations)
    assert any(expected in v.detail for v in violations), [v.detail for v in violations]
    assert {v.urn for v in violations} == {private_stack.one(CLUSTER).urn}


# ---------------------------------------------------------------------------------------------- kms-aks plan


def test_kms_aks_plan_blocks_a_private_stack_under_the_default_policy_config(kms_aks: KmsAks) -> None:
    result = kms_aks("plan", "--stack", PRIVATE)
    assert result.returncode == 1, result.stdout + result.stderr
    assert f"{NO_PRIVATE_LINK} on aks-cluster" in result.stdout
    assert f"{NO_PRIVATE_LINK} on kms-vault" in result.stdout
    assert "this stack would be blocked" in result.stdout


def test_kms_aks_plan_passes_a_private_stack_the_policy_config_allows(kms_aks: KmsAks) -> None:
    result = kms_aks("plan", "--stack", PRIVATE, "--policy-config", str(POLICY_CONFIGS / "allow-private.json"))
    assert result.returncode == 0, result.stdout + result.stderr
    assert "network access: Private" in result.stdout
    assert "API server VNet integration: yes" in result.stdout
    assert "role: Key Vault Contributor" in result.stdout
    assert "kms kms-aks:index:KmsNetwork" in result.stdout
    assert "policy pack: no violations" in result.stdout


def test_kms_aks_plan_refuses_a_half_configured_private_stack_naming_the_keys(kms_aks: KmsAks) -> None:
    result = kms_aks("plan", "--stack", str(STACKS / "Pulumi.private-half.yaml"))
    assert result.returncode == 2
    assert "kms-aks:network: required when kms-aks:keyVaultNetworkAccess is Private" in result.stdout
    assert "Traceback" not in result.stdout + result.stderr
    assert "stack private-half (preview)" not in result.stdout
