"""The planned resources as an ARM template, for the scanners teams already run (checkov `--framework arm`,
PSRule for Azure).

`to_arm_template(recorded)` maps each azure-native resource the mock engine recorded to the ARM resource it
deploys: `type` and `apiVersion` (those the installed SDK uses, or the API version the resource's type token
pins: a versioned module or a `pulumi package add` package, read by `azure_facts.tokens`), `name` (from
the resource's path parameters, `parent/child` for child resources), `location`, `tags`, `identity`, `sku` and
`properties` in ARM's shape (azure-native flattens many resources' `properties` into top-level inputs; they go
back under `properties`), and `dependsOn` from the recorded dependency graph. Extension resources (role
assignments, diagnostic settings) carry ARM's `scope`.

It is a picture of the plan for scanning, not a deployment: values known only after apply and secrets are
replaced by placeholders, the resource group is the deployment's target rather than a resource, and resources
of other providers (Entra ID groups, Kubernetes objects, time sleeps) are listed in `metadata.notExported`.
"""

from __future__ import annotations

import copy
import dataclasses
import uuid
from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any

from azure_facts.tokens import pinned_api_version, plain_type
from kms_aks_tools.offline.graph import cloud_dependencies
from kms_aks_tools.offline.recording import UNKNOWN, RecordedResource, RecordedStack, redact_secrets

SCHEMA = "https://schema.management.azure.com/schemas/2019-04-01/deploymentTemplate.json#"
UNKNOWN_PLACEHOLDER = "[known after apply]"
# Top-level members of an ARM resource; every other input of a flattened azure-native resource is a property.
TOP_LEVEL = ("location", "tags", "identity", "sku", "kind", "zones", "extendedLocation", "plan")


@dataclass(frozen=True)
class ArmType:
    """How one azure-native type maps to ARM: its type, API version, and the inputs that form its name."""

    type: str
    api_version: str
    # Inputs naming the resource (parent first): `vaults/keys` is named "<vaultName>/<keyName>".
    name_inputs: tuple[str, ...]
    # Inputs that are only part of the URL (resource group, names) and never in the body.
    url_inputs: frozenset[str] = field(default_factory=frozenset)
    # azure-native keeps ARM's `properties` object as an input for these (no flattening).
    nested: bool = False
    # An extension resource: this input is the id of the resource it extends (ARM's `scope`).
    scope_input: str | None = None


def _t(type_: str, api: str, *names: str, nested: bool = False, scope: str | None = None) -> ArmType:
    url = frozenset({"resourceGroupName", *names, *([scope] if scope else [])})
    return ArmType(type_, api, names, url, nested, scope)


# API versions: the defaults of the pinned azure-native 3.x SDK ("Uses Azure REST API version ..." in each
# module's docstring under site-packages/pulumi_azure_native/).
ARM_TYPES: dict[str, ArmType] = {
    "azure-native:keyvault:Vault": _t("Microsoft.KeyVault/vaults", "2024-11-01", "vaultName", nested=True),
    "azure-native:keyvault:Key": _t(
        "Microsoft.KeyVault/vaults/keys", "2024-11-01", "vaultName", "keyName", nested=True
    ),
    "azure-native:managedidentity:UserAssignedIdentity": _t(
        "Microsoft.ManagedIdentity/userAssignedIdentities", "2023-01-31", "resourceName"
    ),
    "azure-native:authorization:RoleAssignment": _t(
        "Microsoft.Authorization/roleAssignments", "2022-04-01", "roleAssignmentName", scope="scope"
    ),
    "azure-native:containerservice:ManagedCluster": _t(
        "Microsoft.ContainerService/managedClusters", "2025-09-01", "resourceName"
    ),
    "azure-native:network:VirtualNetwork": _t("Microsoft.Network/virtualNetworks", "2024-05-01", "virtualNetworkName"),
    "azure-native:network:Subnet": _t(
        "Microsoft.Network/virtualNetworks/subnets", "2024-05-01", "virtualNetworkName", "subnetName"
    ),
    "azure-native:network:PrivateEndpoint": _t(
        "Microsoft.Network/privateEndpoints", "2024-05-01", "privateEndpointName"
    ),
    "azure-native:monitor:DiagnosticSetting": _t(
        "Microsoft.Insights/diagnosticSettings", "2021-05-01-preview", "name", scope="resourceUri"
    ),
    "azure-native:operationalinsights:Workspace": _t(
        "Microsoft.OperationalInsights/workspaces", "2023-09-01", "workspaceName"
    ),
    "azure-native:monitor:ActionGroup": _t("Microsoft.Insights/actionGroups", "2024-10-01-preview", "actionGroupName"),
    "azure-native:monitor:ScheduledQueryRule": _t(
        "Microsoft.Insights/scheduledQueryRules", "2025-01-01-preview", "ruleName"
    ),
    "azure-native:eventgrid:SystemTopic": _t("Microsoft.EventGrid/systemTopics", "2025-02-15", "systemTopicName"),
    "azure-native:eventgrid:SystemTopicEventSubscription": _t(
        "Microsoft.EventGrid/systemTopics/eventSubscriptions", "2025-02-15", "systemTopicName", "eventSubscriptionName"
    ),
}
# The deployment's target, not a resource of a resource-group template.
RESOURCE_GROUP = "azure-native:resources:ResourceGroup"
ACCESS_POLICY = "azure-native:keyvault:AccessPolicy"

# azure-native's SDK names where ARM's JSON names differ (x-ms-client-name).
_KEY_ATTRIBUTE_NAMES = {"expires": "exp", "notBefore": "nbf"}


def _placeholders(value: Any) -> Any:
    """Unknowns become a readable placeholder; numbers that are whole become ints (the wire has only doubles)."""
    if value == UNKNOWN:
        return UNKNOWN_PLACEHOLDER
    if isinstance(value, float) and value.is_integer():
        return int(value)
    if isinstance(value, Mapping):
        return {k: _placeholders(v) for k, v in value.items()}
    if isinstance(value, list):
        return [_placeholders(v) for v in value]
    return value


def _arm_type(resource: RecordedResource) -> ArmType | None:
    resource_type = plain_type(resource.type) or resource.type
    known = ARM_TYPES.get(resource_type)
    if known is not None:
        pinned = pinned_api_version(resource.type)
        return known if pinned is None else dataclasses.replace(known, api_version=pinned)
    # Another azure-native type: the provider's own outputs say what it is, when known.
    arm_type, api = resource.outputs.get("type"), resource.outputs.get("azureApiVersion")
    if resource_type.startswith("azure-native:") and isinstance(arm_type, str) and arm_type != UNKNOWN:
        name_inputs = tuple(
            k for k, v in resource.inputs.items() if k.endswith("Name") and v == resource.outputs.get("name")
        )
        return _t(arm_type, api if isinstance(api, str) else "", *name_inputs[:1])
    return None


def _name(resource: RecordedResource, arm: ArmType) -> str:
    if arm.type == "Microsoft.Authorization/roleAssignments" and not resource.inputs.get("roleAssignmentName"):
        # The program lets azure-native pick the GUID; a stable one derived from the URN stands in for it.
        return str(uuid.uuid5(uuid.NAMESPACE_URL, resource.urn))
    parts = [resource.inputs.get(n) for n in arm.name_inputs]
    if parts and all(isinstance(p, str) and p for p in parts):
        return "/".join(p if p != UNKNOWN else UNKNOWN_PLACEHOLDER for p in parts)
    output_name = resource.outputs.get("name")
    return output_name if isinstance(output_name, str) and output_name != UNKNOWN else resource.name


def _identity(identity: Any) -> Any:
    # azure-native takes user-assigned identities as a list of ids; ARM takes a map id -> {}.
    if isinstance(identity, Mapping) and isinstance(identity.get("userAssignedIdentities"), list):
        identity = {**identity, "userAssignedIdentities": {i: {} for i in identity["userAssignedIdentities"]}}
    return identity


def resource_id_expression(arm_type: str, name: str) -> str:
    """ARM's `resourceId(...)` for a resource of this template (child names split into segments)."""
    segments = ", ".join(f"'{part}'" for part in name.split("/"))
    return f"[resourceId('{arm_type}', {segments})]"


def to_arm_resource(resource: RecordedResource) -> dict[str, Any] | None:
    """One recorded azure-native resource as an ARM template resource (without dependsOn), or None."""
    if (plain_type(resource.type) or resource.type) == ACCESS_POLICY:
        return _access_policy(resource)
    arm = _arm_type(resource)
    if arm is None:
        return None
    inputs = _placeholders(redact_secrets(copy.deepcopy(resource.inputs)))
    result: dict[str, Any] = {"type": arm.type, "apiVersion": arm.api_version, "name": _name(resource, arm)}
    if arm.scope_input and inputs.get(arm.scope_input) is not None:
        result["scope"] = inputs[arm.scope_input]
    for key in TOP_LEVEL:
        if key in inputs:
            result[key] = _identity(inputs[key]) if key == "identity" else inputs[key]
    if arm.nested:
        properties = dict(inputs.get("properties") or {})
    else:
        properties = {
            k: v
            for k, v in inputs.items()
            if k not in TOP_LEVEL and k not in arm.url_inputs and k not in arm.name_inputs
        }
    if arm.type == "Microsoft.KeyVault/vaults/keys" and isinstance(properties.get("attributes"), Mapping):
        properties["attributes"] = {_KEY_ATTRIBUTE_NAMES.get(k, k): v for k, v in properties["attributes"].items()}
    result["properties"] = properties
    return result


def _access_policy(resource: RecordedResource) -> dict[str, Any]:
    # azure-native's AccessPolicy adds one policy to a vault: ARM's vaults/accessPolicies "add" operation.
    inputs = _placeholders(redact_secrets(copy.deepcopy(resource.inputs)))
    return {
        "type": "Microsoft.KeyVault/vaults/accessPolicies",
        "apiVersion": pinned_api_version(resource.type) or ARM_TYPES["azure-native:keyvault:Vault"].api_version,
        "name": f"{inputs.get('vaultName', UNKNOWN_PLACEHOLDER)}/add",
        "properties": {"accessPolicies": [inputs.get("policy", {})]},
    }


def to_arm_template(recorded: RecordedStack) -> dict[str, Any]:
    """The recorded stack's azure-native resources as one ARM deployment template."""
    exported: dict[str, dict[str, Any]] = {}
    not_exported: list[str] = []
    resource_groups: list[str] = []
    for resource in recorded.resources:
        if not resource.custom or resource.type.startswith("pulumi:"):
            continue
        if (plain_type(resource.type) or resource.type) == RESOURCE_GROUP:
            name = resource.inputs.get("resourceGroupName", resource.name)
            resource_groups.append(_placeholders(name))
            continue
        arm_resource = to_arm_resource(resource)
        if arm_resource is None:
            not_exported.append(f"{resource.type} {resource.name}")
            continue
        exported[resource.urn] = arm_resource

    dependencies = cloud_dependencies(recorded)

    def exported_dependencies(urn: str, seen: set[str]) -> list[str]:
        # Through resources the template leaves out (a time:Sleep between the grants and the cluster), so the
        # cluster still waits for the grants.
        found: list[str] = []
        for dependency in dependencies.get(urn, []):
            if dependency in seen:
                continue
            seen.add(dependency)
            found += [dependency] if dependency in exported else exported_dependencies(dependency, seen)
        return found

    for urn, arm_resource in exported.items():
        depends_on = [
            exported[d]["name"]
            if "scope" in exported[d]
            else resource_id_expression(exported[d]["type"], exported[d]["name"])
            for d in exported_dependencies(urn, {urn})
        ]
        if depends_on:
            arm_resource["dependsOn"] = sorted(dict.fromkeys(depends_on))

    return {
        "$schema": SCHEMA,
        "contentVersion": "1.0.0.0",
        "metadata": {
            "generator": "kms-aks make plan --arm",
            "stack": recorded.stack,
            "resourceGroups": resource_groups,
            "notExported": not_exported,
            "note": f"planned resources for scanning; '{UNKNOWN_PLACEHOLDER}' marks values known after apply, "
            "secrets are redacted",
        },
        "resources": list(exported.values()),
    }
