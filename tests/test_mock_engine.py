"""The shared mock layer answers like azure-native, so wiring bugs show up here and not in Azure."""

from __future__ import annotations

import re

import pytest

from kms_aks_tools.offline.mock_engine import SUBSCRIPTION_ID, TENANT_ID, run_stack
from kms_aks_tools.offline.recording import UNKNOWN, RecordedStack
from kms_aks_tools.project.stack_file import stack_names
from tests.graph import CLUSTER, IDENTITY, KEY, RESOURCE_GROUP, VAULT

ARM_ID = re.compile(rf"^/subscriptions/{SUBSCRIPTION_ID}/resourceGroups/[^/]+(/providers/Microsoft\.[A-Za-z]+/.+)?$")
GUID = re.compile(r"^[0-9a-f]{8}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{12}$")


def test_outputs_are_shaped_like_azure_native(prod_stack: RecordedStack) -> None:
    rg = prod_stack.one(RESOURCE_GROUP)
    assert rg.id == f"/subscriptions/{SUBSCRIPTION_ID}/resourceGroups/rg-kms-aks-prod"
    assert rg.outputs["name"] == "rg-kms-aks-prod"

    vault = prod_stack.one(VAULT)
    assert vault.id.endswith("/providers/Microsoft.KeyVault/vaults/kv-kmsaks-prod-01")
    assert vault.outputs["properties"]["vaultUri"] == "https://kv-kmsaks-prod-01.vault.azure.net/"
    assert vault.outputs["properties"]["tenantId"] == TENANT_ID

    key = prod_stack.one(KEY)
    assert key.id == f"{vault.id}/keys/aks-kms-prod"
    assert key.outputs["keyUri"] == "https://kv-kmsaks-prod-01.vault.azure.net/keys/aks-kms-prod"
    assert re.fullmatch(re.escape(key.outputs["keyUri"]) + r"/[0-9a-f]{32}", key.outputs["keyUriWithVersion"])
    # Key outputs are flat where its inputs nest under `properties`.
    assert key.outputs["kty"] == "RSA-HSM" and "properties" not in key.outputs
    assert key.outputs["attributes"]["recoveryLevel"] == "Recoverable"

    identity = prod_stack.one(IDENTITY)
    assert identity.id.endswith("/providers/Microsoft.ManagedIdentity/userAssignedIdentities/id-aks-kms-prod-kms")
    assert GUID.match(identity.outputs["principalId"]) and GUID.match(identity.outputs["clientId"])
    assert identity.outputs["principalId"] != identity.outputs["clientId"]

    cluster = prod_stack.one(CLUSTER)
    assert cluster.id.endswith("/providers/Microsoft.ContainerService/managedClusters/aks-kms-prod")
    assert cluster.outputs["fqdn"].endswith(".hcp.westeurope.azmk8s.io")
    assert isinstance(cluster.outputs["identity"]["userAssignedIdentities"], dict)
    for resource in (rg, vault, key, identity, cluster):
        assert ARM_ID.match(resource.id), resource.id


def test_preview_leaves_computed_values_unknown(prod_preview: RecordedStack) -> None:
    cluster = prod_preview.one(CLUSTER)
    kms = cluster.inputs["securityProfile"]["azureKeyVaultKms"]
    assert kms["keyId"] == UNKNOWN
    assert kms["enabled"] is True
    assert cluster.inputs["identity"]["userAssignedIdentities"] == [UNKNOWN]
    assert all(r.id == "" for r in prod_preview.resources if r.custom)
    # The unknown key id still carries its dependency on the key, as the engine would see it.
    assert prod_preview.one(KEY).urn in cluster.property_dependencies["securityProfile"]
    assert prod_preview.outputs["kmsKeyId"] == UNKNOWN


def test_runs_in_one_process_are_isolated(dev_stack: RecordedStack, prod_stack: RecordedStack) -> None:
    again = run_stack("dev")
    assert sorted(r.urn for r in again.resources) == sorted(r.urn for r in dev_stack.resources)
    assert all("::kms-aks-dev" in r.urn or "kms-aks::" in r.urn for r in again.resources)
    assert not set(r.urn for r in dev_stack.resources) & set(r.urn for r in prod_stack.resources)


@pytest.mark.stacks
def test_stacks_are_discovered_from_their_files() -> None:
    assert {"dev", "prod"} <= set(stack_names())


def test_a_failed_run_leaves_nothing_behind_for_the_next() -> None:
    failed = run_stack("prod", config={"kms-aks:location": None})
    assert failed.error is not None
    after = run_stack("prod", preview=True)
    assert after.error is None
    assert len([r for r in after.resources if r.custom]) == 19


def test_urns_are_shaped_like_the_real_engines(dev_stack: RecordedStack) -> None:
    # The real engine omits the root Stack's type from a top-level resource's URN; children carry their parent's.
    rg = dev_stack.one(RESOURCE_GROUP)
    assert rg.urn == "urn:pulumi:dev::kms-aks::azure-native:resources:ResourceGroup::rg"
    key = dev_stack.one(KEY)
    assert key.urn == "urn:pulumi:dev::kms-aks::kms-aks:index:KeyVaultWithKey$azure-native:keyvault:Key::kms-key"
    assert not any("pulumi:pulumi:Stack$" in resource.urn for resource in dev_stack.resources)
