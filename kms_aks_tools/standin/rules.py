"""azure-native's own diff rules for the types this program uses, and ARM's answer to a Key re-PUT.

How azure-native diffs (pulumi/pulumi-azure-native `provider/pkg/provider/diff.go`,
`calculateDetailedDiff`, and `Diff` in `provider/pkg/provider/provider.go`):
- it diffs the OLD INPUTS (3.x: `DiffRequest.old_inputs`, SendOldInputs; v2 kept them in the state under
  a secret `__inputs`) with the new inputs, not old outputs with new inputs;
- every PUT parameter located in the URL path (resource group, the resource's name, parent names,
  `scope`) is a replace key, under its SDK name;
- every top-level body property marked `forceNew` in the metadata is a replace key;
- a nested object whose parent is a replace key turns its child UPDATEs into UPDATE_REPLACE;
  array elements added or removed are plain ADD/DELETE;
- `deleteBeforeReplace` is true whenever something replaces, unless the name was auto-named
  (Check then stores `__createBeforeDelete: true`);
- `diffs` lists the top-level keys, `detailedDiff` the full paths, `hasDetailedDiff` is true.
Each `Rules` entry cites where its path parameters and force-new properties come from.
"""

from __future__ import annotations

import datetime
from dataclasses import dataclass, field
from typing import Any

from pulumi.runtime.proto import provider_pb2

from kms_aks_tools.offline.fake_azure import fleet
from kms_aks_tools.standin.wire import UNKNOWN

Kind = provider_pb2.PropertyDiff.Kind


@dataclass(frozen=True)
class Rules:
    """What replaces a resource of one type; everything else updates it in place."""

    path: tuple[str, ...]  # PUT path parameters by SDK name, in URL order; the last one names the resource
    force_new: frozenset[str] = field(default_factory=frozenset)  # replace keys among body properties
    source: str = ""  # where these rules were read

    @property
    def replace_keys(self) -> frozenset[str]:
        return frozenset(self.path) | self.force_new


# Path parameters: the ARM PUT path of each type (azure-native metadata `path`, same as the REST specs).
# Force-new: `provider/pkg/gen/replacement.go` (`forceNewMap`, read for 3.x) plus spec properties whose
# `x-ms-mutability` lacks "update" (`provider/pkg/gen/properties.go`, `propChangeForcesRecreate`).
_AKS_FORCE_NEW = frozenset(
    {
        # replacement.go forceNewMap["ContainerService"]["ManagedCluster"], top level ...
        "diskEncryptionSetID",
        "dnsPrefix",
        "fqdnSubdomain",
        "linuxProfile",
        "location",
        "nodeResourceGroup",
        "windowsProfile",
        # ... and networkProfile's create-only sub-properties (pulumi-azure-native#4756); diff.go looks one
        # level into a body property's type, so these are `networkProfile.<name>`.
        *(
            f"networkProfile.{name}"
            for name in (
                "serviceCidr",
                "serviceCidrs",
                "podCidrs",
                "dnsServiceIP",
                "networkMode",
                "networkPlugin",
                "networkPluginMode",
                "podCidr",
                "networkDataplane",
                "networkPolicy",
                "outboundType",
                "ipFamilies",
            )
        ),
    }
)

RULES: dict[str, Rules] = {
    "azure-native:resources:ResourceGroup": Rules(
        path=("resourceGroupName",),
        force_new=frozenset({"location"}),
        source="PUT /subscriptions/{subscriptionId}/resourcegroups/{resourceGroupName}; forceNewMap Resources",
    ),
    "azure-native:keyvault:Vault": Rules(
        path=("resourceGroupName", "vaultName"),
        force_new=frozenset({"location"}),
        source="PUT .../vaults/{vaultName}; keyvault.json VaultCreateOrUpdateParameters.location x-ms-mutability",
    ),
    # Keys: only the path replaces. keys.json (2024-11-01) KeyProperties has no x-ms-mutability on kty,
    # keySize, curveName, keyOps or attributes, and Keyvault is not in forceNewMap: a changed kty plans as an
    # in-place UPDATE, whose re-PUT ARM then answers (see `key_reput`).
    "azure-native:keyvault:Key": Rules(
        path=("resourceGroupName", "vaultName", "keyName"),
        source="PUT .../vaults/{vaultName}/keys/{keyName} (Keys_CreateIfNotExist); no force-new",
    ),
    "azure-native:managedidentity:UserAssignedIdentity": Rules(
        path=("resourceGroupName", "resourceName"),
        force_new=frozenset({"location"}),
        source="PUT .../userAssignedIdentities/{resourceName}; TrackedResource.location x-ms-mutability",
    ),
    # Custom resource: provider/pkg/resources/customresources/custom_keyvault_accesspolicy.go, whose
    # metadata puts `policy.objectId` in the path (.../vaults/{vaultName}/accessPolicy/{policy.objectId}).
    "azure-native:keyvault:AccessPolicy": Rules(
        path=("resourceGroupName", "vaultName", "policy.objectId"),
        source="custom_keyvault_accesspolicy.go PutParameters",
    ),
    # Role assignments are immutable in ARM ("RoleAssignmentUpdateNotPermitted: Tenant ID, application ID,
    # principal ID, and scope are not allowed to be updated"); azure-native replaces on principalId and
    # scope (forceNewMap Authorization, pulumi-azure-native#771 / PR #1010). roleDefinitionId is NOT in the
    # map: azure-native plans a role change as an in-place update.
    "azure-native:authorization:RoleAssignment": Rules(
        path=("scope", "roleAssignmentName"),
        force_new=frozenset({"principalId", "scope"}),
        source="PUT /{scope}/providers/Microsoft.Authorization/roleAssignments/{roleAssignmentName}; forceNewMap",
    ),
    "azure-native:containerservice:ManagedCluster": Rules(
        path=("resourceGroupName", "resourceName"),
        force_new=_AKS_FORCE_NEW,
        source="PUT .../managedClusters/{resourceName}; forceNewMap ContainerService.ManagedCluster",
    ),
    "azure-native:network:VirtualNetwork": Rules(
        path=("resourceGroupName", "virtualNetworkName"),
        force_new=frozenset({"location"}),
        source="PUT .../virtualNetworks/{virtualNetworkName}; forceNewMap Network.VirtualNetwork",
    ),
    "azure-native:network:Subnet": Rules(
        path=("resourceGroupName", "virtualNetworkName", "subnetName"),
        source="PUT .../virtualNetworks/{virtualNetworkName}/subnets/{subnetName}; forceNewMap: no force-news",
    ),
    "azure-native:storage:StorageAccount": Rules(
        path=("resourceGroupName", "accountName"),
        force_new=frozenset({"location", "isHnsEnabled"}),
        source="PUT .../storageAccounts/{accountName}; forceNewMap Storage.StorageAccount",
    ),
    "azure-native:storage:BlobServiceProperties": Rules(
        path=("resourceGroupName", "accountName", "blobServicesName"),
        source="PUT .../storageAccounts/{accountName}/blobServices/{BlobServicesName}",
    ),
    "azure-native:storage:BlobContainer": Rules(
        path=("resourceGroupName", "accountName", "containerName"),
        source="PUT .../blobServices/default/containers/{containerName}; forceNewMap: no force-news",
    ),
    # Bridged Terraform providers replace on the schema's ForceNew attributes. NOT verified against their
    # source: assumptions from the providers' docs ("Changing this forces a new resource").
    "azuread:index/group:Group": Rules(
        path=(),
        force_new=frozenset({"assignableToRole", "onpremisesGroupType"}),
        source="unverified: terraform-provider-azuread group_resource.go ForceNew (docs)",
    ),
    "time:index/sleep:Sleep": Rules(
        path=(),
        force_new=frozenset({"triggers"}),
        source="unverified: terraform-provider-time time_sleep `triggers` RequiresReplace (docs)",
    ),
    # Azure Kubernetes Fleet Manager (the fleet/ project): kms_aks_tools.offline.fake_azure.fleet's docstring says
    # where each comes from.
    fleet.FLEET: Rules(
        path=("resourceGroupName", "fleetName"),
        force_new=frozenset(
            {"location", "hubProfile.dnsPrefix", "hubProfile.apiServerAccessProfile", "hubProfile.agentProfile"}
        ),
        source=f"PUT .../fleets/{{fleetName}}; {fleet.SPEC}: TrackedResource.location and FleetHubProfile's "
        "dnsPrefix, apiServerAccessProfile, agentProfile x-ms-mutability [read, create]",
    ),
    fleet.FLEET_MEMBER: Rules(
        path=("resourceGroupName", "fleetName", "fleetMemberName"),
        force_new=frozenset({"clusterResourceId"}),
        source=f"PUT .../fleets/{{fleetName}}/members/{{fleetMemberName}}; {fleet.SPEC}: "
        "FleetMemberProperties.clusterResourceId x-ms-mutability [read, create]; group is mutable",
    ),
    fleet.UPDATE_STRATEGY: Rules(
        path=("resourceGroupName", "fleetName", "updateStrategyName"),
        source=f"PUT .../fleets/{{fleetName}}/updateStrategies/{{updateStrategyName}}; {fleet.SPEC}: "
        "strategy x-ms-mutability [read, update, create]",
    ),
    fleet.AUTO_UPGRADE_PROFILE: Rules(
        path=("resourceGroupName", "fleetName", "autoUpgradeProfileName"),
        force_new=frozenset({"updateStrategyId"}),
        source=f"PUT .../fleets/{{fleetName}}/autoUpgradeProfiles/{{autoUpgradeProfileName}}; {fleet.SPEC}: "
        "AutoUpgradeProfileProperties.updateStrategyId x-ms-mutability [read, create]",
    ),
    fleet.UPDATE_RUN: Rules(
        path=("resourceGroupName", "fleetName", "updateRunName"),
        source=f"PUT .../fleets/{{fleetName}}/updateRuns/{{updateRunName}}; {fleet.SPEC}",
    ),
}


def rules_for(type_token: str, inputs: dict[str, Any]) -> Rules:
    """The rules of `type_token`; an unlisted azure-native type gets the shape every ARM resource has."""
    if type_token in RULES:
        return RULES[type_token]
    if type_token.startswith("azure-native:"):
        # Every ARM resource lives under a resource group (or a scope) and is named by a `...Name` path
        # parameter; the heuristic picks those up from the inputs' names, `location` is create-only.
        names = tuple(k for k in inputs if k.endswith("Name") or k == "scope")
        return Rules(path=names, force_new=frozenset({"location"}), source="heuristic for an unlisted type")
    return Rules(path=(), source="no replace rules known")


def autonamed(type_token: str, old_inputs: dict[str, Any]) -> bool:
    """Whether azure-native auto-named the resource (its Check then stores `__createBeforeDelete: true`).

    The resource's own name is the last path parameter; a resource whose inputs never held it was named by
    the provider. Only then does azure-native create the replacement before deleting the old one.
    """
    rules = RULES.get(type_token)
    if not type_token.startswith("azure-native:") or not rules or not rules.path:
        return False
    name = rules.path[-1]
    return "." not in name and name not in old_inputs


# ---------------------------------------------------------------------------------------------- detailed diff


def detailed_diff(olds: dict[str, Any], news: dict[str, Any], replace_keys: frozenset[str]) -> dict[str, int]:
    """Path -> PropertyDiff kind, computed like azure-native's `differ` (diff.go)."""
    return _object_diff(olds, news, "", "", replace_keys)


def _object_diff(olds: dict, news: dict, diff_base: str, replace_base: str, keys: frozenset[str]) -> dict[str, int]:
    result: dict[str, int] = {}
    for key in olds.keys() | news.keys():
        path, replace_path = diff_base + key, replace_base + key
        if key not in olds:
            result[path] = Kind.ADD_REPLACE if replace_path in keys else Kind.ADD
        elif key not in news:
            result[path] = Kind.DELETE_REPLACE if replace_path in keys else Kind.DELETE
        elif not _same(olds[key], news[key]):
            result.update(_value_diff(olds[key], news[key], path, replace_path, keys))
    return result


def _value_diff(old: Any, new: Any, diff_base: str, replace_base: str, keys: frozenset[str]) -> dict[str, int]:
    if isinstance(old, dict) and isinstance(new, dict):
        sub = _object_diff(old, new, diff_base + ".", replace_base + ".", keys)
        if replace_base in keys:
            # "If the parent property causes a replacement, all child properties cause a replacement."
            sub = {k: Kind.UPDATE_REPLACE if v == Kind.UPDATE else v for k, v in sub.items()}
        return sub
    if isinstance(old, list) and isinstance(new, list):
        result: dict[str, int] = {}
        for index in range(max(len(old), len(new))):
            path = f"{diff_base}[{index}]"
            if index >= len(old):
                result[path] = Kind.ADD
            elif index >= len(new):
                result[path] = Kind.DELETE
            elif not _same(old[index], new[index]):
                result.update(_value_diff(old[index], new[index], path, replace_base + "[]", keys))
        return result
    return {diff_base: Kind.UPDATE_REPLACE if replace_base in keys else Kind.UPDATE}


def _same(old: Any, new: Any) -> bool:
    # An unknown new value is a change (pulumi's PropertyValue.Diff treats computed values as different).
    if new == UNKNOWN:
        return False
    return bool(old == new)


def apply_azure_specific_diff(olds: dict[str, Any], news: dict[str, Any]) -> None:
    """azure-native's `applyAzureSpecificDiff` (diff.go): top-level changes that are no change in Azure.

    `resourceGroupName` compares case-insensitively, `location` ignoring case and spaces ("West Europe" ==
    "westeurope"), and an AKS `sku` {name, tier} treats Basic/Base and Paid/Standard as the same. The old
    value is set to the new one so the differ sees no change.
    """
    for key in ("resourceGroupName", "location"):
        old, new = olds.get(key), news.get(key)
        if isinstance(old, str) and isinstance(new, str) and _norm(old) == _norm(new):
            olds[key] = new
    old_sku, new_sku = olds.get("sku"), news.get("sku")
    if isinstance(old_sku, dict) and isinstance(new_sku, dict) and set(old_sku) == set(new_sku) == {"name", "tier"}:
        same = {("Basic", "Base"), ("Base", "Basic"), ("Paid", "Standard"), ("Standard", "Paid")}
        if all(old_sku[k] == new_sku[k] or (old_sku[k], new_sku[k]) in same for k in ("name", "tier")):
            olds["sku"] = new_sku


def _norm(text: str) -> str:
    return text.replace(" ", "").lower()


def is_replacement(kind: int) -> bool:
    return kind in (Kind.ADD_REPLACE, Kind.DELETE_REPLACE, Kind.UPDATE_REPLACE)


# ---------------------------------------------------------------------------------------------- ARM Keys PUT


class KeyCreationParametersDidNotMatch(Exception):
    """ARM's 400 `KeyCreationParametersDidNotMatchExistingKey` for a Keys PUT on an existing key."""


def key_reput(existing: dict[str, Any], new_inputs: dict[str, Any]) -> None:
    """What ARM's `Keys_CreateIfNotExist` does when the PUT names a key that already exists.

    Sources: the REST spec's operation description ("Creates the first version of a new key if it does not
    exist. If it already exists, then the existing key is returned without any write operations being
    performed. This API does not create subsequent versions, and does not update existing keys."), and the
    error ARM returns when the parameters it compares differ (Azure/bicep#8283, Azure/bicep-types-az#1906):
    `KeyCreationParametersDidNotMatchExistingKey ... The existing key has an expiration date of '...', which
    doesn't match the given expiration date '...'`. Expiry is the documented case; key type, size and curve
    are modelled as compared too (they are the key's creation parameters). Anything else (key ops,
    enabled, rotation policy, tags) is silently ignored: the caller returns the OLD key state.
    Raises `KeyCreationParametersDidNotMatch` with ARM's message when a compared parameter differs.
    """
    props = new_inputs.get("properties", {}) or {}
    name = existing.get("name")
    old_attrs, new_attrs = existing.get("attributes", {}) or {}, props.get("attributes", {}) or {}
    mismatches = []
    if "expires" in new_attrs and new_attrs.get("expires") != old_attrs.get("expires"):
        mismatches.append(
            f"The existing key has an expiration date of '{_when(old_attrs.get('expires'))}', which doesn't "
            f"match the given expiration date '{_when(new_attrs.get('expires'))}'."
        )
    if "notBefore" in new_attrs and new_attrs.get("notBefore") != old_attrs.get("notBefore"):
        mismatches.append("The existing key has a different activation date (nbf).")
    for prop, label in (("kty", "key type"), ("keySize", "key size"), ("curveName", "curve name")):
        if prop in props and props[prop] != existing.get(prop):
            old, new = _text(existing.get(prop)), _text(props[prop])
            mismatches.append(f"The existing key has {label} '{old}', not '{new}'.")
    if mismatches:
        raise KeyCreationParametersDidNotMatch(
            "[KeyCreationParametersDidNotMatchExistingKey (BadRequest)] "
            f"The key '{name}' already exists, but the specified key creation parameters did not match that of "
            f"the existing key ({' '.join(mismatches)}). This API can only be used for creating the first version "
            "of a new key (no subsequent versions can be created, and existing keys cannot be updated)."
        )


def _text(value: Any) -> str:
    # Numbers arrive as floats on the wire (google.protobuf.Struct); ARM prints key sizes as integers.
    return str(int(value)) if isinstance(value, float) and value.is_integer() else str(value)


def _when(epoch: Any) -> str:
    if epoch is None:
        return "none"
    return datetime.datetime.fromtimestamp(float(epoch), tz=datetime.UTC).strftime("%-m/%-d/%Y %-I:%M:%S %p")
