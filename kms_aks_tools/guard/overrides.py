"""The guard's overrides: a reviewable file (`--overrides guard-overrides.yaml`) and `--allow-key-rotation`, each
entry excusing exactly one finding.

- `keyRotations: [{urn, newKeyId, reason}]`: this cluster's key id may change to exactly this versioned key id
  (also `--allow-key-rotation URN=KEY_ID`);
- `reencryptionWaivers: [{urn, currentKeyId, reason}]`: this cluster may leave exactly this current key although
  it has no re-encryption record (the rotation gate);
- `transitions: [{urn, rule, at, reason}]`: exactly the finding printed as `REFUSED [rule] urn` / `at <at>`, for
  the rules that a change made in the safe order legitimately meets (`common.OVERRIDABLE_RULES`).
"""

from __future__ import annotations

import json
from collections.abc import Iterable
from typing import Annotated

from pydantic import AfterValidator, BaseModel, ConfigDict, Field, ValidationError, model_validator

from azure_facts.engine import type_from_urn
from azure_facts.findings import Finding
from azure_facts.key_ids import normalize_key_id
from azure_facts.tokens import MANAGED_CLUSTER, USER_ASSIGNED_IDENTITY, UnrecognisedKmsToken, canonical_type
from kms_aks_tools.guard.common import KEY_ID_PATTERN, OVERRIDABLE_RULES, ROTATION_GATE_RULE
from kms_aks_tools.preview.model import BadInput, read_text, validation_message


def _reason(reason: str) -> str:
    if not reason.strip():
        raise ValueError("a reason is required so reviewers know why this change is made")
    return reason.strip()


def _cluster_urn(urn: str) -> str:
    resource_type = type_from_urn(urn)
    if resource_type is None:
        raise ValueError(f"not a Pulumi URN: {urn!r}")
    try:
        canonical = canonical_type(resource_type)
    except UnrecognisedKmsToken as error:
        raise ValueError(f"{error}{lost_dollar_hint(urn)}") from None
    if canonical != MANAGED_CLUSTER:
        raise ValueError(
            f"names a {resource_type}; only a ManagedCluster's key id can be overridden{lost_dollar_hint(urn)}"
        )
    return urn


def _versioned_key_id(key_id: str) -> str:
    if not KEY_ID_PATTERN.match(key_id):
        raise ValueError(
            f"{key_id!r} is not a versioned key id (https://<vault>.vault.azure.net/keys/<name>/<32-hex-digit version>)"
        )
    return key_id


def _resource_urn(urn: str) -> str:
    if type_from_urn(urn) is None:
        raise ValueError(f"not a Pulumi URN: {urn!r}")
    return urn


# The fields every override shares, checked the same way wherever they appear.
Reason = Annotated[str, Field(min_length=1), AfterValidator(_reason)]
ClusterUrn = Annotated[str, Field(min_length=1), AfterValidator(_cluster_urn)]
ResourceUrn = Annotated[str, Field(min_length=1), AfterValidator(_resource_urn)]
VersionedKeyId = Annotated[str, AfterValidator(_versioned_key_id)]


class KeyRotationOverride(BaseModel):
    """Permission for exactly one planned key id change: this cluster, this new versioned key id."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    urn: ClusterUrn
    newKeyId: VersionedKeyId
    reason: Reason


class ReencryptionWaiver(BaseModel):
    """The rotation gate's own override: this cluster may leave exactly this current key without a record.

    Separate from the rotation override on purpose: a rotation with a record needs only `keyRotations`; one
    without needs both, so the missing re-encryption is a decision someone wrote down.
    """

    model_config = ConfigDict(extra="forbid", frozen=True)

    urn: ClusterUrn
    currentKeyId: VersionedKeyId
    reason: Reason


class TransitionOverride(BaseModel):
    """Permission for exactly one refused transition: the finding printed as `REFUSED [rule] urn` / `at <at>`."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    urn: ResourceUrn
    rule: str
    at: str = Field(min_length=1)
    reason: Reason

    @model_validator(mode="after")
    def _overridable(self) -> TransitionOverride:
        if self.rule not in OVERRIDABLE_RULES:
            raise ValueError(
                f"rule {self.rule!r} cannot be overridden; transitions take only {', '.join(sorted(OVERRIDABLE_RULES))}"
            )
        if self.rule == "destructive-op":
            resource_type = type_from_urn(self.urn) or ""
            try:
                canonical = canonical_type(resource_type)
            except UnrecognisedKmsToken:
                canonical = resource_type
            if canonical != USER_ASSIGNED_IDENTITY or self.at != "op=delete":
                raise ValueError(
                    "destructive-op can be overridden only for deleting a user-assigned identity (at: op=delete); "
                    "deleting or replacing a cluster, vault or key, or replacing an identity, never"
                )
        return self


Override = KeyRotationOverride | ReencryptionWaiver | TransitionOverride


class OverrideFile(BaseModel):
    """The reviewable overrides file: three lists, each entry excusing exactly one finding; nothing else."""

    model_config = ConfigDict(extra="forbid")

    keyRotations: list[KeyRotationOverride] = Field(default_factory=list)
    reencryptionWaivers: list[ReencryptionWaiver] = Field(default_factory=list)
    transitions: list[TransitionOverride] = Field(default_factory=list)

    def all(self) -> list[Override]:
        return [*self.keyRotations, *self.reencryptionWaivers, *self.transitions]


def excuses(override: Override, finding: Finding) -> bool:
    """Whether `override` excuses exactly `finding`: a rotation its new key id, a waiver its current key, a
    transition an overridable finding's rule and path, always on the same URN."""
    if override.urn != finding.urn:
        return False
    if isinstance(override, KeyRotationOverride):
        return (
            finding.rule == "kms-key-change"
            and finding.new_key_id is not None
            and override.newKeyId == finding.new_key_id
        )
    if isinstance(override, ReencryptionWaiver):
        return (
            finding.rule == ROTATION_GATE_RULE
            and finding.current_key_id is not None
            and normalize_key_id(override.currentKeyId) == normalize_key_id(finding.current_key_id)
        )
    return finding.overridable and override.rule == finding.rule and override.at == finding.path


def lost_dollar_hint(urn: str) -> str:
    """A URN whose `$<type>` a shell expanded away (`"...KmsAksCluster$azure-native:..."` in double quotes
    becomes `...KmsAksCluster-native:...`): its type chain has no `$` but more than one type in it."""
    parts = urn.split("::", 3)
    if len(parts) == 4 and "$" not in parts[2] and parts[2].count(":") > 2:
        return (
            ". The URN has lost its `$...` part, as a shell does with double quotes: write it in single quotes "
            "('urn:pulumi:...KmsAksCluster$azure-native:containerservice:ManagedCluster::aks-cluster'), with make too: "
            "make guard PREVIEW=preview.json ARGS='--allow-key-rotation URN=KEY_ID'"
        )
    return ""


def why_stale(override: Override, findings: Iterable[Finding]) -> str:
    on_urn = [f for f in findings if f.urn == override.urn]
    if isinstance(override, KeyRotationOverride):
        planned = [f.new_key_id for f in on_urn if f.rule == "kms-key-change" and f.new_key_id]
        if planned:
            return f"the preview plans key id {planned[0]} for this cluster, not this one"
        if on_urn:
            return "this cluster has findings, but no key id change with a known new key id"
        return "the preview has no key id change for this URN"
    if isinstance(override, ReencryptionWaiver):
        gated = [f.current_key_id for f in on_urn if f.rule == ROTATION_GATE_RULE]
        if gated:
            return f"the rotation gate holds this cluster's current key {gated[0]}, not this one"
        return "the rotation gate holds nothing for this URN (no key change, or its current key has a record)"
    same_rule = [f.path for f in on_urn if f.rule == override.rule]
    if same_rule:
        return f"the preview has {override.rule} for this URN at {', '.join(same_rule)}, not at {override.at}"
    return f"the preview has no {override.rule} finding for this URN"


def load_override_file(source: str) -> list[Override]:
    """Parse a reviewable overrides file, YAML (`.yaml`/`.yml`) or JSON."""
    text = read_text(source)
    if source.endswith((".yaml", ".yml")):
        try:
            import yaml  # PyYAML ships with the pulumi SDK; imported here so JSON needs nothing else
        except ImportError:  # pragma: no cover - pulumi depends on PyYAML
            raise BadInput("reading a YAML overrides file needs PyYAML; use JSON instead") from None
        try:
            data = yaml.safe_load(text)
        except yaml.YAMLError as error:
            raise BadInput(f"overrides file {source} is not valid YAML: {error}") from None
    else:
        try:
            data = json.loads(text)
        except json.JSONDecodeError as error:
            raise BadInput(f"overrides file {source} is not valid JSON: {error}") from None
    if data is None:
        data = {}
    if not isinstance(data, dict):
        raise BadInput(
            f"overrides file {source} must be a mapping with the lists keyRotations, reencryptionWaivers and "
            "transitions"
        )
    try:
        return OverrideFile.model_validate(data).all()
    except ValidationError as error:
        raise BadInput(f"overrides file {source}: {validation_message(error)}") from None


def parse_override_flag(value: str) -> KeyRotationOverride:
    """`URN=KEY_ID` from `--allow-key-rotation`; a URN holds no `=`, so split at the last one."""
    urn, sep, key_id = value.rpartition("=")
    if not sep or not urn or not key_id:
        raise BadInput(f"--allow-key-rotation expects URN=KEY_ID, got {value!r}")
    try:
        return KeyRotationOverride(urn=urn, newKeyId=key_id, reason="--allow-key-rotation on the command line")
    except ValidationError as error:
        raise BadInput(f"--allow-key-rotation {value!r}: {validation_message(error)}") from None
