"""azure-native's own diff rules for the types this program uses, and ARM's answer to a Key re-PUT.

How azure-native diffs (pulumi/pulumi-azure-native `provider/pkg/provider/diff.go`,
`calculateDetailedDiff`, and `Diff` in `provider/pkg/provider/provider.go`):
- it diffs the OLD INPUTS (kept in the state under the secret `__inputs`, `checkpointObject`) with the
  new inputs, not old outputs with new inputs;
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

from dataclasses import dataclass, field
from typing import Any

from pulumi.runtime.proto import provider_pb2

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


# ARM path templates (azure-native metadata `path`, same as the REST API specs); `location` is create-only
# (`x-ms-mutability: [read, create]` on TrackedResource.location in the ARM common types), which azure-native's
# generator turns into `forceNew` (provider/pkg/gen/schema.go, `ForceNew: ... !isUpdatable`).
RULES: dict[str, Rules] = {
    "azure-native:resources:ResourceGroup": Rules(
        path=("resourceGroupName",),
        force_new=frozenset({"location"}),
        source="PUT /subscriptions/{subscriptionId}/resourcegroups/{resourceGroupName}",
    ),
    "azure-native:keyvault:Vault": Rules(
        path=("resourceGroupName", "vaultName"),
        force_new=frozenset({"location"}),
        source="PUT .../providers/Microsoft.KeyVault/vaults/{vaultName}",
    ),
    "azure-native:keyvault:Key": Rules(
        path=("resourceGroupName", "vaultName", "keyName"),
        force_new=frozenset(),
        source="PUT .../vaults/{vaultName}/keys/{keyName} (Keys_CreateIfNotExist)",
    ),
    "azure-native:managedidentity:UserAssignedIdentity": Rules(
        path=("resourceGroupName", "resourceName"),
        force_new=frozenset({"location"}),
        source="PUT .../providers/Microsoft.ManagedIdentity/userAssignedIdentities/{resourceName}",
    ),
    "azure-native:keyvault:AccessPolicy": Rules(
        path=("resourceGroupName", "vaultName"),
        force_new=frozenset(),
        source="custom resource (provider/pkg/resources/customresources/custom_keyvault.go)",
    ),
    "azure-native:authorization:RoleAssignment": Rules(
        path=("scope", "roleAssignmentName"),
        force_new=frozenset(),
        source="PUT /{scope}/providers/Microsoft.Authorization/roleAssignments/{roleAssignmentName}",
    ),
    "azure-native:containerservice:ManagedCluster": Rules(
        path=("resourceGroupName", "resourceName"),
        force_new=frozenset({"location"}),
        source="PUT .../providers/Microsoft.ContainerService/managedClusters/{resourceName}",
    ),
    "azure-native:network:VirtualNetwork": Rules(
        path=("resourceGroupName", "virtualNetworkName"),
        force_new=frozenset({"location"}),
        source="PUT .../providers/Microsoft.Network/virtualNetworks/{virtualNetworkName}",
    ),
    "azure-native:network:Subnet": Rules(
        path=("resourceGroupName", "virtualNetworkName", "subnetName"),
        source="PUT .../virtualNetworks/{virtualNetworkName}/subnets/{subnetName}",
    ),
    "azure-native:storage:StorageAccount": Rules(
        path=("resourceGroupName", "accountName"),
        force_new=frozenset({"location"}),
        source="PUT .../providers/Microsoft.Storage/storageAccounts/{accountName}",
    ),
    "azure-native:storage:BlobServiceProperties": Rules(
        path=("resourceGroupName", "accountName", "blobServicesName"),
        source="PUT .../storageAccounts/{accountName}/blobServices/{BlobServicesName}",
    ),
    "azure-native:storage:BlobContainer": Rules(
        path=("resourceGroupName", "accountName", "containerName"),
        source="PUT .../storageAccounts/{accountName}/blobServices/default/containers/{containerName}",
    ),
    # Bridged Terraform providers: replace keys are the schema's ForceNew attributes.
    "azuread:index/group:Group": Rules(
        path=(),
        force_new=frozenset({"assignableToRole", "onpremisesGroupType"}),
        source="terraform-provider-azuread internal/services/groups/group_resource.go (ForceNew)",
    ),
    "time:index/sleep:Sleep": Rules(
        path=(),
        force_new=frozenset({"triggers"}),
        source="terraform-provider-time internal/provider/resource_time_sleep.go (triggers: RequiresReplace)",
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


def name_parameter(type_token: str) -> str | None:
    rules = RULES.get(type_token)
    return rules.path[-1] if rules and rules.path and type_token.startswith("azure-native:") else None


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
            mismatches.append(f"The existing key has {label} '{existing.get(prop)}', not '{props[prop]}'.")
    if mismatches:
        raise KeyCreationParametersDidNotMatch(
            "[KeyCreationParametersDidNotMatchExistingKey (BadRequest)] "
            f"The key '{name}' already exists, but the specified key creation parameters did not match that of "
            f"the existing key ({' '.join(mismatches)}). This API can only be used for creating the first version "
            "of a new key (no subsequent versions can be created, and existing keys cannot be updated)."
        )


def _when(epoch: Any) -> str:
    if epoch is None:
        return "none"
    import datetime

    return datetime.datetime.fromtimestamp(float(epoch), tz=datetime.UTC).strftime("%-m/%-d/%Y %-I:%M:%S %p")
