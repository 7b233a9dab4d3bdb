"""Graph queries over a recorded stack, for assertions about ordering and dependencies."""

from __future__ import annotations

from functools import cache

from kms_aks.recording import RecordedResource, RecordedStack

CLUSTER = "azure-native:containerservice:ManagedCluster"
VAULT = "azure-native:keyvault:Vault"
KEY = "azure-native:keyvault:Key"
IDENTITY = "azure-native:managedidentity:UserAssignedIdentity"
ACCESS_POLICY = "azure-native:keyvault:AccessPolicy"
ROLE_ASSIGNMENT = "azure-native:authorization:RoleAssignment"
RESOURCE_GROUP = "azure-native:resources:ResourceGroup"
ENTRA_GROUP = "azuread:index/group:Group"


def cloud_resources(stack: RecordedStack) -> list[RecordedResource]:
    return [r for r in stack.resources if r.custom]


def longest_chain(stack: RecordedStack) -> list[str]:
    """The longest path of cloud resources, each depending on the one before: the deployment's critical path."""
    by_urn = {r.urn: r for r in cloud_resources(stack)}

    @cache
    def chain_to(urn: str) -> tuple[str, ...]:
        deps = [d for d in by_urn[urn].dependencies if d in by_urn]
        best = max((chain_to(d) for d in deps), key=len, default=())
        return (*best, by_urn[urn].name)

    return list(max((chain_to(urn) for urn in by_urn), key=len, default=()))


def depends_on(stack: RecordedStack, resource: RecordedResource, other: RecordedResource) -> bool:
    """Whether `resource` waits for `other`, directly or through others."""
    by_urn = stack.by_urn()
    seen: set[str] = set()
    todo = list(resource.dependencies)
    while todo:
        urn = todo.pop()
        if urn == other.urn:
            return True
        if urn not in seen and urn in by_urn:
            seen.add(urn)
            todo.extend(by_urn[urn].dependencies)
    return False
