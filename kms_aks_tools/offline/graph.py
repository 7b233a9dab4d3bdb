"""The deployment order of a recorded stack: which cloud resources the engine can create together.

Registration order is a race between outputs, so nothing here depends on it: every list is ordered by the
architecture (resource group, network, vault, key, identity, grants, cluster), then by name, then by URN.
The same program therefore always gives the same waves and the same critical path.
"""

from __future__ import annotations

from azure_facts.tokens import plain_type
from kms_aks_tools.offline.recording import RecordedResource, RecordedStack

# The order in which the architecture reads (`__main__.py`'s docstring); it breaks every tie.
ARCHITECTURE_ORDER: tuple[str, ...] = (
    "azure-native:resources:ResourceGroup",
    "azure-native:network:VirtualNetwork",
    "azure-native:network:Subnet",
    "azure-native:keyvault:Vault",
    "azure-native:keyvault:Key",
    "azure-native:managedidentity:UserAssignedIdentity",
    "azuread:index/group:Group",
    "azure-native:keyvault:AccessPolicy",
    "azure-native:authorization:RoleAssignment",
    "azure-native:containerservice:ManagedCluster",
)


def stable_key(resource: RecordedResource) -> tuple[int, str, str]:
    """Architecture order (of the plain type, whatever token form declared it), then name, then URN (unique): the
    one tie-breaker for every ordering."""
    try:
        rank = ARCHITECTURE_ORDER.index(plain_type(resource.type) or resource.type)
    except ValueError:
        rank = len(ARCHITECTURE_ORDER)  # a type the list does not know yet goes last, still by name
    return rank, resource.name, resource.urn


def cloud_dependencies(stack: RecordedStack) -> dict[str, list[str]]:
    """For each cloud (custom) resource, the cloud resources it waits for, in `stable_key` order.

    A dependency on a component stands for all the cloud resources inside it, as the engine treats it.
    """
    by_urn = stack.by_urn()
    children: dict[str, list[str]] = {}
    for resource in stack.resources:
        children.setdefault(resource.parent, []).append(resource.urn)

    def expand(urn: str, seen: set[str]) -> list[str]:
        resource = by_urn.get(urn)
        if resource is None or urn in seen:
            return []
        seen.add(urn)
        if resource.custom:
            return [urn]
        return [leaf for child in children.get(urn, []) for leaf in expand(child, seen)]

    deps: dict[str, list[str]] = {}
    for resource in sorted((r for r in stack.resources if r.custom), key=stable_key):
        found: set[str] = set()
        for dep in resource.dependencies:
            found.update(d for d in expand(dep, set()) if d != resource.urn)
        deps[resource.urn] = sorted(found, key=lambda urn: stable_key(by_urn[urn]))
    return deps


def deployment_waves(stack: RecordedStack) -> list[list[RecordedResource]]:
    """Cloud resources grouped in waves: each wave needs only earlier ones, so it can be created in parallel.

    The number of waves is the length of the critical path. Each wave is in `stable_key` order.
    """
    deps = cloud_dependencies(stack)
    by_urn = stack.by_urn()
    level: dict[str, int] = {}

    def level_of(urn: str, visiting: frozenset[str] = frozenset()) -> int:
        if urn not in level:
            if urn in visiting:
                raise ValueError(f"dependency cycle through {urn}")
            level[urn] = 1 + max((level_of(d, visiting | {urn}) for d in deps[urn]), default=-1)
        return level[urn]

    waves: list[list[RecordedResource]] = []
    for urn in deps:
        index = level_of(urn)
        while len(waves) <= index:
            waves.append([])
        waves[index].append(by_urn[urn])
    return [sorted(wave, key=stable_key) for wave in waves]


def critical_path(stack: RecordedStack) -> list[RecordedResource]:
    """One longest chain of cloud resources, each waiting for the one before.

    Several chains can be equally long; the chain chosen ends at the first resource of the last wave and
    steps back each time to the first (by `stable_key`) dependency in the wave before.
    """
    waves = deployment_waves(stack)
    if not waves:
        return []
    deps = cloud_dependencies(stack)
    by_urn = stack.by_urn()
    wave_of = {r.urn: i for i, wave in enumerate(waves) for r in wave}
    path = [waves[-1][0]]
    while wave_of[path[-1].urn] > 0:
        previous = next(d for d in deps[path[-1].urn] if wave_of[d] == wave_of[path[-1].urn] - 1)
        path.append(by_urn[previous])
    return list(reversed(path))
