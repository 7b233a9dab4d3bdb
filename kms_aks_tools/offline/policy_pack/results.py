"""What the pack answers, as data: its policies (`GetAnalyzerInfo`) and its diagnostics (`Analyze`, `AnalyzeStack`)."""

from __future__ import annotations

from collections.abc import Iterator, Mapping
from dataclasses import dataclass, field
from typing import Any, Literal

from google.protobuf import json_format
from pulumi.runtime.proto import analyzer_pb2

EnforcementLevel = Literal["advisory", "mandatory", "remediate", "disabled"]
ENFORCEMENT_LEVELS: dict[str, int] = {
    "advisory": analyzer_pb2.ADVISORY,
    "mandatory": analyzer_pb2.MANDATORY,
    "remediate": analyzer_pb2.REMEDIATE,
    "disabled": analyzer_pb2.DISABLED,
}
_LEVEL_NAMES = {number: name for name, number in ENFORCEMENT_LEVELS.items()}
_SEVERITY_NAMES = {
    analyzer_pb2.POLICY_SEVERITY_LOW: "low",
    analyzer_pb2.POLICY_SEVERITY_MEDIUM: "medium",
    analyzer_pb2.POLICY_SEVERITY_HIGH: "high",
    analyzer_pb2.POLICY_SEVERITY_CRITICAL: "critical",
}
# The prefix pulumi_policy gives a diagnostic when a policy could not run because a value is unknown.
_COULD_NOT_DECIDE = "can't run policy"


@dataclass(frozen=True)
class PolicyViolation:
    """One diagnostic of the pack: a violation, or a policy saying it could not decide (advisory)."""

    policy_name: str
    enforcement_level: str
    urn: str
    message: str
    description: str = ""
    policy_pack: str = ""
    severity: str = ""

    @property
    def mandatory(self) -> bool:
        return self.enforcement_level == "mandatory"

    @property
    def could_not_decide(self) -> bool:
        """The policy could not run on unknown (preview) values; pulumi_policy reports that as advisory."""
        return _COULD_NOT_DECIDE in self.message

    @property
    def detail(self) -> str:
        """The message without the policy description that pulumi_policy puts in front of it."""
        prefix = f"{self.description}\n"
        return self.message[len(prefix) :] if self.description and self.message.startswith(prefix) else self.message


@dataclass(frozen=True)
class NotApplicable:
    """A policy that had nothing to check, and why."""

    policy_name: str
    reason: str
    urn: str = ""


@dataclass
class AnalysisResult:
    """What `Analyze`/`AnalyzeStack` answered. Iterating it yields the violations."""

    violations: list[PolicyViolation] = field(default_factory=list)
    not_applicable: list[NotApplicable] = field(default_factory=list)

    def __iter__(self) -> Iterator[PolicyViolation]:
        return iter(self.violations)

    def __len__(self) -> int:
        return len(self.violations)

    @property
    def mandatory(self) -> list[PolicyViolation]:
        return [v for v in self.violations if v.mandatory]

    @property
    def advisory(self) -> list[PolicyViolation]:
        return [v for v in self.violations if v.enforcement_level == "advisory"]

    @property
    def undecided(self) -> list[PolicyViolation]:
        return [v for v in self.violations if v.could_not_decide]

    def by_policy(self, policy_name: str) -> list[PolicyViolation]:
        return [v for v in self.violations if v.policy_name == policy_name]

    def extend(self, other: AnalysisResult) -> None:
        self.violations.extend(other.violations)
        self.not_applicable.extend(other.not_applicable)


@dataclass(frozen=True)
class PolicyInfo:
    """A policy as `GetAnalyzerInfo` describes it."""

    name: str
    description: str
    enforcement_level: str
    policy_type: Literal["resource", "stack", "unknown"]
    config_schema: Mapping[str, Mapping[str, Any]] = field(default_factory=dict)
    required: tuple[str, ...] = ()
    display_name: str = ""


@dataclass(frozen=True)
class AnalyzerInfo:
    """The pack as `GetAnalyzerInfo` describes it."""

    name: str
    version: str
    policies: tuple[PolicyInfo, ...]
    supports_config: bool

    def policy(self, name: str) -> PolicyInfo:
        for policy in self.policies:
            if policy.name == name:
                return policy
        raise KeyError(f"policy pack {self.name} has no policy {name!r}")

    @property
    def policy_names(self) -> list[str]:
        return [p.name for p in self.policies]


def analyzer_info(info: analyzer_pb2.AnalyzerInfo) -> AnalyzerInfo:
    """The pack's name, version and policies from its `GetAnalyzerInfo` answer."""
    types: dict[int, Literal["resource", "stack", "unknown"]] = {
        analyzer_pb2.POLICY_TYPE_RESOURCE: "resource",
        analyzer_pb2.POLICY_TYPE_STACK: "stack",
    }
    return AnalyzerInfo(
        name=info.name,
        version=info.version,
        supports_config=info.supportsConfig,
        policies=tuple(
            PolicyInfo(
                name=p.name,
                description=p.description,
                enforcement_level=_LEVEL_NAMES.get(p.enforcementLevel, "advisory"),
                policy_type=types.get(p.policy_type, "unknown"),
                config_schema=json_format.MessageToDict(p.configSchema.properties),
                required=tuple(p.configSchema.required),
                display_name=p.displayName,
            )
            for p in info.policies
        ),
    )


def analysis_result(response: analyzer_pb2.AnalyzeResponse, urn: str = "") -> AnalysisResult:
    # Resource policies report without a URN; the engine attributes them to the analyzed resource.
    return AnalysisResult(
        violations=[
            PolicyViolation(
                policy_name=d.policyName,
                enforcement_level=_LEVEL_NAMES.get(d.enforcementLevel, str(d.enforcementLevel)),
                urn=d.urn or urn,
                message=d.message,
                description=d.description,
                policy_pack=d.policyPackName,
                severity=_SEVERITY_NAMES.get(d.severity, ""),
            )
            for d in response.diagnostics
        ],
        not_applicable=[NotApplicable(n.policy_name, n.reason, urn) for n in response.not_applicable],
    )
