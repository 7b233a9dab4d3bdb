"""The deployment order of a recorded stack: which cloud resources the engine can create together."""

from __future__ import annotations

from kms_aks_tools.recording import RecordedResource, RecordedStack


def cloud_dependencies(stack: RecordedStack) -> dict[str, list[str]]:
    """For each cloud (custom) resource, the cloud resources it waits for.

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
    for resource in stack.resources:
        if resource.custom:
            found: list[str] = []
            for dep in resource.dependencies:
                found.extend(d for d in expand(dep, set()) if d not in found and d != resource.urn)
            deps[resource.urn] = found
    return deps


def deployment_waves(stack: RecordedStack) -> list[list[RecordedResource]]:
    """Cloud resources grouped in waves: each wave needs only earlier ones, so it can be created in parallel.

    The number of waves is the length of the critical path.
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
    return waves


def critical_path(stack: RecordedStack) -> list[RecordedResource]:
    """One longest chain of cloud resources, each waiting for the one before."""
    waves = deployment_waves(stack)
    if not waves:
        return []
    deps = cloud_dependencies(stack)
    wave_of = {r.urn: i for i, wave in enumerate(waves) for r in wave}
    path = [waves[-1][0]]
    while wave_of[path[-1].urn] > 0:
        previous = next(d for d in deps[path[-1].urn] if wave_of[d] == wave_of[path[-1].urn] - 1)
        path.append(stack.by_urn()[previous])
    return list(reversed(path))
