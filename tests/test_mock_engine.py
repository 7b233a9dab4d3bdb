"""The shared mock layer answers like azure-native, so wiring bugs show up here and not in Azure."""

from __future__ import annotations

import gc
import logging
import re
import subprocess
import sys
import threading
from typing import Any

import pytest

from kms_aks_tools.offline.mock_engine import ROOT, SUBSCRIPTION_ID, TENANT_ID, run_stack
from kms_aks_tools.offline.mocks import AzureNativeMocks
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


def test_a_registration_the_provider_refuses_ends_the_run_with_its_error(
    monkeypatch: pytest.MonkeyPatch, caplog: pytest.LogCaptureFixture
) -> None:
    # The run ends on the refusal, with the provider's message, as the SDK ends a program whose registration failed.
    answer = AzureNativeMocks.new_resource

    def refusing_keys(mocks: AzureNativeMocks, args: Any) -> Any:
        if args.typ == "azure-native:keyvault:Key":
            raise RuntimeError("the vault refused the key")
        return answer(mocks, args)

    monkeypatch.setattr(AzureNativeMocks, "new_resource", refusing_keys)
    finished: list[RecordedStack] = []
    runner = threading.Thread(target=lambda: finished.append(run_stack("prod", preview=True)), daemon=True)
    runner.start()
    runner.join(timeout=60)
    assert finished, "the run did not end within 60 s of the provider's refusal"
    assert finished[0].error == "RuntimeError: the vault refused the key"
    # Reported once: the outputs it failed log nothing when the collector frees them, after the next run (in the
    # suite, during another test).
    finished.clear()
    monkeypatch.undo()
    with caplog.at_level(logging.ERROR, logger="asyncio"):
        assert run_stack("prod", preview=True).error is None
        gc.collect()
    assert not [r for r in caplog.records if r.name == "asyncio"], caplog.text[:2000]


def test_runs_leave_loggings_registry_as_it_was_and_keep_their_own_warnings() -> None:
    # A long-lived process (the suite, a benchmark) makes hundreds of runs: none may leave a logger behind.
    before = dict(logging.root.manager.loggerDict)
    first = run_stack("dev", config={"kms-aks:monitoring": None})
    second = run_stack("prod", config={"kms-aks:monitoring": None})
    assert logging.root.manager.loggerDict == before
    assert any("alertEmails" in warning for warning in first.warnings), first.warnings
    assert first.warnings is not second.warnings and any("alertEmails" in w for w in second.warnings)


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


# ------------------------------------------------------------------ the fake Azure's table, the serializer patch


def test_the_builders_are_one_written_out_table() -> None:
    # Settled on purpose (issue 20): the builders are a table, not registered by importing modules, and the table
    # answers exactly these types: the program's, the fleet project's, and the engine's StackReference read. A type
    # added to or lost from it shows here; any other azure-native type gets the generic ARM answer.
    from kms_aks_tools.offline.fake_azure import BUILDERS, CALLS

    assert sorted(BUILDERS) == [
        "azure-native:authorization:RoleAssignment",
        "azure-native:containerservice:AutoUpgradeProfile",
        "azure-native:containerservice:Fleet",
        "azure-native:containerservice:FleetMember",
        "azure-native:containerservice:FleetUpdateStrategy",
        "azure-native:containerservice:ManagedCluster",
        "azure-native:eventgrid:SystemTopic",
        "azure-native:eventgrid:SystemTopicEventSubscription",
        "azure-native:keyvault:AccessPolicy",
        "azure-native:keyvault:Key",
        "azure-native:keyvault:Vault",
        "azure-native:managedidentity:UserAssignedIdentity",
        "azure-native:monitor:ActionGroup",
        "azure-native:monitor:DataCollectionRule",
        "azure-native:monitor:DataCollectionRuleAssociation",
        "azure-native:monitor:DiagnosticSetting",
        "azure-native:monitor:ScheduledQueryRule",
        "azure-native:network:Subnet",
        "azure-native:network:VirtualNetwork",
        "azure-native:operationalinsights:Workspace",
        "azure-native:resources:ResourceGroup",
        "azure-native:storage:BlobContainer",
        "azure-native:storage:BlobServiceProperties",
        "azure-native:storage:StorageAccount",
        "azuread:index/group:Group",
        "pulumi:pulumi:StackReference",
        "time:index/sleep:Sleep",
    ]
    assert sorted(CALLS) == ["pulumi:pulumi:readStackOutputs"]


def test_the_serializer_patch_is_an_explicit_call() -> None:
    # Settled on purpose (issue 20): importing the mock engine leaves the Pulumi SDK's serializer alone; running a
    # program under it installs the tracing one (whose tags give tests/test_plan_sources.py its per-value sources).
    code = (
        "from pulumi.runtime import rpc\n"
        "sdk = rpc.serialize_property\n"
        "from kms_aks_tools.offline import mock_engine, monitor\n"
        "assert rpc.serialize_property is sdk, 'importing the mock engine patched the SDK'\n"
        "assert not monitor.tracing_unknowns()\n"
        "recorded = mock_engine.run_stack('dev', preview=True)\n"
        "assert recorded.error is None, recorded.error\n"
        "assert monitor.tracing_unknowns()\n"
        "assert any(r.unknown_sources for r in recorded.resources)\n"
        "print('ok')\n"
    )
    result = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=False, cwd=ROOT)
    assert result.returncode == 0 and result.stdout.strip() == "ok", result.stderr[-2000:]
