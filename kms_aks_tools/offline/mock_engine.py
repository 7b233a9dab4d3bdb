"""The program under the Pulumi SDK's mock engine, with outputs shaped like azure-native's.

One mock layer serves the tests, `make plan` and the benchmarks. It runs the real `__main__.py` for a
stack's config, records every registration as the engine sees it (inputs, dependencies, parent, options)
through a `MockMonitor` subclass, and answers like the real providers do: ARM-shaped ids, `name`,
`principalId`/`clientId`, `keyUri`/`keyUriWithVersion`, `properties.vaultUri`, and the map shape of a
cluster's `identity.userAssignedIdentities`. A mock that echoed inputs would hide wiring bugs.

With `preview=True` it answers like `pulumi preview`: a new resource's id and computed outputs are unknown.
"""

from __future__ import annotations

import asyncio
import contextvars
import hashlib
import logging
import runpy
import sys
import uuid
from collections.abc import Callable, Mapping
from pathlib import Path
from typing import Any

import pulumi
from google.protobuf import json_format
from pulumi.runtime import mocks as pulumi_mocks
from pulumi.runtime import rpc as pulumi_rpc
from pulumi.runtime import set_all_config
from pulumi.runtime import settings as pulumi_settings
from pulumi.runtime.stack import wait_for_rpcs

from kms_aks.config import PROJECT
from kms_aks_tools.offline.recording import UNKNOWN, RecordedResource, RecordedStack
from kms_aks_tools.project.stack_file import PACKAGE_ROOT, load_stack_file, secret_paths, to_engine_text
from kms_aks_tools.type_tokens import answered_as, pinned_api_version

ROOT = PACKAGE_ROOT  # the checkout this package was installed from; the command line finds its own (find_project)

# The identity the mock engine deploys as; fixed so that plans and tests are reproducible.
SUBSCRIPTION_ID = "6b1d2f5e-3c4a-4e8b-9a7d-1f2e3d4c5b6a"
TENANT_ID = "72f988bf-86f1-41af-91ab-2d7cd011db47"
DEPLOYER_CLIENT_ID = "0d4a5b6c-7e8f-4a1b-9c2d-3e4f5a6b7c8d"
DEPLOYER_OBJECT_ID = "e1f2a3b4-c5d6-4e7f-8a9b-0c1d2e3f4a5b"

ROOT_STACK_TYPE = "pulumi:pulumi:Stack"

_NAMESPACE = uuid.UUID("5f0c6e1a-2b3d-4c5e-8f9a-0b1c2d3e4f5a")


def _guid(*parts: str) -> str:
    return str(uuid.uuid5(_NAMESPACE, "/".join(parts)))


def _hex(length: int, *parts: str) -> str:
    return hashlib.sha256("/".join(parts).encode()).hexdigest()[:length]


def _rg_id(resource_group: str) -> str:
    return f"/subscriptions/{SUBSCRIPTION_ID}/resourceGroups/{resource_group}"


Builder = Callable[["AzureNativeMocks", pulumi_mocks.MockResourceArgs, dict[str, Any]], tuple[str, dict[str, Any]]]
BUILDERS: dict[str, Builder] = {}
# Invokes answered outside this module (the engine's `pulumi:pulumi:readStackOutputs`: kms_aks_tools.standin.fleet).
CALLS: dict[str, Callable[[AzureNativeMocks, pulumi_mocks.MockCallArgs], Any]] = {}


def provider_outputs(type_token: str) -> Callable[[Builder], Builder]:
    """Registers how the provider answers a create of `type_token`: (ARM id, outputs in camelCase)."""

    def register(builder: Builder) -> Builder:
        BUILDERS[type_token] = builder
        return builder

    return register


def _autoname(args: pulumi_mocks.MockResourceArgs) -> str:
    # azure-native auto-names like the engine: the logical name plus a random suffix.
    return f"{args.name}{_hex(8, args.name)}"


@provider_outputs("azure-native:resources:ResourceGroup")
def _resource_group(_: AzureNativeMocks, args: pulumi_mocks.MockResourceArgs, inputs: dict) -> tuple[str, dict]:
    name = inputs.get("resourceGroupName") or _autoname(args)
    outputs = {
        "name": name,
        "location": inputs["location"],
        "tags": inputs.get("tags", {}),
        "type": "Microsoft.Resources/resourceGroups",
        "properties": {"provisioningState": "Succeeded"},
        "azureApiVersion": "2024-03-01",
    }
    return _rg_id(name), outputs


@provider_outputs("azure-native:keyvault:Vault")
def _vault(_: AzureNativeMocks, args: pulumi_mocks.MockResourceArgs, inputs: dict) -> tuple[str, dict]:
    name = inputs.get("vaultName") or _autoname(args)[:24]
    properties = dict(inputs["properties"])
    properties.update(
        vaultUri=f"https://{name}.vault.azure.net/",
        provisioningState="Succeeded",
        hsmPoolResourceId=None,
        accessPolicies=[],
    )
    outputs = {
        "name": name,
        "location": inputs.get("location"),
        "tags": inputs.get("tags", {}),
        "type": "Microsoft.KeyVault/vaults",
        "properties": properties,
        "azureApiVersion": "2024-11-01",
    }
    return f"{_rg_id(inputs['resourceGroupName'])}/providers/Microsoft.KeyVault/vaults/{name}", outputs


@provider_outputs("azure-native:keyvault:Key")
def _key(mocks: AzureNativeMocks, args: pulumi_mocks.MockResourceArgs, inputs: dict) -> tuple[str, dict]:
    name = inputs.get("keyName") or _autoname(args)
    vault = inputs["vaultName"]
    props = inputs.get("properties", {})
    key_uri = f"https://{vault}.vault.azure.net/keys/{name}"
    version = _hex(32, vault, name, "version-1")
    purge_protected = mocks.vault_purge_protected(vault)
    attributes = {
        "enabled": props.get("attributes", {}).get("enabled", True),
        "exportable": False,
        "created": 1764288000,
        "updated": 1764288000,
        "recoveryLevel": "Recoverable" if purge_protected else "Recoverable+Purgeable",
    }
    if "expires" in props.get("attributes", {}):
        attributes["expires"] = props["attributes"]["expires"]
    # Key outputs are flat (kty, keySize, ...) where the inputs nest them under `properties`.
    outputs = {
        "name": name,
        "keyUri": key_uri,
        "keyUriWithVersion": f"{key_uri}/{version}",
        "kty": props.get("kty"),
        "keySize": props.get("keySize"),
        "keyOps": props.get("keyOps", []),
        "attributes": attributes,
        "rotationPolicy": props.get("rotationPolicy"),
        "location": mocks.vault_location(vault),
        "tags": inputs.get("tags", {}),
        "type": "Microsoft.KeyVault/vaults/keys",
        "azureApiVersion": "2024-11-01",
    }
    vault_id = f"{_rg_id(inputs['resourceGroupName'])}/providers/Microsoft.KeyVault/vaults/{vault}"
    return f"{vault_id}/keys/{name}", outputs


@provider_outputs("azure-native:managedidentity:UserAssignedIdentity")
def _identity(_: AzureNativeMocks, args: pulumi_mocks.MockResourceArgs, inputs: dict) -> tuple[str, dict]:
    name = inputs.get("resourceName") or _autoname(args)
    rg = inputs["resourceGroupName"]
    outputs = {
        "name": name,
        "location": inputs.get("location"),
        "tags": inputs.get("tags", {}),
        "principalId": _guid("principal", rg, name),
        "clientId": _guid("client", rg, name),
        "tenantId": TENANT_ID,
        "type": "Microsoft.ManagedIdentity/userAssignedIdentities",
        "azureApiVersion": "2023-01-31",
    }
    return f"{_rg_id(rg)}/providers/Microsoft.ManagedIdentity/userAssignedIdentities/{name}", outputs


@provider_outputs("azure-native:keyvault:AccessPolicy")
def _access_policy(_: AzureNativeMocks, args: pulumi_mocks.MockResourceArgs, inputs: dict) -> tuple[str, dict]:
    vault_id = f"{_rg_id(inputs['resourceGroupName'])}/providers/Microsoft.KeyVault/vaults/{inputs['vaultName']}"
    outputs = {
        "resourceGroupName": inputs["resourceGroupName"],
        "vaultName": inputs["vaultName"],
        "policy": inputs["policy"],
    }
    return f"{vault_id}/accessPolicy/{inputs['policy']['objectId']}", outputs


@provider_outputs("azure-native:authorization:RoleAssignment")
def _role_assignment(_: AzureNativeMocks, args: pulumi_mocks.MockResourceArgs, inputs: dict) -> tuple[str, dict]:
    name = inputs.get("roleAssignmentName") or _guid("role-assignment", args.name, inputs["scope"])
    outputs = {
        "name": name,
        "principalId": inputs["principalId"],
        "principalType": inputs.get("principalType"),
        "roleDefinitionId": inputs["roleDefinitionId"],
        "scope": inputs["scope"],
        "createdBy": DEPLOYER_OBJECT_ID,
        "type": "Microsoft.Authorization/roleAssignments",
        "azureApiVersion": "2022-04-01",
    }
    return f"{inputs['scope']}/providers/Microsoft.Authorization/roleAssignments/{name}", outputs


@provider_outputs("azure-native:containerservice:ManagedCluster")
def _managed_cluster(mocks: AzureNativeMocks, args: pulumi_mocks.MockResourceArgs, inputs: dict) -> tuple[str, dict]:
    name = inputs.get("resourceName") or _autoname(args)
    rg = inputs["resourceGroupName"]
    location = inputs.get("location", "")
    identity = dict(inputs.get("identity", {}))
    if identity.get("type") == "UserAssigned":
        # A list of ids on input, a map id -> {principalId, clientId} on output.
        identity["userAssignedIdentities"] = {
            identity_id: mocks.identity_principal(identity_id)
            for identity_id in identity.get("userAssignedIdentities", [])
        }
    elif identity.get("type") == "SystemAssigned":
        identity.update(principalId=_guid("cluster-principal", rg, name), tenantId=TENANT_ID)
    node_rg = inputs.get("nodeResourceGroup") or f"MC_{rg}_{name}_{location}"
    kubelet = f"{_rg_id(node_rg)}/providers/Microsoft.ManagedIdentity/userAssignedIdentities/{name}-agentpool"
    outputs = {
        **inputs,
        "name": name,
        "identity": identity,
        "fqdn": f"{inputs.get('dnsPrefix', name)}-{_hex(8, name)}.hcp.{location}.azmk8s.io",
        "azurePortalFQDN": f"{inputs.get('dnsPrefix', name)}-{_hex(8, name)}.portal.hcp.{location}.azmk8s.io",
        "currentKubernetesVersion": inputs.get("kubernetesVersion"),
        "nodeResourceGroup": node_rg,
        "provisioningState": "Succeeded",
        "powerState": {"code": "Running"},
        "maxAgentPools": 100,
        "identityProfile": {
            "kubeletidentity": {
                "resourceId": kubelet,
                "clientId": _guid("kubelet-client", rg, name),
                "objectId": _guid("kubelet-object", rg, name),
            }
        },
        "oidcIssuerProfile": {
            **inputs.get("oidcIssuerProfile", {}),
            "issuerURL": f"https://{location}.oic.prod-aks.azure.com/{TENANT_ID}/{_guid('oidc', name)}/",
        },
        "type": "Microsoft.ContainerService/ManagedClusters",
        "azureApiVersion": "2025-09-01",
    }
    outputs.pop("resourceName", None)
    outputs.pop("resourceGroupName", None)
    return f"{_rg_id(rg)}/providers/Microsoft.ContainerService/managedClusters/{name}", outputs


def _vnet_id(resource_group: str, vnet: str) -> str:
    return f"{_rg_id(resource_group)}/providers/Microsoft.Network/virtualNetworks/{vnet}"


@provider_outputs("azure-native:network:VirtualNetwork")
def _virtual_network(_: AzureNativeMocks, args: pulumi_mocks.MockResourceArgs, inputs: dict) -> tuple[str, dict]:
    name = inputs.get("virtualNetworkName") or _autoname(args)
    rg = inputs["resourceGroupName"]
    outputs = {
        "name": name,
        "location": inputs.get("location"),
        "tags": inputs.get("tags", {}),
        "addressSpace": inputs.get("addressSpace", {"addressPrefixes": []}),
        # Subnets declared as their own resources are not part of the VNet's create response.
        "subnets": inputs.get("subnets", []),
        "enableDdosProtection": inputs.get("enableDdosProtection", False),
        "privateEndpointVNetPolicies": "Disabled",
        "provisioningState": "Succeeded",
        "resourceGuid": _guid("vnet", rg, name),
        "etag": f'W/"{_guid("etag", rg, name)}"',
        "type": "Microsoft.Network/virtualNetworks",
        "azureApiVersion": "2024-05-01",
    }
    return _vnet_id(rg, name), outputs


@provider_outputs("azure-native:network:Subnet")
def _subnet(_: AzureNativeMocks, args: pulumi_mocks.MockResourceArgs, inputs: dict) -> tuple[str, dict]:
    name = inputs.get("subnetName") or _autoname(args)
    rg, vnet = inputs["resourceGroupName"], inputs["virtualNetworkName"]
    subnet_id = f"{_vnet_id(rg, vnet)}/subnets/{name}"
    # The provider echoes each delegation with its id, type, state and the actions the service is granted.
    delegations = [
        {
            **delegation,
            "id": f"{subnet_id}/delegations/{delegation.get('name')}",
            "type": "Microsoft.Network/virtualNetworks/subnets/delegations",
            "actions": ["Microsoft.Network/virtualNetworks/subnets/join/action"],
            "provisioningState": "Succeeded",
        }
        for delegation in inputs.get("delegations", [])
    ]
    outputs = {
        "name": name,
        "addressPrefix": inputs.get("addressPrefix"),
        "delegations": delegations,
        "privateEndpointNetworkPolicies": inputs.get("privateEndpointNetworkPolicies", "Disabled"),
        "privateLinkServiceNetworkPolicies": inputs.get("privateLinkServiceNetworkPolicies", "Enabled"),
        "provisioningState": "Succeeded",
        "etag": f'W/"{_guid("etag", subnet_id)}"',
        "type": "Microsoft.Network/virtualNetworks/subnets",
        "azureApiVersion": "2024-05-01",
    }
    return subnet_id, outputs


# Path parameters of the storage resources' ARM URLs: inputs only, never in the provider's outputs.
_STORAGE_PATH_PARAMETERS = frozenset({"resourceGroupName", "accountName", "blobServicesName", "containerName"})


def _without_path(inputs: dict[str, Any]) -> dict[str, Any]:
    return {k: v for k, v in inputs.items() if k not in _STORAGE_PATH_PARAMETERS}


def _storage_account_id(resource_group: str, account: str) -> str:
    return f"{_rg_id(resource_group)}/providers/Microsoft.Storage/storageAccounts/{account}"


@provider_outputs("azure-native:storage:StorageAccount")
def _storage_account(_: AzureNativeMocks, args: pulumi_mocks.MockResourceArgs, inputs: dict) -> tuple[str, dict]:
    name = inputs.get("accountName") or _autoname(args)[:24].lower()
    outputs = {
        **_without_path(inputs),
        "name": name,
        "provisioningState": "Succeeded",
        "primaryLocation": inputs.get("location"),
        "statusOfPrimary": "available",
        "primaryEndpoints": {
            "blob": f"https://{name}.blob.core.windows.net/",
            "dfs": f"https://{name}.dfs.core.windows.net/",
            "queue": f"https://{name}.queue.core.windows.net/",
            "table": f"https://{name}.table.core.windows.net/",
            "file": f"https://{name}.file.core.windows.net/",
            "web": f"https://{name}.z6.web.core.windows.net/",
        },
        "type": "Microsoft.Storage/storageAccounts",
        "azureApiVersion": "2024-01-01",
    }
    return _storage_account_id(inputs["resourceGroupName"], name), outputs


@provider_outputs("azure-native:storage:BlobServiceProperties")
def _blob_service(_: AzureNativeMocks, args: pulumi_mocks.MockResourceArgs, inputs: dict) -> tuple[str, dict]:
    # The blob service of an account is a singleton named "default".
    account_id = _storage_account_id(inputs["resourceGroupName"], inputs["accountName"])
    outputs = {**_without_path(inputs), "name": "default", "type": "Microsoft.Storage/storageAccounts/blobServices"}
    return f"{account_id}/blobServices/default", outputs


@provider_outputs("azure-native:storage:BlobContainer")
def _blob_container(_: AzureNativeMocks, args: pulumi_mocks.MockResourceArgs, inputs: dict) -> tuple[str, dict]:
    name = inputs.get("containerName") or _autoname(args).lower()
    account_id = _storage_account_id(inputs["resourceGroupName"], inputs["accountName"])
    outputs = {
        **_without_path(inputs),
        "name": name,
        "hasImmutabilityPolicy": False,
        "hasLegalHold": False,
        "deleted": False,
        "leaseState": "Available",
        "leaseStatus": "Unlocked",
        "type": "Microsoft.Storage/storageAccounts/blobServices/containers",
    }
    return f"{account_id}/blobServices/default/containers/{name}", outputs


@provider_outputs("azuread:index/group:Group")
def _entra_group(_: AzureNativeMocks, args: pulumi_mocks.MockResourceArgs, inputs: dict) -> tuple[str, dict]:
    object_id = _guid("group", inputs["displayName"])
    outputs = {**inputs, "objectId": object_id, "mailEnabled": False, "mail": "", "onpremisesSyncEnabled": False}
    return object_id, outputs


# ------------------------------------------------------------------ monitoring, alerts and the propagation wait
# What KmsMonitoring and KmsIdentity's wait consume: ARM ids with the resource providers' casing
# (Microsoft.OperationalInsights, Microsoft.Insights, Microsoft.EventGrid), a workspace's `customerId`, and the
# time provider's Sleep, whose id is its creation time (RFC 3339), as the Terraform time provider sets it.


@provider_outputs("azure-native:operationalinsights:Workspace")
def _workspace(_: AzureNativeMocks, args: pulumi_mocks.MockResourceArgs, inputs: dict) -> tuple[str, dict]:
    name = inputs.get("workspaceName") or _autoname(args)
    rg = inputs["resourceGroupName"]
    outputs = {
        **_without_path(inputs),
        "name": name,
        "customerId": _guid("workspace-customer", rg, name),
        "sku": {**inputs.get("sku", {"name": "PerGB2018"}), "lastSkuUpdate": "2026-11-28T00:00:00Z"},
        "retentionInDays": inputs.get("retentionInDays", 30),
        "provisioningState": "Succeeded",
        "publicNetworkAccessForIngestion": inputs.get("publicNetworkAccessForIngestion", "Enabled"),
        "publicNetworkAccessForQuery": inputs.get("publicNetworkAccessForQuery", "Enabled"),
        "createdDate": "2026-11-28T00:00:00Z",
        "type": "Microsoft.OperationalInsights/workspaces",
        "azureApiVersion": "2023-09-01",
    }
    outputs.pop("workspaceName", None)
    return f"{_rg_id(rg)}/providers/Microsoft.OperationalInsights/workspaces/{name}", outputs


@provider_outputs("azure-native:monitor:ActionGroup")
def _action_group(_: AzureNativeMocks, args: pulumi_mocks.MockResourceArgs, inputs: dict) -> tuple[str, dict]:
    name = inputs.get("actionGroupName") or _autoname(args)
    rg = inputs["resourceGroupName"]
    outputs = {
        **_without_path(inputs),
        "name": name,
        # ARM answers each email receiver with its subscription status.
        "emailReceivers": [{**r, "status": "Enabled"} for r in inputs.get("emailReceivers", [])],
        "webhookReceivers": inputs.get("webhookReceivers", []),
        "type": "Microsoft.Insights/ActionGroups",
        "azureApiVersion": "2024-10-01-preview",
    }
    outputs.pop("actionGroupName", None)
    return f"{_rg_id(rg)}/providers/Microsoft.Insights/actionGroups/{name}", outputs


@provider_outputs("azure-native:monitor:DiagnosticSetting")
def _diagnostic_setting(_: AzureNativeMocks, args: pulumi_mocks.MockResourceArgs, inputs: dict) -> tuple[str, dict]:
    name = inputs.get("name") or _autoname(args)
    # An extension resource: its id hangs under the resource it watches.
    resource_uri = inputs["resourceUri"]
    outputs = {**inputs, "name": name, "type": "Microsoft.Insights/diagnosticSettings"}
    outputs.pop("resourceUri", None)
    outputs["azureApiVersion"] = "2021-05-01-preview"
    return f"{resource_uri}/providers/Microsoft.Insights/diagnosticSettings/{name}", outputs


@provider_outputs("azure-native:eventgrid:SystemTopic")
def _system_topic(_: AzureNativeMocks, args: pulumi_mocks.MockResourceArgs, inputs: dict) -> tuple[str, dict]:
    name = inputs.get("systemTopicName") or _autoname(args)
    rg = inputs["resourceGroupName"]
    outputs = {
        **_without_path(inputs),
        "name": name,
        "metricResourceId": _guid("system-topic-metrics", rg, name),
        "provisioningState": "Succeeded",
        "type": "Microsoft.EventGrid/systemTopics",
        "azureApiVersion": "2025-02-15",
    }
    outputs.pop("systemTopicName", None)
    return f"{_rg_id(rg)}/providers/Microsoft.EventGrid/systemTopics/{name}", outputs


@provider_outputs("azure-native:eventgrid:SystemTopicEventSubscription")
def _system_topic_subscription(
    _: AzureNativeMocks, args: pulumi_mocks.MockResourceArgs, inputs: dict
) -> tuple[str, dict]:
    name = inputs.get("eventSubscriptionName") or _autoname(args)
    rg, topic = inputs["resourceGroupName"], inputs["systemTopicName"]
    topic_id = f"{_rg_id(rg)}/providers/Microsoft.EventGrid/systemTopics/{topic}"
    outputs = {
        **inputs,
        "name": name,
        "topic": topic_id,
        "provisioningState": "Succeeded",
        "type": "Microsoft.EventGrid/systemTopics/eventSubscriptions",
        "azureApiVersion": "2025-02-15",
    }
    for key in ("eventSubscriptionName", "resourceGroupName", "systemTopicName"):
        outputs.pop(key, None)
    return f"{topic_id}/eventSubscriptions/{name}", outputs


@provider_outputs("azure-native:monitor:ScheduledQueryRule")
def _scheduled_query_rule(_: AzureNativeMocks, args: pulumi_mocks.MockResourceArgs, inputs: dict) -> tuple[str, dict]:
    name = inputs.get("ruleName") or _autoname(args)
    rg = inputs["resourceGroupName"]
    outputs = {
        **_without_path(inputs),
        "name": name,
        "isWorkspaceAlertsStorageConfigured": False,
        "isLegacyLogAnalyticsRule": False,
        "type": "Microsoft.Insights/scheduledQueryRules",
        "azureApiVersion": "2025-01-01-preview",
    }
    outputs.pop("ruleName", None)
    return f"{_rg_id(rg)}/providers/Microsoft.Insights/scheduledQueryRules/{name}", outputs


@provider_outputs("azure-native:monitor:DataCollectionRule")
def _data_collection_rule(_: AzureNativeMocks, args: pulumi_mocks.MockResourceArgs, inputs: dict) -> tuple[str, dict]:
    name = inputs.get("dataCollectionRuleName") or _autoname(args)
    rg = inputs["resourceGroupName"]
    outputs = {
        **_without_path(inputs),
        "name": name,
        # The id agents use to find the rule: "dcr-" and 32 hex characters.
        "immutableId": f"dcr-{_hex(32, rg, name)}",
        "provisioningState": "Succeeded",
        "type": "Microsoft.Insights/dataCollectionRules",
        "azureApiVersion": "2022-06-01",
    }
    outputs.pop("dataCollectionRuleName", None)
    return f"{_rg_id(rg)}/providers/Microsoft.Insights/dataCollectionRules/{name}", outputs


@provider_outputs("azure-native:monitor:DataCollectionRuleAssociation")
def _data_collection_rule_association(
    _: AzureNativeMocks, args: pulumi_mocks.MockResourceArgs, inputs: dict
) -> tuple[str, dict]:
    name = inputs.get("associationName") or _autoname(args)
    resource_uri = inputs["resourceUri"]
    outputs = {
        **inputs,
        "name": name,
        "provisioningState": "Succeeded",
        "type": "Microsoft.Insights/dataCollectionRuleAssociations",
        "azureApiVersion": "2022-06-01",
    }
    outputs.pop("associationName", None)
    outputs.pop("resourceUri", None)
    return f"{resource_uri}/providers/Microsoft.Insights/dataCollectionRuleAssociations/{name}", outputs


@provider_outputs("time:index/sleep:Sleep")
def _sleep(_: AzureNativeMocks, args: pulumi_mocks.MockResourceArgs, inputs: dict) -> tuple[str, dict]:
    # The time provider keeps only its inputs; the id is when the wait ended.
    return "2026-11-28T00:00:30Z", dict(inputs)


def _generic_arm(_: AzureNativeMocks, args: pulumi_mocks.MockResourceArgs, inputs: dict) -> tuple[str, dict]:
    """Any other azure-native resource: an ARM id under its resource group, named like the provider would."""
    _, module, kind = answered_as(args.typ).split(":")
    name = next((v for k, v in inputs.items() if k.endswith("Name") and k != "resourceGroupName"), None)
    name = name or _autoname(args)
    scope = (
        _rg_id(inputs["resourceGroupName"]) if "resourceGroupName" in inputs else f"/subscriptions/{SUBSCRIPTION_ID}"
    )
    return f"{scope}/providers/Microsoft.{module.capitalize()}/{kind[0].lower()}{kind[1:]}s/{name}", {
        **inputs,
        "name": name,
    }


class AzureNativeMocks(pulumi.runtime.Mocks):
    """Answers registrations and invokes as azure-native and azuread do, keeping what it created by id."""

    def __init__(self, preview: bool = False, stacks: Mapping[str, Mapping[str, Any]] | None = None) -> None:
        self.preview = preview
        self.states: dict[str, tuple[str, dict[str, Any]]] = {}  # id -> (type, outputs)
        # The backend's stacks a StackReference can read: fully qualified name -> outputs (kms_aks_tools.standin.fleet).
        self.stacks: Mapping[str, Mapping[str, Any]] = stacks or {}

    def new_resource(self, args: pulumi_mocks.MockResourceArgs) -> tuple[str | None, dict]:
        if not args.custom and not args.resource_id:  # a component (a read has an id and no `custom` flag)
            return None, {}
        # A read (a StackReference, `Resource.get`) is answered in preview too: the engine reads it then as well.
        if self.preview and not args.resource_id:
            return None, preview_outputs(args.inputs, self.try_build(args))
        resource_id, outputs = self.build(args)
        self.states[resource_id] = (answered_as(args.typ), outputs)
        return resource_id, outputs

    def build(self, args: pulumi_mocks.MockResourceArgs) -> tuple[str, dict[str, Any]]:
        """What the provider answers a create (or re-PUT) of `args` with, without storing it.

        The builders are keyed by plain type: a resource declared under a versioned module or a parameterized
        package (`azure_facts.tokens`) gets the same answer, with the API version its token pins as
        `azureApiVersion` (`kms_aks_tools.type_tokens.answered_as` says what an unknown form is answered as).
        The Azure stand-in (`kms_aks_tools.standin.provider`) calls this too: one set of builders.
        """
        resource_type = answered_as(args.typ)
        builder = BUILDERS.get(resource_type)
        if builder is None and resource_type.startswith("azure-native:"):
            builder = _generic_arm
        if builder is None:
            return f"{args.name}-id", dict(args.inputs)
        resource_id, outputs = builder(self, args, dict(args.inputs))
        api_version = pinned_api_version(args.typ)
        if api_version is not None and "azureApiVersion" in outputs:
            outputs["azureApiVersion"] = api_version
        return resource_id, outputs

    def try_build(self, args: pulumi_mocks.MockResourceArgs) -> dict[str, Any] | None:
        """The outputs a create would give, or None when preview inputs (unknowns) are too incomplete to build."""
        try:
            return self.build(args)[1]
        except (KeyError, TypeError, ValueError, AttributeError):
            return None

    def call(self, args: pulumi_mocks.MockCallArgs) -> Any:
        if args.token in CALLS:
            return CALLS[args.token](self, args)
        if args.token == "azure-native:authorization:getClientConfig":
            return {
                "clientId": DEPLOYER_CLIENT_ID,
                "objectId": DEPLOYER_OBJECT_ID,
                "subscriptionId": SUBSCRIPTION_ID,
                "tenantId": TENANT_ID,
            }
        if args.token == "azuread:index/getClientConfig:getClientConfig":
            return {
                "id": f"{TENANT_ID}-{DEPLOYER_CLIENT_ID}-{DEPLOYER_OBJECT_ID}",
                "clientId": DEPLOYER_CLIENT_ID,
                "objectId": DEPLOYER_OBJECT_ID,
                "tenantId": TENANT_ID,
            }
        raise NotImplementedError(
            f"the mock engine does not answer invoke {args.token}; add it to AzureNativeMocks.call"
        )

    def _outputs_of(self, type_token: str, name_key: str, name: str) -> dict[str, Any] | None:
        for typ, outputs in self.states.values():
            if typ == type_token and outputs.get(name_key) == name:
                return outputs
        return None

    def identity_principal(self, identity_id: str) -> dict[str, str]:
        typ, outputs = self.states.get(identity_id, ("", {}))
        if typ != "azure-native:managedidentity:UserAssignedIdentity":
            # An identity outside this stack: ARM still answers with its principal.
            return {"principalId": _guid("principal", identity_id), "clientId": _guid("client", identity_id)}
        return {"principalId": outputs["principalId"], "clientId": outputs["clientId"]}

    def vault_purge_protected(self, vault_name: str) -> bool:
        vault = self._outputs_of("azure-native:keyvault:Vault", "name", vault_name)
        return bool(vault and vault["properties"].get("enablePurgeProtection"))

    def vault_location(self, vault_name: str) -> str | None:
        vault = self._outputs_of("azure-native:keyvault:Vault", "name", vault_name)
        return vault.get("location") if vault else None


def preview_outputs(inputs: dict[str, Any], created: dict[str, Any] | None) -> dict[str, Any]:
    """What a preview knows of a resource it would create: the outputs' shape, with the inputs where they give a
    value and unknown everywhere the provider computes one.

    That is azure-native's `PreviewOutputs` ("maps [the inputs] to the outputs shape, adding unknowns for all
    properties that are not defined in inputs", provider/pkg/convert): a nested computed value such as a vault's
    `properties.vaultUri` is unknown, not absent. Absent would reach the program as None, and a component that
    registers it as an output then breaks an update plan (`up --plan` saw `vaultUri` change from nothing to a
    value, "resource violates plan"), which the real engine showed and the old inputs-only answer hid.
    `created` is what the builder would answer a create with; None when it cannot be built from preview inputs.
    """
    if created is None:
        known = dict(inputs)
        known.pop("identity", None)  # a map on output where the input is a list: unknown until created
        return known
    # Resources whose outputs flatten the inputs' `properties` (a Key's `kty`, `keySize`) take them from there.
    flattened = inputs.get("properties") if "properties" not in created else None
    given = {**flattened, **inputs} if isinstance(flattened, dict) else inputs
    # Top level: inputs that are not outputs (ARM path parameters such as resourceGroupName) are dropped.
    return {
        key: _known_where_given(given[key], value, key) if key in given else UNKNOWN for key, value in created.items()
    }


def _known_where_given(given: Any, created: Any, key: str) -> Any:
    if isinstance(created, dict) and isinstance(given, dict):
        if key == "tags":
            return given  # a free-form map: exactly what the inputs say
        known = {
            name: _known_where_given(value, created[name], name) if name in created else value
            for name, value in given.items()
        }
        return {**known, **{name: UNKNOWN for name in created if name not in given}}
    if isinstance(created, dict) != isinstance(given, dict) or isinstance(created, list) != isinstance(given, list):
        return UNKNOWN  # a different shape on output (e.g. identities: a list in, a map out) is computed
    return given


# ------------------------------------------------------------------ where an unknown value comes from
# The SDK serializes an unknown Output as one sentinel string, and the engine keeps dependencies per top-level
# property only. While the mock engine runs a program, an unknown Output is serialized as the sentinel tagged with
# the URNs of the resources it depends on; RecordingMonitor takes the tags off before anything else sees the
# request (the mocks, the recording, the policy pack get the plain sentinel) and keeps them per value path.
_TRACING_UNKNOWNS: contextvars.ContextVar[bool] = contextvars.ContextVar("kms_aks_tracing_unknowns", default=False)
_TAG = f"{UNKNOWN}#from:"
_serialize_property = pulumi_rpc.serialize_property


async def _serialize_tracing_unknowns(value: Any, deps: Any, property_key: Any, *args: Any, **kwargs: Any) -> Any:
    serialized = await _serialize_property(value, deps, property_key, *args, **kwargs)
    if serialized == UNKNOWN and _TRACING_UNKNOWNS.get() and isinstance(value, pulumi.Output):
        resources = (await value._data).resources
        urns = sorted({await resource.urn.future() or "" for resource in resources} - {""})
        return _TAG + ",".join(urns)
    return serialized


pulumi_rpc.serialize_property = _serialize_tracing_unknowns


def _untag(value: Any, path: str, found: dict[str, tuple[str, ...]]) -> Any:
    if isinstance(value, str) and value.startswith(_TAG):
        found[path] = tuple(u for u in value[len(_TAG) :].split(",") if u)
        return UNKNOWN
    if isinstance(value, dict):
        return {key: _untag(item, f"{path}.{key}" if path else key, found) for key, item in value.items()}
    if isinstance(value, list):
        return [_untag(item, f"{path}.{index}", found) for index, item in enumerate(value)]
    return value


def _untag_struct(struct: Any) -> dict[str, tuple[str, ...]]:
    """Takes the tags off a request's properties (a protobuf Struct, in place); returns where they were."""
    found: dict[str, tuple[str, ...]] = {}
    plain = _untag(json_format.MessageToDict(struct), "", found)
    if found:
        struct.Clear()
        struct.update(plain)
    return found


class RecordingMonitor(pulumi_mocks.MockMonitor):
    """A MockMonitor that keeps every `RegisterResource` request with what the mocks answered."""

    def __init__(self, mocks: AzureNativeMocks) -> None:
        super().__init__(mocks)
        self.recorded: list[RecordedResource] = []

    def make_urn(self, parent: str, type_: str, name: str) -> str:
        # The engine leaves the root stack's type out of a top-level resource's URN (resource/deploy/source_eval.go
        # and sdk/go/common/resource/urn.go in pulumi v3.274: no parent type when the parent is the root Stack);
        # the SDK's MockMonitor keeps it, so `urn:pulumi:dev::kms-aks::pulumi:pulumi:Stack$azure-native:...` here
        # would be `urn:pulumi:dev::kms-aks::azure-native:...` in every real preview, state file and guard input.
        if parent and parent.split("::")[2].split("$")[-1] == ROOT_STACK_TYPE:
            parent = ""
        return super().make_urn(parent, type_, name)

    def Invoke(self, request: Any) -> Any:
        _untag_struct(request.args)
        return super().Invoke(request)

    def ReadResource(self, request: Any) -> Any:
        _untag_struct(request.properties)
        return super().ReadResource(request)

    def RegisterResource(self, request: Any) -> Any:
        unknown_sources = _untag_struct(request.object)
        response = super().RegisterResource(request)
        self.recorded.append(
            RecordedResource(
                urn=response.urn,
                type=request.type,
                name=request.name,
                custom=bool(request.custom),
                parent=request.parent,
                inputs=json_format.MessageToDict(request.object),
                outputs=json_format.MessageToDict(response.object) if response.HasField("object") else {},
                id=response.id,
                dependencies=tuple(request.dependencies),
                property_dependencies={k: tuple(v.urns) for k, v in request.propertyDependencies.items()},
                protect=bool(request.protect),
                retain_on_delete=bool(request.retainOnDelete),
                ignore_changes=tuple(request.ignoreChanges),
                provider=request.provider,
                unknown_sources=unknown_sources,
            )
        )
        return response


class _LogCollector(logging.Handler):
    def __init__(self) -> None:
        super().__init__(level=logging.WARNING)
        self.messages: list[str] = []

    def emit(self, record: logging.LogRecord) -> None:
        self.messages.append(record.getMessage())


# ---------------------------------------------------------------------------------------------- stack config

# The offline tools never decrypt a secret (`{secure: ...}`); the program gets a stand-in in its place, marked
# secret, and the plan says so. Where the project documents a secret, the stand-in is a value of its shape, so
# the rest of the config is still checked; elsewhere it is the text `pulumi config` shows, "[secret]".
SECRET_STAND_INS: dict[tuple[str, ...], str] = {("kms-aks:monitoring", "alertWebhooks"): "https://secret.invalid/"}


def with_secret_stand_ins(config: dict[str, Any]) -> tuple[dict[str, Any], list[str], list[str]]:
    """`config` with every secret replaced by its stand-in; the keys holding secrets; one note per secret."""
    replaced: dict[str, Any] = {}
    secret_keys: list[str] = []
    notes: list[str] = []
    for key, value in config.items():
        paths = list(secret_paths(value))
        if not paths:
            replaced[key] = value
            continue
        secret_keys.append(key)
        for path in paths:
            named = tuple(part for part in path if isinstance(part, str))
            stand_in = SECRET_STAND_INS.get((key, *named), "[secret]")
            value = _replace_at(value, path, stand_in)
            shown = key + "".join(f"[{p}]" if isinstance(p, int) else f".{p}" for p in path)
            notes.append(
                f"{shown} is a secret: the offline tools do not decrypt it and use {stand_in!r} in its place; "
                "`pulumi preview` checks the real value"
            )
        replaced[key] = value
    return replaced, secret_keys, notes


def _replace_at(value: Any, path: tuple[str | int, ...], new: Any) -> Any:
    if not path:
        return new
    head, rest = path[0], path[1:]
    if isinstance(value, dict):
        return {**value, head: _replace_at(value[head], rest, new)}
    copy = list(value)
    copy[head] = _replace_at(copy[head], rest, new)  # type: ignore[index]
    return copy


def _as_engine_value(value: Any) -> str:
    # The CLI hands a program every value as a string: objects and lists as JSON, booleans lower-case.
    return to_engine_text(value)


# ---------------------------------------------------------------------------------------------- running


def run_config(
    config: dict[str, Any],
    *,
    stack: str = "test",
    preview: bool = False,
    program: Path = ROOT / "__main__.py",
    project: str = PROJECT,
    stacks: Mapping[str, Mapping[str, Any]] | None = None,
) -> RecordedStack:
    """Runs the program with `config` (full keys, e.g. `kms-aks:cluster`) in a fresh Pulumi runtime.

    `project` is the program's Pulumi project (`fleet/` is `kms-aks-fleet`); `stacks` are the other stacks'
    outputs its StackReferences read, by fully qualified name (`organization/kms-aks/dev`).
    """
    # The SDK keeps its settings, config and root stack in context variables: a fresh Context per run
    # gives every run its own runtime, so one process can run many stacks.
    return contextvars.Context().run(_run_in_new_loop, config, stack, preview, program, project, stacks)


def run_stack(
    stack: str, *, config: dict[str, Any] | None = None, preview: bool = False, root: Path = ROOT
) -> RecordedStack:
    """Runs the program for `Pulumi.<stack>.yaml`; `config` overrides its keys (a None value removes one)."""
    merged = load_stack_file(stack, root)
    for key, value in (config or {}).items():
        if value is None:
            merged.pop(key, None)
        else:
            merged[key] = value
    name = Path(stack).stem.removeprefix("Pulumi.") if stack.endswith((".yaml", ".yml")) else stack
    return run_config(merged, stack=name, preview=preview, program=root / "__main__.py")


def _run_in_new_loop(
    config: dict[str, Any],
    stack: str,
    preview: bool,
    program: Path,
    project: str = PROJECT,
    stacks: Mapping[str, Mapping[str, Any]] | None = None,
) -> RecordedStack:
    loop = asyncio.new_event_loop()
    asyncio.set_event_loop(loop)
    try:
        return loop.run_until_complete(_run(config, stack, preview, program, project, stacks))
    finally:
        # A failed program leaves outputs that will never resolve; cancel them rather than leak them.
        pending = asyncio.all_tasks(loop)
        for task in pending:
            task.cancel()
        loop.run_until_complete(asyncio.gather(*pending, return_exceptions=True))
        asyncio.set_event_loop(None)
        loop.close()


async def _run(
    config: dict[str, Any],
    stack: str,
    preview: bool,
    program: Path,
    project: str = PROJECT,
    stacks: Mapping[str, Mapping[str, Any]] | None = None,
) -> RecordedStack:
    mocks = AzureNativeMocks(preview=preview, stacks=stacks)
    monitor = RecordingMonitor(mocks)
    logs = _LogCollector()
    logger = logging.getLogger(f"kms_aks_tools.offline.mock_engine.{id(monitor)}")
    logger.propagate = False
    logger.addHandler(logs)

    _TRACING_UNKNOWNS.set(True)
    config, secret_keys, secret_notes = with_secret_stand_ins(config)
    set_all_config({key: _as_engine_value(value) for key, value in config.items()}, secret_keys)
    # MockSettings sets only some settings; the rest (pending outputs, locks, package refs) would fall
    # back to values shared across runs. A full reset first gives this run its own.
    pulumi_settings.reset_options(project=project, stack=stack, preview=preview)
    pulumi.runtime.set_mocks(mocks, project=project, stack=stack, preview=preview, logger=logger, monitor=monitor)
    recorded = RecordedStack(project=project, stack=stack, resources=monitor.recorded, warnings=logs.messages)
    logs.messages.extend(secret_notes)

    project_dir = str(program.parent)
    if project_dir not in sys.path:
        sys.path.insert(0, project_dir)
    try:
        runpy.run_path(str(program), run_name="__main__")
        await wait_for_rpcs()
    except pulumi.RunError as error:
        recorded.error = str(error)
        return recorded
    except Exception as error:  # a program bug: reported with its message, not a traceback
        recorded.error = f"{type(error).__name__}: {error}"
        return recorded

    root = pulumi.runtime.get_root_resource()
    secret: set[str] = set()
    for name, value in getattr(root, "outputs", {}).items():
        output = pulumi.Output.from_input(value)
        known = await output.is_known()
        recorded.outputs[name] = await output.future() if known else UNKNOWN
        if await output.is_secret():
            secret.add(name)
    recorded.secret_outputs = frozenset(secret)
    return recorded


# Azure Kubernetes Fleet Manager's builders and diff rules, and the StackReference read, live in their own module.
from kms_aks_tools.standin import fleet as _fleet  # noqa: E402, F401  (registers with @provider_outputs)
