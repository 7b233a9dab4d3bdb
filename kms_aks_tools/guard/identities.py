"""Which grants are the KMS identity's: the principals of every user-assigned identity a cluster in the preview
uses, and why a grant counts as the KMS identity's (fail closed: a grant the preview does not let the guard clear
is the KMS identity's)."""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import Any

from azure_facts.property_paths import MISSING, lookup, unwrap
from azure_facts.tokens import ACCESS_POLICY, MANAGED_CLUSTER, USER_ASSIGNED_IDENTITY
from kms_aks_tools.guard.common import (
    ACCESS_POLICY_PRINCIPAL,
    IDENTITY_PATH,
    ROLE_ASSIGNMENT_PRINCIPAL,
    ROOT_STACK_TYPE,
    unreadable,
)
from kms_aks_tools.preview.model import Step


def identity_ids(identity: Any) -> tuple[set[str], bool]:
    """The user-assigned identity ids in a cluster's `identity` (list on input, map on output); True if unknown."""
    identity = unwrap(identity)
    if identity in (MISSING, None):
        return set(), False
    if unreadable(identity) or not isinstance(identity, dict):
        return set(), True
    ids = unwrap(identity.get("userAssignedIdentities"))
    if ids is None:
        return set(), False
    if unreadable(ids):
        return set(), True
    listed = list(ids.keys()) if isinstance(ids, dict) else ids if isinstance(ids, list) else []
    values = [unwrap(i) for i in listed]
    if any(unreadable(v) or not isinstance(v, str) for v in values):
        return {v.lower() for v in values if isinstance(v, str) and not unreadable(v)}, True
    return {v.lower() for v in values}, False


@dataclass
class KmsIdentities:
    """The KMS identities' principals as far as the preview shows them, and why that view may be incomplete."""

    principals: set[str] = field(default_factory=set)
    gaps: list[str] = field(default_factory=list)


def kms_identities(judged: Sequence[tuple[Step, str]]) -> KmsIdentities:
    """The principals of every user-assigned identity a cluster in the preview uses (before or after).

    The view is complete only when the preview shows unchanged resources (`--show-sames`): without them an
    unchanged cluster or identity is simply absent, and a grant could not be cleared of being the KMS one.
    """
    view = KmsIdentities()
    shows_unchanged = any(
        step.op == "same"
        and type_ != ROOT_STACK_TYPE
        and bool(step.oldState and step.oldState.protect) == bool(step.newState and step.newState.protect)
        for step, type_ in judged
    )
    if not shows_unchanged:
        view.gaps.append(
            "the preview does not show unchanged resources, so the cluster and its identity may be missing from it "
            "(run `pulumi preview --json --show-sames`, as .ci/pulumi-stack preview does)"
        )
    cluster_ids: set[str] = set()
    for step, type_ in judged:
        if type_ != MANAGED_CLUSTER:
            continue
        for state in (step.oldState, step.newState):
            if state is None:
                continue
            for props in (state.inputs, state.outputs):
                ids, unknown = identity_ids(lookup(props, IDENTITY_PATH))
                cluster_ids |= ids
                if unknown and props is state.inputs:
                    view.gaps.append(f"the identity of cluster {step.urn} is unknown until apply")
    principals_by_id: dict[str, set[Any]] = {}
    for step, type_ in judged:
        if type_ != USER_ASSIGNED_IDENTITY:
            continue
        for state in (step.oldState, step.newState):
            if state is None:
                continue
            outputs = state.outputs or {}
            for resource_id in {state.id, outputs.get("id")}:
                if isinstance(resource_id, str) and not unreadable(resource_id):
                    principals_by_id.setdefault(resource_id.lower(), set()).add(
                        unwrap(outputs.get("principalId", MISSING))
                    )
    for identity_id in sorted(cluster_ids):
        principals = principals_by_id.get(identity_id)
        if principals is None:
            view.gaps.append(f"the cluster's identity {identity_id} is not in the preview")
            continue
        for principal in principals:
            if principal in (MISSING, None) or unreadable(principal) or not isinstance(principal, str):
                view.gaps.append(f"the principal of identity {identity_id} is not known in the preview")
            else:
                view.principals.add(principal.lower())
    return view


def _grant_principal_path(grant_type: str) -> tuple[str, ...]:
    return ACCESS_POLICY_PRINCIPAL if grant_type == ACCESS_POLICY else ROLE_ASSIGNMENT_PRINCIPAL


def kms_grant_because(step: Step, grant_type: str, view: KmsIdentities) -> str | None:
    """Why this grant counts as the KMS identity's, or None when the preview shows it is not."""
    path = _grant_principal_path(grant_type)
    principals = [
        lookup(state.properties(), path) for state in (step.oldState, step.newState) if state and state.properties()
    ]
    for principal in principals:
        if isinstance(principal, str) and principal.lower() in view.principals:
            return f"it is held by the KMS identity (principal {principal})"
    if not principals:
        return "the preview carries no state for it, so its principal cannot be read"
    if any(p in (MISSING, None) or unreadable(p) for p in principals):
        return "its principal is unknown or masked in the preview, so it cannot be cleared of being the KMS identity's"
    if view.gaps:
        return "it cannot be cleared of being the KMS identity's: " + "; ".join(dict.fromkeys(view.gaps))
    return None
