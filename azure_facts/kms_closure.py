"""The KMS closure: every resource a cluster's KMS etcd encryption depends on, computed one way for both gates.

The plan guard (`kms-aks guard`, over a `pulumi preview --json`) and the policy pack (over the desired state) both
call `compute` with plain `Resource` records (URN, type token, properties), so both agree on what belongs to a
cluster's KMS. The closure holds:

- every ManagedCluster (a cluster without KMS can gain it in place, so it is never left out);
- the key each cluster's `keyId` names and the vault that holds it; a stack that holds vaults and keys but no
  cluster keeps all of them in its closure (a cluster in another stack may use them: `external_cluster`);
- the KMS identity: every user-assigned identity a cluster names;
- every grant that could give that identity access to the key: any AccessPolicy on a closure vault (Key Vault keeps
  ONE entry per object id, so a grant for another principal that moves to the KMS identity's object id overwrites
  its entry, and deleting it deletes the entry: the AccessPolicyEntry docs, "The object ID must be unique for the
  list of access policies"); any RoleAssignment whose scope contains a closure vault or key (Azure RBAC scopes are
  a parent-child hierarchy, management group > subscription > resource group > resource, and lower levels inherit
  from higher ones: learn.microsoft.com/azure/role-based-access-control/scope-overview), or whose principal is the
  KMS identity's; the vault's own inline `properties.accessPolicies` (the vault is in the closure);
- the resource groups that contain any of these (deleting a group deletes everything in it, `protect` or not);
- what fences or attaches to a closure vault: network security perimeter associations, private endpoints and
  their DNS zone groups, private DNS zones for Key Vault and their links, management locks;
- stand-ins: resources whose meaning the gates cannot establish but which could create, change or replace a
  closure member: the classic `azure` provider's equivalents, a cluster of an unknown package, azure-native's
  generic `resources:Resource` and ARM template `Deployment`s that touch Key Vault, AKS, managed identities or
  authorization. A gate refuses a stand-in it cannot judge (`Closure.stand_ins`).

Values the gates cannot see (an unknown at preview, a masked secret) never shrink the closure: an unknown key id
puts every vault and key in it, an unknown scope or vault name puts the grant in it, and so on.

Standard library only: the policy pack imports this (see `azure_facts/__init__.py`).
"""

from __future__ import annotations

import re
from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field
from typing import Any

from azure_facts import KEY_URL
from azure_facts.property_paths import MASKED, UNKNOWN_SENTINELS, dig, unseen, unwrap
from azure_facts.tokens import (
    ACCESS_POLICY,
    KEY,
    MANAGED_CLUSTER,
    ROLE_ASSIGNMENT,
    USER_ASSIGNED_IDENTITY,
    VAULT,
    UnrecognisedKmsToken,
    canonical_type,
)

RESOURCE_GROUP = "azure-native:resources:ResourceGroup"
GENERIC_RESOURCE = "azure-native:resources:Resource"
# ARM template deployments at every scope azure-native offers.
DEPLOYMENTS = frozenset(
    {
        "azure-native:resources:Deployment",
        "azure-native:resources:DeploymentAtScope",
        "azure-native:resources:DeploymentAtSubscriptionScope",
        "azure-native:resources:DeploymentAtManagementGroupScope",
        "azure-native:resources:DeploymentAtTenantScope",
    }
)
NSP_ASSOCIATION = "azure-native:network:NspAssociation"
PRIVATE_ENDPOINT = "azure-native:network:PrivateEndpoint"
PRIVATE_DNS_ZONE_GROUP = "azure-native:network:PrivateDnsZoneGroup"
PRIVATE_ZONE = "azure-native:network:PrivateZone"
VIRTUAL_NETWORK_LINK = "azure-native:network:VirtualNetworkLink"
PRIVATE_ENDPOINT_CONNECTION = "azure-native:keyvault:PrivateEndpointConnection"
MANAGEMENT_LOCKS = frozenset(
    {
        "azure-native:authorization:ManagementLockAtResourceGroupLevel",
        "azure-native:authorization:ManagementLockAtResourceLevel",
        "azure-native:authorization:ManagementLockAtSubscriptionLevel",
        "azure-native:authorization:ManagementLockByScope",
    }
)
FENCE_TYPES = frozenset(
    {
        NSP_ASSOCIATION,
        "azure-native:network:NetworkSecurityPerimeterAssociation",
        PRIVATE_ENDPOINT,
        PRIVATE_DNS_ZONE_GROUP,
        PRIVATE_ZONE,
        VIRTUAL_NETWORK_LINK,
        PRIVATE_ENDPOINT_CONNECTION,
        *MANAGEMENT_LOCKS,
    }
)
# Key Vault's private DNS zone (public cloud, China, US Government).
KEY_VAULT_PRIVATE_ZONES = (
    "privatelink.vaultcore.azure.net",
    "privatelink.vaultcore.azure.cn",
    "privatelink.vaultcore.usgovcloudapi.net",
)

# The resource providers whose resources can create, change or stand in for a closure member.
KMS_PROVIDER_NAMESPACES = frozenset(
    {"microsoft.keyvault", "microsoft.containerservice", "microsoft.authorization", "microsoft.managedidentity"}
)
# The classic `azure` (Terraform-bridged) provider's modules for the same Azure resources.
CLASSIC_KMS_MODULES = frozenset({"keyvault", "containerservice", "authorization", "core", "management"})
# Resource names (case-folded) that are a Kubernetes cluster in any package.
CLUSTER_NAMES = frozenset({"managedcluster", "kubernetescluster"})

# Every azure-native type the closure may hold (stand-ins are found by `classify` and `_generic_touches_kms`).
CLOSURE_CANDIDATE_TYPES = frozenset(
    {
        MANAGED_CLUSTER,
        VAULT,
        KEY,
        USER_ASSIGNED_IDENTITY,
        ACCESS_POLICY,
        ROLE_ASSIGNMENT,
        RESOURCE_GROUP,
        GENERIC_RESOURCE,
        *DEPLOYMENTS,
        *FENCE_TYPES,
    }
)

ROLES = ("cluster", "key", "vault", "identity", "grant", "resource-group", "fence", "stand-in")


@dataclass(frozen=True)
class Resource:
    """One resource as a gate sees it: its URN, type token as written, and properties (inputs, else outputs).

    `outputs` and `resource_id` are what a preview's state also shows (the refreshed values, the ARM id);
    `dependencies` are the URNs it depends on, when the gate knows them.
    """

    urn: str
    type: str
    properties: Mapping[str, Any]
    outputs: Mapping[str, Any] | None = None
    resource_id: str | None = None
    dependencies: tuple[str, ...] = ()


@dataclass(frozen=True)
class Member:
    """A closure member: its role and why it belongs."""

    urn: str
    role: str
    canonical: str
    because: str


@dataclass
class Closure:
    """What a stack's KMS depends on, by URN."""

    members: dict[str, Member] = field(default_factory=dict)
    # True when the stack holds vaults or keys but no cluster: a cluster elsewhere is assumed to use them.
    external_cluster: bool = False
    # The KMS identities' principal ids (lower case), as far as they are known.
    principals: set[str] = field(default_factory=set)
    # Why the principal view may be incomplete (unknown identity, identity not shown).
    principal_gaps: list[str] = field(default_factory=list)

    def role(self, urn: str) -> str | None:
        member = self.members.get(urn)
        return member.role if member else None

    def stand_ins(self) -> list[Member]:
        return [m for m in self.members.values() if m.role == "stand-in"]

    def __contains__(self, urn: object) -> bool:
        return urn in self.members


# --------------------------------------------------------------------------------------------- values

# Values are read through `azure_facts.property_paths` (`dig`, `unseen`, `unwrap`): one reading for both gates.


def _text(value: Any) -> str | None:
    return value.lower() if isinstance(value, str) and not unseen(value) else None


def _segments(resource_id: Any) -> dict[str, str]:
    """ARM id segments, keys case-folded: {'subscriptions': ..., 'resourcegroups': ..., 'vaults': ...}."""
    if not isinstance(resource_id, str) or unseen(resource_id):
        return {}
    parts = [p for p in resource_id.split("/") if p]
    return {parts[i].lower(): parts[i + 1].lower() for i in range(0, len(parts) - 1, 2)}


def scope_contains(scope: Any, resource_id: str) -> bool | None:
    """Whether an RBAC `scope` contains `resource_id` (an ARM id); None when the scope cannot be read.

    Scopes are a parent-child hierarchy (management group > subscription > resource group > resource) and a role
    assigned at a scope applies to everything below it (learn.microsoft.com/azure/role-based-access-control/
    scope-overview). A management group's membership is not visible in a stack, so a management-group scope is
    taken to contain everything (it may: fail closed), as is the root scope `/`.
    """
    if not isinstance(scope, str) or unseen(scope):
        return None
    folded = scope.rstrip("/").lower()
    if folded == "" or folded.startswith("/providers/microsoft.management/managementgroups/"):
        return True
    target = resource_id.rstrip("/").lower()
    return target == folded or target.startswith(folded + "/")


# ---------------------------------------------------------------------------------------------- types


def classify(token: str) -> tuple[str, str | None]:
    """(canonical type, stand-in reason or None) for a token as written.

    A KMS-relevant token in a form not understood is read as the type it names; a classic-provider or
    unknown-package cluster, key, vault, grant or identity is a stand-in.
    """
    try:
        canonical = canonical_type(token)
    except UnrecognisedKmsToken as error:
        return error.canonical, None
    package, _, rest = canonical.partition(":")
    module, _, name = rest.rpartition(":")
    module_root = module.split("/")[0].lower()
    if package == "azure" and module_root in CLASSIC_KMS_MODULES:
        return canonical, (
            "a classic `azure` provider resource for Key Vault, AKS or authorization: the gates judge only "
            "azure-native's types. Declare it through azure-native (`pulumi_azure_native`)"
        )
    if name.lower() in CLUSTER_NAMES and package not in ("azure-native",):
        return canonical, (
            f"a Kubernetes cluster of package {package!r}, whose KMS settings the gates cannot read. Declare the "
            "cluster as azure-native's containerservice.ManagedCluster"
        )
    return canonical, None


def _generic_touches_kms(canonical: str, properties: Mapping[str, Any]) -> str | None:
    """Why a generic resource or ARM deployment could stand in for a closure member, or None if it cannot."""
    if canonical == GENERIC_RESOURCE:
        namespace = dig(properties, "resourceProviderNamespace")
        if unseen(namespace) or namespace is None:
            return "a generic resources:Resource whose resource provider cannot be read"
        if str(namespace).lower() in KMS_PROVIDER_NAMESPACES:
            return f"a generic resources:Resource of {namespace}, whose properties the gates cannot judge"
        return None
    if canonical in DEPLOYMENTS:
        template = dig(properties, "properties", "template")
        link = dig(properties, "properties", "templateLink")
        if link is not None or template is None or unseen(template):
            return "an ARM template deployment whose template cannot be read (linked, unknown or masked)"
        text = repr(template).lower()
        touched = sorted(ns for ns in KMS_PROVIDER_NAMESPACES if ns in text)
        if touched:
            return f"an ARM template deployment that declares {', '.join(touched)} resources the gates cannot judge"
        return None
    return None


# -------------------------------------------------------------------------------------------- compute


@dataclass
class _Known:
    clusters: list[Resource] = field(default_factory=list)
    vaults: list[Resource] = field(default_factory=list)
    keys: list[Resource] = field(default_factory=list)
    identities: list[Resource] = field(default_factory=list)
    access_policies: list[Resource] = field(default_factory=list)
    role_assignments: list[Resource] = field(default_factory=list)
    groups: list[Resource] = field(default_factory=list)
    fences: list[tuple[Resource, str]] = field(default_factory=list)


def compute(resources: Iterable[Resource], *, external_cluster: bool | None = None) -> Closure:
    """The closure of `resources` (one record per state: a preview step may give an old and a new one).

    `external_cluster` is the stack config's word on whether a cluster outside the stack uses its vaults and keys
    (`kms-aks:keyServesExternalCluster`); None means: assume so when the stack holds no cluster.
    """
    closure = Closure()
    known = _Known()
    for resource in resources:
        canonical, stand_in = classify(resource.type)
        props = resource.properties or {}
        if stand_in is None:
            stand_in = _generic_touches_kms(canonical, props)
        if stand_in is not None:
            _add(closure, resource, "stand-in", canonical, stand_in)
            continue
        if canonical == MANAGED_CLUSTER:
            known.clusters.append(resource)
        elif canonical == VAULT:
            known.vaults.append(resource)
        elif canonical == KEY:
            known.keys.append(resource)
        elif canonical == USER_ASSIGNED_IDENTITY:
            known.identities.append(resource)
        elif canonical == ACCESS_POLICY:
            known.access_policies.append(resource)
        elif canonical == ROLE_ASSIGNMENT:
            known.role_assignments.append(resource)
        elif canonical == RESOURCE_GROUP:
            known.groups.append(resource)
        elif canonical in FENCE_TYPES:
            known.fences.append((resource, canonical))

    # Clusters, and the keys and vaults they name.
    wanted_keys: set[tuple[str, str]] = set()
    any_key = False
    identity_names: set[str] = set()
    any_identity = False
    for cluster in known.clusters:
        _add(closure, cluster, "cluster", MANAGED_CLUSTER, "a cluster (with KMS, or able to gain it in place)")
        for props in _views(cluster):
            key_id = dig(props, "securityProfile", "azureKeyVaultKms", "keyId")
            if unseen(key_id) or unseen(dig(props, "securityProfile", "azureKeyVaultKms")):
                any_key = True
            elif isinstance(key_id, str) and (match := KEY_URL.match(key_id.strip())):
                wanted_keys.add((match["vault"].lower(), match["name"].lower()))
            ids = dig(props, "identity", "userAssignedIdentities")
            listed = list(ids) if isinstance(ids, Mapping | list) else []
            if unseen(ids) or unseen(dig(props, "identity")) or any(unseen(unwrap(i)) for i in listed):
                any_identity = True
            for identity_id in listed:
                if isinstance(identity_id := unwrap(identity_id), str) and not unseen(identity_id):
                    identity_names.add(identity_id.rstrip("/").rsplit("/", 1)[-1].lower())
    if known.clusters:
        closure.external_cluster = bool(external_cluster)
    else:
        closure.external_cluster = external_cluster is not False and bool(known.vaults or known.keys)
    everything = any_key or closure.external_cluster

    vault_names: set[str] = {vault for vault, _ in wanted_keys}
    for key in known.keys:
        vault, name = _text(dig(key.properties, "vaultName")), _text(dig(key.properties, "keyName"))
        if everything or vault is None or name is None or (vault, name) in wanted_keys:
            why = (
                "the key a cluster's keyId names"
                if (vault, name) in wanted_keys
                else (
                    "a key a cluster elsewhere may use"
                    if closure.external_cluster
                    else "a key that cannot be cleared (unknown key id or names)"
                )
            )
            _add(closure, key, "key", KEY, why)
            if vault is not None:
                vault_names.add(vault)
    any_vault = everything
    for vault in known.vaults:
        name = _text(dig(vault.properties, "vaultName"))
        if any_vault or name is None or name in vault_names:
            _add(closure, vault, "vault", VAULT, "the vault that holds a closure key")
            if name is not None:
                vault_names.add(name)
            else:
                any_vault = True

    # The KMS identities and their principals (a preview shows an identity twice: old state with outputs, new
    # state without; its principal is known when any of its records shows it).
    principals_by_urn: dict[str, set[str]] = {}
    for identity in known.identities:
        name = _text(dig(identity.properties, "resourceName")) or _text(dig(identity.outputs, "name"))
        if any_identity or name is None or name in identity_names:
            _add(closure, identity, "identity", USER_ASSIGNED_IDENTITY, "an identity a cluster uses (the KMS one)")
            found = principals_by_urn.setdefault(identity.urn, set())
            principal = dig(identity.outputs, "principalId")
            if isinstance(principal, str) and not unseen(principal):
                found.add(principal.lower())
    for urn, found in principals_by_urn.items():
        closure.principals |= found
        if not found:
            closure.principal_gaps.append(f"the principal of identity {urn} is not known")
    if any_identity:
        closure.principal_gaps.append("a cluster's identity is not known")
    shown = {(_text(dig(i.properties, "resourceName")) or "") for i in known.identities}
    for missing in sorted(identity_names - shown):
        closure.principal_gaps.append(f"the cluster's identity {missing} is not in this view")
    if closure.external_cluster:
        closure.principal_gaps.append("a cluster in another stack may use this stack's key, with its own identity")

    # Grants.
    for policy in known.access_policies:
        vault = _text(dig(policy.properties, "vaultName"))
        if any_vault or vault is None or vault in vault_names:
            _add(
                closure, policy, "grant", ACCESS_POLICY, "an access policy on a closure vault (one entry per principal)"
            )
    member_ids = _member_ids(closure, known)
    key_groups = {
        g
        for r in [*known.vaults, *known.keys]
        if r.urn in closure.members
        for g in [_text(dig(r.properties, "resourceGroupName"))]
        if g is not None
    }
    for assignment in known.role_assignments:
        scope = dig(assignment.properties, "scope")
        principal = dig(assignment.properties, "principalId")
        if (
            _grant_scope_covers(scope, member_ids, vault_names, key_groups)
            or not isinstance(principal, str)
            or (unseen(principal) or principal.lower() in closure.principals)
        ):
            _add(
                closure,
                assignment,
                "grant",
                ROLE_ASSIGNMENT,
                "a role assignment whose scope contains a closure "
                "vault or key, or that may be held by the KMS identity",
            )

    # Resource groups that contain any member.
    group_names: set[str] = set()
    any_group = False
    for member in list(closure.members.values()):
        for resource in _by_urn(known, member.urn):
            group = dig(resource.properties, "resourceGroupName")
            if group is None:
                group = _segments(dig(resource.properties, "scope")).get("resourcegroups")
            if unseen(group):
                any_group = True
            elif isinstance(group, str):
                group_names.add(group.lower())
    for group in known.groups:
        name = _text(dig(group.properties, "resourceGroupName")) or _text(dig(group.outputs, "name"))
        if any_group or name is None or name in group_names:
            _add(closure, group, "resource-group", RESOURCE_GROUP, "a resource group that contains closure members")

    # Fences and attachments of a closure vault.
    for fence, canonical in known.fences:
        if _fences(fence, canonical, vault_names, group_names, any_vault):
            _add(closure, fence, "fence", canonical, "fences or attaches to a closure vault")
    return closure


def _views(resource: Resource) -> list[Mapping[str, Any]]:
    return [v for v in (resource.properties, resource.outputs) if v]


def _add(closure: Closure, resource: Resource, role: str, canonical: str, because: str) -> None:
    if resource.urn not in closure.members or role == "stand-in":
        closure.members[resource.urn] = Member(resource.urn, role, canonical, because)


def _by_urn(known: _Known, urn: str) -> list[Resource]:
    pools: list[Iterable[Resource]] = [
        known.clusters,
        known.vaults,
        known.keys,
        known.identities,
        known.access_policies,
        known.role_assignments,
    ]
    return [r for pool in pools for r in pool if r.urn == urn]


def _member_ids(closure: Closure, known: _Known) -> list[str]:
    """ARM ids of the closure vaults and keys, where the view shows them (a preview's state; not a new one)."""
    ids: list[str] = []
    for resource in [*known.vaults, *known.keys]:
        if resource.urn not in closure.members:
            continue
        rid = resource.resource_id or dig(resource.outputs, "id")
        if isinstance(rid, str) and not unseen(rid):
            ids.append(rid)
    return ids


def _grant_scope_covers(scope: Any, member_ids: list[str], vault_names: set[str], key_groups: set[str]) -> bool:
    """Whether a role assignment's scope contains (or cannot be cleared of containing) a closure vault or key."""
    if any(scope_contains(scope, rid) is not False for rid in member_ids):
        return True
    if not isinstance(scope, str) or unseen(scope):
        return True
    segments = _segments(scope)
    folded = scope.rstrip("/").lower()
    if folded == "" or folded.startswith("/providers/microsoft.management/managementgroups/"):
        return True  # contains every subscription below it, which the stack cannot see
    if "vaults" in segments:
        return segments["vaults"] in vault_names
    if "providers" in folded.split("/"):
        return False  # another resource: it contains no vault
    if "resourcegroups" in segments:
        return segments["resourcegroups"] in key_groups
    # A subscription scope: it contains the vault unless the ids show the vault in another subscription.
    subscription = segments.get("subscriptions")
    return not member_ids or any(_segments(rid).get("subscriptions") == subscription for rid in member_ids)


_VAULT_IN_ID = re.compile(r"/providers/microsoft\.keyvault/vaults/([a-z0-9-]+)", re.IGNORECASE)


def _fences(fence: Resource, canonical: str, vault_names: set[str], groups: set[str], any_vault: bool) -> bool:
    """Whether a fence type's resource attaches to a closure vault (or cannot be cleared of it)."""
    text = repr(fence.properties).lower()
    if any(s in text for s in UNKNOWN_SENTINELS) or MASKED in text:
        return True
    if canonical in (PRIVATE_ZONE, VIRTUAL_NETWORK_LINK):
        return any(zone in text for zone in KEY_VAULT_PRIVATE_ZONES)
    if canonical in MANAGEMENT_LOCKS:
        group = _text(dig(fence.properties, "resourceGroupName"))
        scope = _text(dig(fence.properties, "scope"))
        return (
            (group is not None and group in groups)
            or any_vault
            or bool(scope and (_VAULT_IN_ID.search(scope) or scope.count("/") <= 2))
            or canonical == "azure-native:authorization:ManagementLockAtSubscriptionLevel"
        )
    if canonical == PRIVATE_ENDPOINT_CONNECTION:
        vault = _text(dig(fence.properties, "vaultName"))
        return any_vault or vault is None or vault in vault_names
    vaults = {m.group(1).lower() for m in _VAULT_IN_ID.finditer(text)}
    return any_vault or bool(vaults & vault_names) or (canonical == PRIVATE_DNS_ZONE_GROUP and "vaultcore" in text)
