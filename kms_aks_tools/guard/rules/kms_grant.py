"""`kms-grant-removed`, `kms-grant-replaced`, `kms-grant-moved`, `kms-grant-narrowed`: the KMS identity's grants
on the key (AccessPolicy, RoleAssignment).

Protects the identity's encrypt and decrypt on the key: a grant deleted, replaced (deleted, then a new one must
propagate), moved to another principal, scope, role, vault or tenant, or narrowed so that it loses encrypt or
decrypt (`all` counts as both) cuts the KMS plugin off the key. A grant the preview does not let the guard tie to
the KMS identity, or clear of it, counts as the KMS identity's (`identities.kms_grant_because`). Overridable as a
step of the safe order.
"""

from __future__ import annotations

from collections.abc import Iterator
from typing import Any

from azure_facts.engine import UNKNOWN
from azure_facts.findings import Finding
from azure_facts.property_paths import hides, lookup
from azure_facts.tokens import ACCESS_POLICY
from kms_aks_tools.guard.common import (
    ACCESS_POLICY_KEYS,
    GRANT_FIELDS,
    KMS_KEY_PERMISSIONS,
    REMOVING_OPS,
    fmt,
    lower,
    short_type,
    transition_hint,
    unreadable,
)
from kms_aks_tools.guard.detailed_diff import diff_findings
from kms_aks_tools.guard.identities import KmsIdentities, kms_grant_because
from kms_aks_tools.preview.model import Step

_GRANT_SAFE_ORDER = (
    "Safe order: add the new grant in one update and let it propagate, switch to it in the next, and remove the "
    "old grant last, in its own update."
)


def grant_findings(step: Step, grant_type: str, view: KmsIdentities) -> Iterator[Finding]:
    if step.op in {"create", "same", "read", "refresh", "import"}:
        return
    because = kms_grant_because(step, grant_type, view)
    if because is None:
        return
    short = short_type(grant_type)
    cut = (
        "the KMS identity then holds no encrypt/decrypt on the key: AKS's KMS plugin can no longer wrap or unwrap "
        "data encryption keys, so new Secrets cannot be written and existing ones cannot be read"
    )
    if step.op in REMOVING_OPS or step.op in {"replace", "create-replacement"}:
        removing = step.op in REMOVING_OPS
        rule = "kms-grant-removed" if removing else "kms-grant-replaced"
        path = f"op={step.op}"
        reasons = f" (replaceReasons: {', '.join(step.replaceReasons)})" if step.replaceReasons else ""
        what = "deleted" if removing else f"replaced{reasons}: the old grant is deleted and a new one must propagate"
        yield Finding(
            rule=rule,
            urn=step.urn,
            path=path,
            message=(
                f"this {short} is {what}; {because}. If no other grant covers it, {cut}. {_GRANT_SAFE_ORDER} "
                + transition_hint(rule, step.urn, path)
            ),
            overridable=True,
        )
        return
    if step.op != "update":
        return  # an op the guard does not know is refused by op_findings
    old_props = step.oldState.properties() if step.oldState else None
    new_props = step.newState.properties() if step.newState else None
    watched = [("kms-grant-moved", p) for p in GRANT_FIELDS[grant_type]]
    if grant_type == ACCESS_POLICY:
        watched.append(("kms-grant-narrowed", ACCESS_POLICY_KEYS))
    if old_props is None or new_props is None:
        yield from diff_findings(
            step,
            reason=f"the preview carries no old/new state for it ({because})",
            guarded=watched,
            subject=f"{short} ({because})",
        )
        return
    if any(hides(lookup(old_props, path), lookup(new_props, path)) for _, path in watched):
        yield from diff_findings(
            step, reason=f"its values are masked ({because})", guarded=watched, subject=f"{short} ({because})"
        )
        return
    for field_path, label in GRANT_FIELDS[grant_type].items():
        old, new = lookup(old_props, field_path), lookup(new_props, field_path)
        if lower(old) == lower(new):
            continue
        path = ".".join(field_path)
        yield Finding(
            rule="kms-grant-moved",
            urn=step.urn,
            path=path,
            message=(
                f"this {short}'s {label} changes {fmt(old)} -> {fmt(new)}; {because}. The grant then no longer "
                f"gives the KMS identity encrypt/decrypt on the key, and {cut}. {_GRANT_SAFE_ORDER} "
                + transition_hint("kms-grant-moved", step.urn, path)
            ),
            overridable=True,
        )
    if grant_type == ACCESS_POLICY:
        old_keys, new_keys = lookup(old_props, ACCESS_POLICY_KEYS), lookup(new_props, ACCESS_POLICY_KEYS)
        lost = _lost_permissions(old_keys, new_keys)
        if lost:
            path = ".".join(ACCESS_POLICY_KEYS)
            yield Finding(
                rule="kms-grant-narrowed",
                urn=step.urn,
                path=path,
                message=(
                    f"this AccessPolicy's key permissions change {fmt(old_keys)} -> {fmt(new_keys)}, dropping "
                    f"{', '.join(lost)}; {because}. AKS KMS needs both encrypt and decrypt: {cut}. Keep both "
                    "permissions; to move them, grant them elsewhere first. "
                    + transition_hint("kms-grant-narrowed", step.urn, path)
                ),
                overridable=True,
            )


def _lost_permissions(old: Any, new: Any) -> list[str]:
    """The KMS permissions the old key permissions had and the new ones lack (all of them when new is unknown)."""
    old_set = _key_permissions(old)
    had = sorted(KMS_KEY_PERMISSIONS & old_set)
    if new == UNKNOWN or hides(new) or (isinstance(new, list) and any(unreadable(p) for p in new)):
        return [f"{p} (unknown until apply)" for p in had] or ["(unknown until apply)"]
    new_set = _key_permissions(new)
    return [p for p in had if p not in new_set]


def _key_permissions(permissions: Any) -> set[str]:
    """Key permissions as Key Vault applies them: `all` grants every key permission, encrypt and decrypt too
    (the `KeyPermissions` enum of the keyvault.json spec lists `all` beside the single permissions)."""
    listed = {p.lower() for p in permissions if isinstance(p, str)} if isinstance(permissions, list) else set()
    return listed | KMS_KEY_PERMISSIONS if "all" in listed else listed
