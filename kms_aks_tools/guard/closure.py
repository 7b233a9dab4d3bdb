"""The guard's side of the KMS closure: a preview's steps as `azure_facts.kms_closure` records, the property paths
a step changes, and the rule that refuses every change on the closure that neither the known-safe list nor a
named rule covers (`unreviewed-kms-change`).
"""

from __future__ import annotations

from collections.abc import Iterable, Iterator, Mapping, Sequence
from typing import Any

from azure_facts.engine import UNKNOWN
from azure_facts.kms_closure import Closure, Member, Resource, compute
from kms_aks_tools.guard.known_safe import known_safe
from kms_aks_tools.preview.model import MASKED_SECRET, MISSING, Step, lookup, split_property_path, unwrap_secret

UNREVIEWED_RULE = "unreviewed-kms-change"
UNVERIFIABLE_RULE = "unverifiable-update"
# Ops that change nothing on the resource they name.
UNCHANGING_OPS = frozenset({"same", "read", "refresh"})

Path = tuple[str, ...]


def closure_of(judged: Sequence[tuple[Step, str]], external_cluster: bool | None = None) -> Closure:
    """The KMS closure of a preview: one record per state (old and new) of every step, typed as judged."""
    records: list[Resource] = []
    for step, resource_type in judged:
        for state in (step.oldState, step.newState):
            if state is None:
                continue
            records.append(
                Resource(
                    urn=step.urn,
                    type=resource_type,
                    properties=state.properties() or {},
                    outputs=state.outputs,
                    resource_id=state.id,
                )
            )
        if step.oldState is None and step.newState is None:
            # Nothing of it can be read: every value the closure needs is unknown (`dig` reads through it).
            records.append(Resource(urn=step.urn, type=resource_type, properties=UNKNOWN))  # type: ignore[arg-type]
    return compute(records, external_cluster=external_cluster)


def _leaves(value: Any, path: Path) -> Iterator[Path]:
    value = unwrap_secret(value)
    if isinstance(value, Mapping) and value:
        for key, item in value.items():
            yield from _leaves(item, (*path, str(key)))
    elif isinstance(value, list) and value:
        for index, item in enumerate(value):
            yield from _leaves(item, (*path, str(index)))
    else:
        yield path


def _diff(old: Any, new: Any, path: Path) -> Iterator[Path]:
    """The deepest paths at which `old` and `new` differ (a value added or removed counts at each of its leaves)."""
    old, new = unwrap_secret(old), unwrap_secret(new)
    if old == new:
        return
    if isinstance(old, Mapping) and isinstance(new, Mapping):
        for key in sorted(set(old) | set(new)):
            yield from _diff(old.get(key, MISSING), new.get(key, MISSING), (*path, str(key)))
    elif isinstance(old, list) and isinstance(new, list) and len(old) == len(new):
        for index, (a, b) in enumerate(zip(old, new, strict=True)):
            yield from _diff(a, b, (*path, str(index)))
    elif old is MISSING and isinstance(new, Mapping | list) and new:
        yield from _leaves(new, path)
    elif new is MISSING and isinstance(old, Mapping | list) and old:
        yield from _leaves(old, path)
    else:
        yield path


def changed_paths(step: Step) -> list[Path] | None:
    """Every property path the step changes, in the inputs, the outputs and the detailed diff; None when the
    preview shows nothing of what changes (no states to compare, no detailedDiff, no diffReasons)."""
    found: dict[Path, None] = {}
    old, new = step.oldState, step.newState
    readable = False
    if old is not None and new is not None:
        if old.inputs and new.inputs:
            found.update(dict.fromkeys(_diff(old.inputs, new.inputs, ())))
            readable = True
        elif not old.inputs and not new.inputs and old.outputs and new.outputs:
            readable = True
        if old.outputs and new.outputs:
            found.update(dict.fromkeys(_diff(old.outputs, new.outputs, ())))
    for key in step.detailedDiff or {}:
        found[split_property_path(key)] = None
        readable = True
    if not readable:
        for key in step.diffReasons or []:
            found[split_property_path(key)] = None
            readable = True
    return [p for p in found if p] if readable else None


def _hidden(step: Step, path: Path) -> str | None:
    """'masked' or 'unknown' when the value at `path` cannot be read in either state."""
    for state in (step.oldState, step.newState):
        for props in (state.inputs, state.outputs) if state else ():
            value = lookup(props, path)
            if value == MASKED_SECRET or (isinstance(value, dict | list) and MASKED_SECRET in repr(value)):
                return "masked"
            if value == UNKNOWN:
                return "unknown until apply"
    return None


def unreviewed_findings(
    step: Step,
    member: Member,
    judged_paths: Iterable[Path],
    refused_paths: Iterable[Path],
) -> Iterator[tuple[str, str, str, bool]]:
    """(rule, path, message, overridable) for each change on a closure member that nothing judges.

    `judged_paths`: what the named rules watch on this type (a change at or below one is theirs);
    `refused_paths`: where the named rules already refused this step (no second finding at or below them).
    """
    if step.op in UNCHANGING_OPS:
        return
    role = member.role
    if role == "stand-in":
        yield (
            UNREVIEWED_RULE,
            f"op={step.op}",
            f"`{step.op}` on {member.because}. It can create, change or replace what the cluster's KMS depends on, "
            "and the guard cannot judge it: express it as the azure-native resource it stands for. "
            + _hint(step.urn, f"op={step.op}"),
            True,
        )
        return
    if role == "fence" and step.op != "update":
        yield (
            UNREVIEWED_RULE,
            f"op={step.op}",
            f"`{step.op}` on a {member.canonical.rsplit(':', 1)[-1]} that {member.because}: network security "
            "perimeters, private endpoints and their DNS, and locks decide whether the KMS plugin reaches the key "
            "(an Enforced perimeter or a removed endpoint cuts it off). Review it against the cluster's "
            "keyVaultNetworkAccess. " + _hint(step.urn, f"op={step.op}"),
            True,
        )
        return
    if step.op != "update":
        return  # create, delete and replace of the other roles are the named rules' (destructive-op, grants)
    paths = changed_paths(step)
    if paths is None:
        yield (
            UNVERIFIABLE_RULE,
            "(whole resource)",
            f"an update of a KMS closure member ({member.because}) with no old/new state, no detailedDiff and no "
            "diffReasons: the guard cannot tell what changes, so it refuses.",
            False,
        )
        return
    judged = list(judged_paths)
    refused = list(refused_paths)
    for path in paths:
        new_value = lookup(step.newState.inputs if step.newState else None, path)
        if known_safe(member.canonical, path, new_value) is not None:
            continue
        if any(path[: len(w)] == w for w in judged) or any(path[: len(r)] == r for r in refused):
            continue
        shown = ".".join(path)
        hidden = _hidden(step, path)
        why = f"its value is {hidden} in the preview, so " if hidden else ""
        yield (
            UNREVIEWED_RULE,
            shown,
            f"{shown} changes on a KMS closure member ({member.because}); {why}no named rule judges it and it is "
            "not on the known-safe list (docs/ci-and-state.md). The guard refuses what it has not reviewed. "
            + _hint(step.urn, shown),
            True,
        )


def _hint(urn: str, path: str) -> str:
    return (
        f"If a reviewer has checked that this change leaves the cluster's access to its key intact, add "
        f"{{urn: '{urn}', rule: {UNREVIEWED_RULE}, at: '{path}', reason}} to transitions in the overrides file."
    )
