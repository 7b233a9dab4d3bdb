"""`destructive-op` and `unrecognised-op`: the step's op on a KMS resource.

Protects the resources whose loss makes the Secrets in etcd unreadable: a delete or replace of a cluster, Key
Vault, key or user-assigned identity, or a delete of the resource group that holds them (Azure deletes everything
in it; `protect` does not stop it). Only deleting a user-assigned identity after an identity swap is overridable.
An op the guard does not know is refused, never passed.
"""

from __future__ import annotations

from collections.abc import Iterator

from azure_facts.findings import Finding
from azure_facts.kms_closure import Member
from azure_facts.tokens import USER_ASSIGNED_IDENTITY
from kms_aks_tools.guard.common import DESTRUCTIVE_OPS, GUARDED_TYPES, NON_DESTRUCTIVE_OPS, short_type, transition_hint
from kms_aks_tools.preview.model import Step


def op_findings(step: Step, resource_type: str, member: Member | None = None) -> Iterator[Finding]:
    short = short_type(resource_type)
    if step.op in DESTRUCTIVE_OPS and member is not None and member.role == "resource-group":
        path = f"op={step.op}"
        yield Finding(
            rule="destructive-op",
            urn=step.urn,
            path=path,
            message=(
                f"`{step.op}` on a resource group that holds the cluster's KMS resources ({member.because}): Azure "
                "deletes everything in a deleted group, the vault, key, identity and grants too, and `protect` on "
                "them does not stop it. This is never overridable; keep the group, and move resources out of it "
                "first if it must go."
            ),
        )
    elif step.op in DESTRUCTIVE_OPS and resource_type in GUARDED_TYPES:
        reasons = f" (replaceReasons: {', '.join(step.replaceReasons)})" if step.replaceReasons else ""
        identity_delete = resource_type == USER_ASSIGNED_IDENTITY and step.op == "delete"
        path = f"op={step.op}"
        yield Finding(
            rule="destructive-op",
            urn=step.urn,
            path=path,
            message=(
                f"`{step.op}` on a {short}{reasons}: deleting or replacing the cluster, its key vault, its "
                "key or its KMS identity makes the secrets in etcd unreadable. "
                + (
                    "An identity can be deleted only once no cluster uses it: after an identity swap (new identity "
                    "granted, cluster switched, in earlier updates). "
                    + transition_hint("destructive-op", step.urn, path)
                    if identity_delete
                    else "This is never overridable; change the program so the resource stays in place."
                )
            ),
            overridable=identity_delete,
        )
    elif step.op not in NON_DESTRUCTIVE_OPS and step.op not in DESTRUCTIVE_OPS:
        yield Finding(
            rule="unrecognised-op",
            urn=step.urn,
            path=f"op={step.op}",
            message=f"op `{step.op}` on a {short} is not one the guard knows to be safe; review it by hand.",
        )
