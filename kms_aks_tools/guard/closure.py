"""The guard's side of the KMS closure: a preview's steps as `azure_facts.kms_closure` records (the closure itself
is computed there, shared with the policy pack). What the guard does with a closure member that no named rule
judges is `rules/unreviewed_kms_change.py`.
"""

from __future__ import annotations

from collections.abc import Sequence

from azure_facts.engine import UNKNOWN
from azure_facts.kms_closure import Closure, Resource, compute
from kms_aks_tools.preview.model import Step


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
