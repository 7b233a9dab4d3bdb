"""`unrecognised-type` and `type-change`: every type a step shows (URN, states, aliases) read through
`azure_facts.tokens`.

Protects the other rules from being skipped: a KMS resource declared under a versioned-module or parameterized
token is judged as its plain type; a KMS-relevant type in a form not understood is refused (and still judged as
the type it names); a KMS resource that changes type is deleted and created as another. Not overridable.
"""

from __future__ import annotations

from azure_facts.engine import type_from_urn
from azure_facts.findings import Finding
from azure_facts.tokens import KMS_RELEVANT_TYPES, UnrecognisedKmsToken, canonical_type
from kms_aks_tools.preview.model import BadInput, Step


def _step_tokens(step: Step) -> list[tuple[str, str]]:
    """(where, token) for every type the step shows: its URN, a step-level type, each state's type and URN."""
    found: list[tuple[str, str]] = []
    urn_type = type_from_urn(step.urn)
    if urn_type is None:
        raise BadInput(f"step for {step.urn!r} has no type and its URN does not name one")
    found.append(("urn", urn_type))
    if step.type:
        found.append(("type", step.type))
    for label, state in (("oldState", step.oldState), ("newState", step.newState)):
        if state is None:
            continue
        if state.type:
            found.append((f"{label}.type", state.type))
        if state.urn and (state_urn_type := type_from_urn(state.urn)):
            found.append((f"{label}.urn", state_urn_type))
    return found


def _alias_tokens(step: Step) -> list[tuple[str, str]]:
    found: list[tuple[str, str]] = []
    for label, state in (("oldState", step.oldState), ("newState", step.newState)):
        for index, alias in enumerate((state.aliases if state else None) or []):
            if alias_type := type_from_urn(alias):
                found.append((f"{label}.aliases[{index}]", alias_type))
    return found


def judge_types(step: Step) -> tuple[str, list[Finding]]:
    """The plain type the step is judged as, and the findings its tokens give.

    A KMS-relevant type in a form not understood is judged as the type it names (so every rule still applies)
    and refused as `unrecognised-type`; old, new and aliased types that read as different types, one of them
    KMS-relevant, are refused as `type-change`.
    """
    findings: list[Finding] = []
    canonicals: dict[str, str] = {}
    for where, token in [*_step_tokens(step), *_alias_tokens(step)]:
        try:
            canonicals[where] = canonical_type(token)
        except UnrecognisedKmsToken as error:
            canonicals[where] = error.canonical
            findings.append(
                Finding(
                    rule="unrecognised-type",
                    urn=step.urn,
                    path=where,
                    message=f"{error} The guard refuses what it cannot recognise; not overridable.",
                )
            )
    judged = canonicals["urn"]
    differing = {where: t for where, t in canonicals.items() if t != judged}
    if differing and (judged in KMS_RELEVANT_TYPES or any(t in KMS_RELEVANT_TYPES for t in differing.values())):
        where, other = sorted(differing.items())[0]
        findings.append(
            Finding(
                rule="type-change",
                urn=step.urn,
                path=where,
                message=(
                    f"the step's URN names a {judged} but its {where} a {other}: a KMS resource that changes type "
                    "(or is aliased to another type) is deleted and created as another resource, or judged as the "
                    "wrong one. Keep the type; move API versions only within the same type. Not overridable."
                ),
            )
        )
        # Judge the step as the KMS-relevant type it shows, so its rules still run.
        if judged not in KMS_RELEVANT_TYPES:
            judged = other
    return judged, findings
