"""A finding: one conclusion a gate draws, shared by the policy pack, the plan guard and the rotation check.
Standard library only, so the pack (which imports nothing of the tools) and the tools use the same class.

Every finding says what it concluded (`outcome`) and why (`message`), about which resource (`urn`). The plan
guard also names its rule and the property path it judged (what a transition override names), and, for a key
change, the key ids an override or a waiver must name. The serialised verdict the PR comment reads is
`kms_aks_tools.guard_verdict.VerdictFinding`, a contract of its own.
"""

from __future__ import annotations

from dataclasses import dataclass
from enum import Enum


class Outcome(Enum):
    """What a gate concluded about one thing it checked."""

    # Refused: the stack or plan must not go ahead as it is.
    VIOLATION = "violation"
    # Worth a look; refuses nothing.
    WARNING = "warning"
    # A value the rule needs is unknown (preview) and the dependency graph does not settle it.
    UNDECIDED = "undecided"
    # The rule has nothing to check here (and says why).
    NOT_APPLICABLE = "not-applicable"


@dataclass(frozen=True, slots=True)
class Finding:
    """One conclusion of a gate: a refusal, a warning, why it could not decide, or why it does not apply.

    `urn` is the resource the finding is about; None means the resource being analyzed (the pack's resource
    policies) or the stack as a whole. `rule` and `path` name the plan guard's rule and the property path (or
    `op=<op>`) it refused at; `overridable` says whether a transition override naming them may excuse it.
    `new_key_id` is set on a key id change whose new id is known (what a rotation override names),
    `current_key_id` on the rotation gate's finding (what a re-encryption waiver names).
    """

    message: str
    urn: str | None = None
    outcome: Outcome = Outcome.VIOLATION
    rule: str = ""
    path: str = ""
    new_key_id: str | None = None
    current_key_id: str | None = None
    overridable: bool = False

    @property
    def refuses(self) -> bool:
        return self.outcome is Outcome.VIOLATION


def violation(message: str, urn: str | None = None) -> Finding:
    return Finding(message, urn, Outcome.VIOLATION)


def warning(message: str, urn: str | None = None) -> Finding:
    return Finding(message, urn, Outcome.WARNING)


def could_not_decide(message: str, urn: str | None = None) -> Finding:
    return Finding(message, urn, Outcome.UNDECIDED)


def not_applicable(message: str) -> Finding:
    return Finding(message, None, Outcome.NOT_APPLICABLE)
