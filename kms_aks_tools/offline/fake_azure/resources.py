"""How azure-native, azuread and time answer a create of each type the program declares: (ARM id, outputs in
camelCase), as the real providers do (ARM-shaped ids, `name`, `principalId`/`clientId`, `keyUri`/`keyUriWithVersion`,
`properties.vaultUri`, the map shape of a cluster's `identity.userAssignedIdentities`). A mock that echoed inputs
would hide wiring bugs. `BUILDERS` is the table, by plain type; `generic_arm` answers any other azure-native type.
"""

from __future__ import annotations

from typing import Any

from pulumi.runtime import mocks as pulumi_mocks

from kms_aks_tools.offline.fake_azure.base import Mocks, answered_as, autoname, child_builder
from kms_aks_tools.offline.fake_azure.ids import DEPLOYER_OBJECT_ID, SUBSCRIPTION_ID, TENANT_ID, guid, hex_digest, rg_id


def _resource_group(_: Mocks, args: pulumi_mocks.MockResourceArgs, inputs: dict) -> tuple[str, dict]:
    name = inputs.get("resourceGroupName") or autoname(args)
    outputs = {
        "name": name,
        "location": inputs["location"],
        "tags": inputs.get("tags", {}),
        "type": "Microsoft.Resources/resourceGroups",
        "properties": {"provisioningState": "Succeeded"},
        "azureApiVersion": "2024-03-01",
    }
    return rg_id(name), outputs


def _vault(_: Mocks, args: pulumi_mocks.MockResourceArgs, inputs: dict) -> tuple[str, dict]:
    name = inputs.get("vaultName") or autoname(args)[:24]
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
    return f"{rg_id(inputs['resourceGroupName'])}/providers/Microsoft.KeyVault/vaults/{name}", outputs


def _key(mocks: Mocks, args: pulumi_mocks.MockResourceArgs, inputs: dict) -> tuple[str, dict]:
    name = inputs.get("keyName") or autoname(args)
    vault = inputs["vaultName"]
    props = inputs.get("properties", {})
    key_uri = f"https://{vault}.vault.azure.net/keys/{name}"
    version = hex_digest(32, vault, name, "version-1")
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
    vault_id = f"{rg_id(inputs['resourceGroupName'])}/providers/Microsoft.KeyVault/vaults/{vault}"
    return f"{vault_id}/keys/{name}", outputs


def _identity(_: Mocks, args: pulumi_mocks.MockResourceArgs, inputs: dict) -> tuple[str, dict]:
    name = inputs.get("resourceName") or autoname(args)
    rg = inputs["resourceGroupName"]
    outputs = {
        "name": name,
        "location": inputs.get("location"),
        "tags": inputs.get("tags", {}),
        "principalId": guid("principal", rg, name),
        "clientId": guid("client", rg, name),
        "tenantId": TENANT_ID,
        "type": "Microsoft.ManagedIdentity/userAssignedIdentities",
        "azureApiVersion": "2023-01-31",
    }
    return f"{rg_id(rg)}/providers/Microsoft.ManagedIdentity/userAssignedIdentities/{name}", outputs


def _access_policy(_: Mocks, args: pulumi_mocks.MockResourceArgs, inputs: dict) -> tuple[str, dict]:
    vault_id = f"{rg_id(inputs['resourceGroupName'])}/providers/Microsoft.KeyVault/vaults/{inputs['vaultName']}"
    outputs = {
        "resourceGroupName": inputs["resourceGroupName"],
        "vaultName": inputs["vaultName"],
        "policy": inputs["policy"],
    }
    return f"{vault_id}/accessPolicy/{inputs['policy']['objectId']}", outputs


def _role_assignment(_: Mocks, args: pulumi_mocks.MockResourceArgs, inputs: dict) -> tuple[str, dict]:
    name = inputs.get("roleAssignmentName") or guid("role-assignment", args.name, inputs["scope"])
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


def _managed_cluster(mocks: Mocks, args: pulumi_mocks.MockResourceArgs, inputs: dict) -> tuple[str, dict]:
    name = inputs.get("resourceName") or autoname(args)
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
        identity.update(principalId=guid("cluster-principal", rg, name), tenantId=TENANT_ID)
    node_rg = inputs.get("nodeResourceGroup") or f"MC_{rg}_{name}_{location}"
    kubelet = f"{rg_id(node_rg)}/providers/Microsoft.ManagedIdentity/userAssignedIdentities/{name}-agentpool"
    outputs = {
        **inputs,
        "name": name,
        "identity": identity,
        "fqdn": f"{inputs.get('dnsPrefix', name)}-{hex_digest(8, name)}.hcp.{location}.azmk8s.io",
        "azurePortalFQDN": f"{inputs.get('dnsPrefix', name)}-{hex_digest(8, name)}.portal.hcp.{location}.azmk8s.io",
        "currentKubernetesVersion": inputs.get("kubernetesVersion"),
        "nodeResourceGroup": node_rg,
        "provisioningState": "Succeeded",
        "powerState": {"code": "Running"},
        "maxAgentPools": 100,
        "identityProfile": {
            "kubeletidentity": {
                "resourceId": kubelet,
                "clientId": guid("kubelet-client", rg, name),
                "objectId": guid("kubelet-object", rg, name),
            }
        },
        "oidcIssuerProfile": {
            **inputs.get("oidcIssuerProfile", {}),
            "issuerURL": f"https://{location}.oic.prod-aks.azure.com/{TENANT_ID}/{guid('oidc', name)}/",
        },
        "type": "Microsoft.ContainerService/ManagedClusters",
        "azureApiVersion": "2025-09-01",
    }
    outputs.pop("resourceName", None)
    outputs.pop("resourceGroupName", None)
    return f"{rg_id(rg)}/providers/Microsoft.ContainerService/managedClusters/{name}", outputs


def _vnet_id(resource_group: str, vnet: str) -> str:
    return f"{rg_id(resource_group)}/providers/Microsoft.Network/virtualNetworks/{vnet}"


def _virtual_network(_: Mocks, args: pulumi_mocks.MockResourceArgs, inputs: dict) -> tuple[str, dict]:
    name = inputs.get("virtualNetworkName") or autoname(args)
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
        "resourceGuid": guid("vnet", rg, name),
        "etag": f'W/"{guid("etag", rg, name)}"',
        "type": "Microsoft.Network/virtualNetworks",
        "azureApiVersion": "2024-05-01",
    }
    return _vnet_id(rg, name), outputs


def _subnet(_: Mocks, args: pulumi_mocks.MockResourceArgs, inputs: dict) -> tuple[str, dict]:
    name = inputs.get("subnetName") or autoname(args)
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
        "etag": f'W/"{guid("etag", subnet_id)}"',
        "type": "Microsoft.Network/virtualNetworks/subnets",
        "azureApiVersion": "2024-05-01",
    }
    return subnet_id, outputs


# Path parameters of the storage resources' ARM URLs: inputs only, never in the provider's outputs.
_STORAGE_PATH_PARAMETERS = frozenset({"resourceGroupName", "accountName", "blobServicesName", "containerName"})


def _without_path(inputs: dict[str, Any]) -> dict[str, Any]:
    return {k: v for k, v in inputs.items() if k not in _STORAGE_PATH_PARAMETERS}


def _storage_account_id(resource_group: str, account: str) -> str:
    return f"{rg_id(resource_group)}/providers/Microsoft.Storage/storageAccounts/{account}"


def _storage_account(_: Mocks, args: pulumi_mocks.MockResourceArgs, inputs: dict) -> tuple[str, dict]:
    name = inputs.get("accountName") or autoname(args)[:24].lower()
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


def _blob_service(_: Mocks, args: pulumi_mocks.MockResourceArgs, inputs: dict) -> tuple[str, dict]:
    # The blob service of an account is a singleton named "default".
    account_id = _storage_account_id(inputs["resourceGroupName"], inputs["accountName"])
    outputs = {**_without_path(inputs), "name": "default", "type": "Microsoft.Storage/storageAccounts/blobServices"}
    return f"{account_id}/blobServices/default", outputs


def _blob_container(_: Mocks, args: pulumi_mocks.MockResourceArgs, inputs: dict) -> tuple[str, dict]:
    name = inputs.get("containerName") or autoname(args).lower()
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


def _entra_group(_: Mocks, args: pulumi_mocks.MockResourceArgs, inputs: dict) -> tuple[str, dict]:
    object_id = guid("group", inputs["displayName"])
    outputs = {**inputs, "objectId": object_id, "mailEnabled": False, "mail": "", "onpremisesSyncEnabled": False}
    return object_id, outputs


# ------------------------------------------------------------------ monitoring, alerts and the propagation wait
# What KmsMonitoring and KmsIdentity's wait consume: ARM ids with the resource providers' casing
# (Microsoft.OperationalInsights, Microsoft.Insights, Microsoft.EventGrid), a workspace's `customerId`, and the
# time provider's Sleep, whose id is its creation time (RFC 3339), as the Terraform time provider sets it.


def _group_scope(inputs: dict[str, Any]) -> str:
    return rg_id(inputs["resourceGroupName"])


def _without(*keys: str) -> Any:
    return lambda inputs: {k: v for k, v in inputs.items() if k not in keys}


_workspace = child_builder(
    name_key="workspaceName",
    parent=_group_scope,
    collection="providers/Microsoft.OperationalInsights/workspaces",
    arm_type="Microsoft.OperationalInsights/workspaces",
    api_version="2023-09-01",
    body=_without_path,
    computed=lambda inputs, name: {
        "customerId": guid("workspace-customer", inputs["resourceGroupName"], name),
        "sku": {**inputs.get("sku", {"name": "PerGB2018"}), "lastSkuUpdate": "2026-11-28T00:00:00Z"},
        "retentionInDays": inputs.get("retentionInDays", 30),
        "provisioningState": "Succeeded",
        "publicNetworkAccessForIngestion": inputs.get("publicNetworkAccessForIngestion", "Enabled"),
        "publicNetworkAccessForQuery": inputs.get("publicNetworkAccessForQuery", "Enabled"),
        "createdDate": "2026-11-28T00:00:00Z",
    },
)
_action_group = child_builder(
    name_key="actionGroupName",
    parent=_group_scope,
    collection="providers/Microsoft.Insights/actionGroups",
    arm_type="Microsoft.Insights/ActionGroups",
    api_version="2024-10-01-preview",
    body=_without_path,
    computed=lambda inputs, name: {
        # ARM answers each email receiver with its subscription status.
        "emailReceivers": [{**r, "status": "Enabled"} for r in inputs.get("emailReceivers", [])],
        "webhookReceivers": inputs.get("webhookReceivers", []),
    },
)
# An extension resource: its id hangs under the resource it watches.
_diagnostic_setting = child_builder(
    name_key="name",
    parent=lambda inputs: inputs["resourceUri"],
    collection="providers/Microsoft.Insights/diagnosticSettings",
    arm_type="Microsoft.Insights/diagnosticSettings",
    api_version="2021-05-01-preview",
    body=_without("resourceUri"),
)
_system_topic = child_builder(
    name_key="systemTopicName",
    parent=_group_scope,
    collection="providers/Microsoft.EventGrid/systemTopics",
    arm_type="Microsoft.EventGrid/systemTopics",
    api_version="2025-02-15",
    body=_without_path,
    computed=lambda inputs, name: {
        "metricResourceId": guid("system-topic-metrics", inputs["resourceGroupName"], name),
        "provisioningState": "Succeeded",
    },
)


def _topic_id(inputs: dict[str, Any]) -> str:
    return f"{_group_scope(inputs)}/providers/Microsoft.EventGrid/systemTopics/{inputs['systemTopicName']}"


_system_topic_subscription = child_builder(
    name_key="eventSubscriptionName",
    parent=_topic_id,
    collection="eventSubscriptions",
    arm_type="Microsoft.EventGrid/systemTopics/eventSubscriptions",
    api_version="2025-02-15",
    body=_without("resourceGroupName", "systemTopicName"),
    computed=lambda inputs, name: {"topic": _topic_id(inputs), "provisioningState": "Succeeded"},
)
_scheduled_query_rule = child_builder(
    name_key="ruleName",
    parent=_group_scope,
    collection="providers/Microsoft.Insights/scheduledQueryRules",
    arm_type="Microsoft.Insights/scheduledQueryRules",
    api_version="2025-01-01-preview",
    body=_without_path,
    computed=lambda inputs, name: {"isWorkspaceAlertsStorageConfigured": False, "isLegacyLogAnalyticsRule": False},
)
_data_collection_rule = child_builder(
    name_key="dataCollectionRuleName",
    parent=_group_scope,
    collection="providers/Microsoft.Insights/dataCollectionRules",
    arm_type="Microsoft.Insights/dataCollectionRules",
    api_version="2022-06-01",
    body=_without_path,
    computed=lambda inputs, name: {
        # The id agents use to find the rule: "dcr-" and 32 hex characters.
        "immutableId": f"dcr-{hex_digest(32, inputs['resourceGroupName'], name)}",
        "provisioningState": "Succeeded",
    },
)
_data_collection_rule_association = child_builder(
    name_key="associationName",
    parent=lambda inputs: inputs["resourceUri"],
    collection="providers/Microsoft.Insights/dataCollectionRuleAssociations",
    arm_type="Microsoft.Insights/dataCollectionRuleAssociations",
    api_version="2022-06-01",
    body=_without("resourceUri"),
    computed=lambda inputs, name: {"provisioningState": "Succeeded"},
)


def _sleep(_: Mocks, args: pulumi_mocks.MockResourceArgs, inputs: dict) -> tuple[str, dict]:
    # The time provider keeps only its inputs; the id is when the wait ended.
    return "2026-11-28T00:00:30Z", dict(inputs)


def generic_arm(_: Mocks, args: pulumi_mocks.MockResourceArgs, inputs: dict) -> tuple[str, dict]:
    """Any other azure-native resource: an ARM id under its resource group, named like the provider would."""
    _, module, kind = answered_as(args.typ).split(":")
    name = next((v for k, v in inputs.items() if k.endswith("Name") and k != "resourceGroupName"), None)
    name = name or autoname(args)
    scope = (
        rg_id(inputs["resourceGroupName"]) if "resourceGroupName" in inputs else f"/subscriptions/{SUBSCRIPTION_ID}"
    )
    return f"{scope}/providers/Microsoft.{module.capitalize()}/{kind[0].lower()}{kind[1:]}s/{name}", {
        **inputs,
        "name": name,
    }


BUILDERS = {
    "azure-native:resources:ResourceGroup": _resource_group,
    "azure-native:keyvault:Vault": _vault,
    "azure-native:keyvault:Key": _key,
    "azure-native:managedidentity:UserAssignedIdentity": _identity,
    "azure-native:keyvault:AccessPolicy": _access_policy,
    "azure-native:authorization:RoleAssignment": _role_assignment,
    "azure-native:containerservice:ManagedCluster": _managed_cluster,
    "azure-native:network:VirtualNetwork": _virtual_network,
    "azure-native:network:Subnet": _subnet,
    "azure-native:storage:StorageAccount": _storage_account,
    "azure-native:storage:BlobServiceProperties": _blob_service,
    "azure-native:storage:BlobContainer": _blob_container,
    "azuread:index/group:Group": _entra_group,
    "azure-native:operationalinsights:Workspace": _workspace,
    "azure-native:monitor:ActionGroup": _action_group,
    "azure-native:monitor:DiagnosticSetting": _diagnostic_setting,
    "azure-native:eventgrid:SystemTopic": _system_topic,
    "azure-native:eventgrid:SystemTopicEventSubscription": _system_topic_subscription,
    "azure-native:monitor:ScheduledQueryRule": _scheduled_query_rule,
    "azure-native:monitor:DataCollectionRule": _data_collection_rule,
    "azure-native:monitor:DataCollectionRuleAssociation": _data_collection_rule_association,
    "time:index/sleep:Sleep": _sleep,
}
