"""Type tokens and graph queries over a recorded stack, for assertions about resources and their ordering."""

from __future__ import annotations

from kms_aks_tools.offline.graph import critical_path
from kms_aks_tools.offline.recording import RecordedResource, RecordedStack

CLUSTER = "azure-native:containerservice:ManagedCluster"
VAULT = "azure-native:keyvault:Vault"
KEY = "azure-native:keyvault:Key"
IDENTITY = "azure-native:managedidentity:UserAssignedIdentity"
ACCESS_POLICY = "azure-native:keyvault:AccessPolicy"
ROLE_ASSIGNMENT = "azure-native:authorization:RoleAssignment"
RESOURCE_GROUP = "azure-native:resources:ResourceGroup"
ENTRA_GROUP = "azuread:index/group:Group"
PRIVATE_ENDPOINT = "azure-native:network:PrivateEndpoint"
PRIVATE_ENDPOINT_CONNECTION = "azure-native:keyvault:PrivateEndpointConnection"
SECRET = "kubernetes:core/v1:Secret"
# The grant-propagation wait between the KMS identity's grants and the cluster (pulumiverse-time).
SLEEP = "time:index/sleep:Sleep"


def cloud_resources(stack: RecordedStack) -> list[RecordedResource]:
    return [r for r in stack.resources if r.custom]


def longest_chain(stack: RecordedStack) -> list[str]:
    """The names along the deployment's critical path."""
    return [r.name for r in critical_path(stack)]


def waits_for_propagation(stack: RecordedStack, resource: RecordedResource, grants: list[RecordedResource]) -> bool:
    """Whether `resource` waits directly for the propagation wait, and the wait directly for every one of `grants`."""
    wait = stack.one(SLEEP)
    return wait.urn in resource.dependencies and all(g.urn in wait.dependencies for g in grants)


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
