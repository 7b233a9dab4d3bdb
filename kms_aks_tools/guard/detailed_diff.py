"""The guard's fallback when a rule cannot compare old and new values (masked, or no state in the preview): judge
the step by its `detailedDiff`, then its `diffReasons`, and refuse an update that shows neither."""

from __future__ import annotations

from collections.abc import Iterable, Iterator

from azure_facts.findings import Finding
from azure_facts.property_paths import covers, split_property_path
from kms_aks_tools.guard.common import OVERRIDABLE_RULES, transition_hint
from kms_aks_tools.preview.model import Step


def diff_findings(
    step: Step,
    *,
    only: str | None = None,
    reason: str,
    guarded: Iterable[tuple[str, tuple[str, ...]]],
    subject: str = "cluster",
) -> Iterator[Finding]:
    """Findings from `detailedDiff` (then `diffReasons`) when the old/new values cannot be compared.

    `guarded` pairs each rule with a property path it watches; a finding of an
    overridable rule stays overridable by a transition override naming the path printed.
    """
    rules = [(rule, path) for rule, path in guarded if only is None or rule == only]
    if step.detailedDiff:
        for diff_key, diff in step.detailedDiff.items():
            segments = split_property_path(diff_key)
            for rule, watched in rules:
                if covers(segments, watched):
                    overridable = rule in OVERRIDABLE_RULES
                    yield Finding(
                        rule=rule,
                        urn=step.urn,
                        path=diff_key,
                        message=(
                            f"detailedDiff marks {diff_key} ({diff.kind}), which covers "
                            f"{'.'.join(watched)}, and the guard cannot compare old and new values "
                            f"because {reason}. "
                            + (
                                transition_hint(rule, step.urn, diff_key)
                                if overridable
                                else "Not overridable: an override needs the old and new values in the states."
                            )
                        ),
                        overridable=overridable,
                    )
        return
    if step.diffReasons:
        for top_level in step.diffReasons:
            segments = split_property_path(top_level)
            for rule, watched in rules:
                if covers(segments, watched):
                    yield Finding(
                        rule=rule,
                        urn=step.urn,
                        path=top_level,
                        message=(
                            f"diffReasons names {top_level}, which covers {'.'.join(watched)}, and the "
                            f"preview has no detailedDiff and {reason}: the change cannot be verified."
                        ),
                    )
        return
    if only is None and step.op == "update":
        yield Finding(
            rule="unverifiable-update",
            urn=step.urn,
            path="(whole resource)",
            message=(
                f"an update of an existing {subject} with no old/new state, no detailedDiff and no "
                "diffReasons: the guard cannot tell what changes, so it refuses."
            ),
        )
