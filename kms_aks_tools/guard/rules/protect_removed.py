"""`protect-removed`: `protect` coming off a KMS resource (cluster, vault, key, identity, grant, or any other
closure member).

Protects against the next step: once unprotected, removing it from the program or a `pulumi destroy` deletes it
without a further stop. Overridable in its own reviewed update.
"""

from __future__ import annotations

from azure_facts.findings import Finding
from kms_aks_tools.guard.common import short_type, transition_hint
from kms_aks_tools.preview.model import Step


def protect_finding(step: Step, resource_type: str) -> Finding | None:
    if step.oldState is None or step.newState is None:
        return None
    if not step.oldState.protect or step.newState.protect:
        return None
    path = "protect"
    return Finding(
        rule="protect-removed",
        urn=step.urn,
        path=path,
        message=(
            f"`protect` comes off this {short_type(resource_type)}: after this update, removing it from the program or "
            "a `pulumi destroy` deletes it without a further stop, and losing the cluster's key, vault, identity or "
            "grant makes the secrets in etcd unreadable. Lift protection only in its own reviewed update, right "
            "before a planned removal. " + transition_hint("protect-removed", step.urn, path)
        ),
        overridable=True,
    )
