"""`unreviewed-kms-change` (and `unverifiable-update` on a closure member): the allowlist behind every named rule.

Protects whatever the cluster's KMS depends on that no named rule lists: on every step of a KMS closure member
(`azure_facts.kms_closure`), every property path that changes, in the inputs, the outputs or the detailed diff,
must be on the reviewed known-safe list (`guard/known_safe.py`) or judged by a named rule; anything else is
refused, overridable by a transition override with a reason. A masked or unknown value that changes is refused;
so is an update that shows nothing of what it changes, any op on a stand-in (a classic-provider or generic
resource standing for a KMS one), and a create, delete or replace of a fence (perimeter association, private
endpoint and its DNS, lock).
"""

from __future__ import annotations

from collections.abc import Iterable, Iterator

from azure_facts.engine import UNKNOWN
from azure_facts.findings import Finding
from azure_facts.kms_closure import Member
from azure_facts.property_paths import MASKED, Path, changed_leaves, lookup, split_property_path
from kms_aks_tools.guard.known_safe import known_safe
from kms_aks_tools.preview.model import Step

UNREVIEWED_RULE = "unreviewed-kms-change"
UNVERIFIABLE_RULE = "unverifiable-update"
# Ops that change nothing on the resource they name.
UNCHANGING_OPS = frozenset({"same", "read", "refresh"})


def changed_paths(step: Step) -> list[Path] | None:
    """Every property path the step changes, in the inputs, the outputs and the detailed diff; None when the
    preview shows nothing of what changes (no states to compare, no detailedDiff, no diffReasons)."""
    found: dict[Path, None] = {}
    old, new = step.oldState, step.newState
    readable = False
    if old is not None and new is not None:
        if old.inputs and new.inputs:
            found.update(dict.fromkeys(changed_leaves(old.inputs, new.inputs, ())))
            readable = True
        elif not old.inputs and not new.inputs and old.outputs and new.outputs:
            readable = True
        if old.outputs and new.outputs:
            found.update(dict.fromkeys(changed_leaves(old.outputs, new.outputs, ())))
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
            if value == MASKED or (isinstance(value, dict | list) and MASKED in repr(value)):
                return "masked"
            if value == UNKNOWN:
                return "unknown until apply"
    return None


def unreviewed_findings(
    step: Step,
    member: Member,
    judged_paths: Iterable[Path],
    refused_paths: Iterable[Path],
) -> Iterator[Finding]:
    """A finding for each change on a closure member that nothing judges.

    `judged_paths`: what the named rules watch on this type (a change at or below one is theirs);
    `refused_paths`: where the named rules already refused this step (no second finding at or below them).
    """
    if step.op in UNCHANGING_OPS:
        return
    role = member.role
    if role == "stand-in":
        yield Finding(
            rule=UNREVIEWED_RULE,
            urn=step.urn,
            path=f"op={step.op}",
            message=f"`{step.op}` on {member.because}. It can create, change or replace what the cluster's KMS "
            "depends on, and the guard cannot judge it: express it as the azure-native resource it stands for. "
            + _hint(step.urn, f"op={step.op}"),
            overridable=True,
        )
        return
    if role == "fence" and step.op != "update":
        yield Finding(
            rule=UNREVIEWED_RULE,
            urn=step.urn,
            path=f"op={step.op}",
            message=f"`{step.op}` on a {member.canonical.rsplit(':', 1)[-1]} that {member.because}: network security "
            "perimeters, private endpoints and their DNS, and locks decide whether the KMS plugin reaches the key "
            "(an Enforced perimeter or a removed endpoint cuts it off). Review it against the cluster's "
            "keyVaultNetworkAccess. " + _hint(step.urn, f"op={step.op}"),
            overridable=True,
        )
        return
    if step.op != "update":
        return  # create, delete and replace of the other roles are the named rules' (destructive-op, grants)
    paths = changed_paths(step)
    if paths is None:
        yield Finding(
            rule=UNVERIFIABLE_RULE,
            urn=step.urn,
            path="(whole resource)",
            message=f"an update of a KMS closure member ({member.because}) with no old/new state, no detailedDiff "
            "and no diffReasons: the guard cannot tell what changes, so it refuses.",
            overridable=False,
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
        yield Finding(
            rule=UNREVIEWED_RULE,
            urn=step.urn,
            path=shown,
            message=f"{shown} changes on a KMS closure member ({member.because}); {why}no named rule judges it "
            "and it is not on the known-safe list (docs/ci-and-state.md). The guard refuses what it has not reviewed. "
            + _hint(step.urn, shown),
            overridable=True,
        )


def _hint(urn: str, path: str) -> str:
    return (
        f"If a reviewer has checked that this change leaves the cluster's access to its key intact, add "
        f"{{urn: '{urn}', rule: {UNREVIEWED_RULE}, at: '{path}', reason}} to transitions in the overrides file."
    )
