"""Plan guard: refuses a `pulumi preview --json` plan that makes an irreversible KMS change.

A policy pack sees only the desired state, so it cannot tell a new cluster from an existing one whose
KMS key is being swapped, disabled or moved behind Private Link. `pulumi preview` shows all of those as
an ordinary one-line "update". This module reads the preview's steps (old and new state, detailed
diff) and refuses:

- a change of `securityProfile.azureKeyVaultKms.keyId` on an existing cluster (including an unknown
  new key id, which cannot be reviewed);
- `securityProfile.azureKeyVaultKms.enabled` going from true to false, or the KMS block removed;
- any change of `securityProfile.azureKeyVaultKms.keyVaultNetworkAccess`;
- a change of the cluster's `identity` (type or user-assigned identities);
- op `replace`, `create-replacement`, `delete-replaced` or `delete` on a ManagedCluster, a Key Vault,
  a Key Vault key or a user-assigned identity (and any op on those types the guard does not know);
- an `update` of an existing Key Vault key's settings (expiry, size, type, operations, rotation policy, ...):
  azure-native sends it as ARM's `Keys_CreateIfNotExist`, which does not update an existing key. The preview
  calls it an update; the guard names it for what it is and gives the data-plane command that does it.

A planned key rotation passes only through an explicit override that names the cluster's URN and the
exact new versioned key id, given in a reviewable file (`--overrides guard-overrides.yaml`) or with
`--allow-key-rotation URN=KEY_ID`. An override excuses that one key id change and nothing else.

Usage::

    python -m kms_aks_tools.guard preview.json [--overrides FILE] [--allow-key-rotation URN=KEY_ID ...]

Exit status: 0 when the plan is clean, 1 when there are findings, 2 when the input is unusable (not
JSON, not the preview shape, no steps, a failed preview, a malformed override). Nothing passes by
default: input the guard cannot read is a refusal, never a pass.
"""

from __future__ import annotations

import argparse
import json
import re
import sys
from collections.abc import Iterable, Iterator, Mapping, Sequence
from dataclasses import dataclass, field
from datetime import UTC, datetime
from pathlib import Path
from typing import Any, Literal

from pydantic import BaseModel, ConfigDict, Field, ValidationError, field_validator
from rich.console import Console
from rich.text import Text

from azure_facts import VERSIONED_KEY_ID
from kms_aks_tools.output import make_console, subcommand_parser
from kms_aks_tools.recording import SECRET_SIG, SECRET_SIG_KEY, UNKNOWN

EXIT_CLEAN = 0
EXIT_FINDINGS = 1
EXIT_BAD_INPUT = 2

MANAGED_CLUSTER = "azure-native:containerservice:ManagedCluster"
VAULT = "azure-native:keyvault:Vault"
KEY = "azure-native:keyvault:Key"
USER_ASSIGNED_IDENTITY = "azure-native:managedidentity:UserAssignedIdentity"
# Deleting or replacing any of these makes the cluster's etcd secrets unreadable (or the cluster gone).
GUARDED_TYPES = frozenset({MANAGED_CLUSTER, VAULT, KEY, USER_ASSIGNED_IDENTITY})

DESTRUCTIVE_OPS = frozenset({"replace", "create-replacement", "delete-replaced", "delete"})
# Ops known to leave an existing guarded resource in place. Anything else on a guarded type is refused:
# a future CLI op the guard has never seen must not pass by default.
NON_DESTRUCTIVE_OPS = frozenset({"same", "create", "update", "read", "refresh", "import"})
# Ops whose step carries an existing resource's old state next to the planned new state.
CHANGE_OPS = frozenset({"update", "replace", "create-replacement"})

# How `pulumi preview --json` prints a secret when --show-secrets is not given.
MASKED_SECRET = "[secret]"

KMS_PATH: tuple[str, ...] = ("securityProfile", "azureKeyVaultKms")
KEY_ID_PATH = (*KMS_PATH, "keyId")
ENABLED_PATH = (*KMS_PATH, "enabled")
NETWORK_ACCESS_PATH = (*KMS_PATH, "keyVaultNetworkAccess")
IDENTITY_PATH: tuple[str, ...] = ("identity",)

# ARM's default when keyVaultNetworkAccess is omitted: an explicit "Public" is no change.
DEFAULT_NETWORK_ACCESS = "Public"

# A versioned Key Vault key identifier, as AKS KMS requires it (`key.kid`), from the shared Azure facts.
KEY_ID_PATTERN = VERSIONED_KEY_ID

# An existing key's settings that ARM takes only when it creates the key. azure-native's Key is a "hybrid"
# resource whose update is the default one: the same PUT as the create, ARM's Keys_CreateIfNotExist ("does not
# update existing keys"; provider source: provider/pkg/resources/customresources/custom_keyvault.go, and no Key
# entry in provider/pkg/gen/replacement.go's forceNewMap nor x-ms-mutability in the keys.json spec, so a change is
# an update, not a replace). A changed expiry fails with KeyCreationParametersDidNotMatchExistingKey
# (Azure/bicep#8283, Azure/bicep-types-az#1906); other changes are accepted and silently not applied.
KEY_CREATE_TIME_SETTINGS: dict[tuple[str, ...], str] = {
    ("properties", "attributes", "expires"): "expiry",
    ("properties", "attributes", "notBefore"): "activation date",
    ("properties", "attributes", "enabled"): "enabled flag",
    ("properties", "attributes", "exportable"): "exportable flag",
    ("properties", "kty"): "key type",
    ("properties", "keySize"): "key size",
    ("properties", "curveName"): "curve",
    ("properties", "keyOps"): "key operations",
    ("properties", "rotationPolicy"): "rotation policy",
    ("properties", "releasePolicy"): "release policy",
    ("tags",): "tags",
}
KEY_DOCS = 'docs/rotation.md, "Changing a key\'s expiry, size or rotation policy"'

_OVERRIDE_HINT = (
    "For a planned rotation, add an entry {urn, newKeyId, reason} to the overrides file "
    "(or --allow-key-rotation URN=KEY_ID), then re-encrypt every secret after `pulumi up`."
)


# --------------------------------------------------------------------------------------------------
# The `pulumi preview --json` shape
# --------------------------------------------------------------------------------------------------


class ResourceState(BaseModel):
    """A resource's state in a step (`oldState` / `newState`): its URN, type, inputs and outputs."""

    model_config = ConfigDict(extra="allow")

    urn: str | None = None
    type: str | None = None
    inputs: dict[str, Any] | None = None
    outputs: dict[str, Any] | None = None

    def properties(self) -> dict[str, Any] | None:
        """The properties to compare: the inputs, or the outputs when the state has no inputs at all.

        Falling back per key would be wrong: during preview a new state's outputs can still hold the old
        values, so an input removed on purpose would look unchanged.
        """
        if self.inputs:
            return self.inputs
        if self.outputs:
            return self.outputs
        return None


class PropertyDiff(BaseModel):
    """One entry of a step's `detailedDiff`."""

    model_config = ConfigDict(extra="allow")

    kind: Literal["add", "delete", "update", "add-replace", "delete-replace", "update-replace"]
    inputDiff: bool = False


class Step(BaseModel):
    """One step of the plan: what the engine will do to one resource."""

    model_config = ConfigDict(extra="allow")

    op: str = Field(min_length=1)
    urn: str = Field(min_length=1)
    type: str | None = None
    provider: str | None = None
    oldState: ResourceState | None = None
    newState: ResourceState | None = None
    diffReasons: list[str] | None = None
    replaceReasons: list[str] | None = None
    detailedDiff: dict[str, PropertyDiff] | None = None


class Diagnostic(BaseModel):
    """A diagnostic the engine printed during preview."""

    model_config = ConfigDict(extra="allow")

    message: str = ""
    severity: str | None = None
    urn: str | None = None


class Preview(BaseModel):
    """The top-level object `pulumi preview --json` writes."""

    model_config = ConfigDict(extra="allow")

    steps: list[Step]
    changeSummary: dict[str, int] | None = None
    duration: float | None = None
    diagnostics: list[Diagnostic] | None = None


# --------------------------------------------------------------------------------------------------
# Overrides
# --------------------------------------------------------------------------------------------------


class KeyRotationOverride(BaseModel):
    """Permission for exactly one planned key id change: this cluster, this new versioned key id."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    urn: str = Field(min_length=1)
    newKeyId: str
    reason: str = Field(min_length=1)

    @field_validator("urn")
    @classmethod
    def _cluster_urn(cls, urn: str) -> str:
        resource_type = type_from_urn(urn)
        if resource_type is None:
            raise ValueError(f"not a Pulumi URN: {urn!r}")
        if canonical_type(resource_type) != MANAGED_CLUSTER:
            raise ValueError(
                f"names a {resource_type}; only a ManagedCluster's key id can be overridden{_lost_dollar_hint(urn)}"
            )
        return urn

    @field_validator("newKeyId")
    @classmethod
    def _versioned_key_id(cls, key_id: str) -> str:
        if not KEY_ID_PATTERN.match(key_id):
            raise ValueError(
                f"{key_id!r} is not a versioned key id "
                "(https://<vault>.vault.azure.net/keys/<name>/<32-hex-digit version>)"
            )
        return key_id

    @field_validator("reason")
    @classmethod
    def _real_reason(cls, reason: str) -> str:
        if not reason.strip():
            raise ValueError("a reason is required so reviewers know why the key changes")
        return reason.strip()


class OverrideFile(BaseModel):
    """The reviewable overrides file. Only key rotations can be overridden; unknown keys are refused."""

    model_config = ConfigDict(extra="forbid")

    keyRotations: list[KeyRotationOverride] = Field(default_factory=list)


# --------------------------------------------------------------------------------------------------
# Findings
# --------------------------------------------------------------------------------------------------


@dataclass(frozen=True)
class Finding:
    """One reason to refuse the plan, tied to a resource URN and a property path (or the step's op)."""

    rule: str
    urn: str
    path: str
    message: str
    # Set only for a key id change whose old and new ids are both known: the one thing an override excuses.
    new_key_id: str | None = None


@dataclass
class GuardResult:
    """What the guard concluded about one preview."""

    steps: int
    findings: list[Finding] = field(default_factory=list)
    allowed: list[tuple[Finding, KeyRotationOverride]] = field(default_factory=list)
    stale_overrides: list[tuple[KeyRotationOverride, str]] = field(default_factory=list)

    @property
    def exit_code(self) -> int:
        return EXIT_FINDINGS if self.findings else EXIT_CLEAN


class BadInput(Exception):
    """Input the guard cannot judge: reported as a message with exit status 2, never as a traceback."""


# --------------------------------------------------------------------------------------------------
# Helpers
# --------------------------------------------------------------------------------------------------


def _lost_dollar_hint(urn: str) -> str:
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


def type_from_urn(urn: str) -> str | None:
    """The resource type of `urn:pulumi:<stack>::<project>::<parent$>type::name`, or None if not a URN."""
    if not urn.startswith("urn:pulumi:"):
        return None
    parts = urn.split("::", 3)
    if len(parts) != 4 or not parts[2]:
        return None
    return parts[2].split("$")[-1]


def canonical_type(resource_type: str) -> str:
    """Drop an explicit API version from the module (`containerservice/v20250801` -> `containerservice`).

    azure-native also publishes every resource under versioned modules; a cluster declared through one
    of those is still a cluster.
    """
    parts = resource_type.split(":")
    if len(parts) == 3:
        parts[1] = parts[1].split("/")[0]
    return ":".join(parts)


def step_type(step: Step) -> str:
    resource_type = step.type or type_from_urn(step.urn)
    if not resource_type:
        raise BadInput(f"step for {step.urn!r} has no type and its URN does not name one")
    return canonical_type(resource_type)


def _unwrap_secret(value: Any) -> Any:
    """A secret shown with --show-secrets is a signature object around the value; keep only the value."""
    if isinstance(value, dict) and value.get(SECRET_SIG_KEY) == SECRET_SIG:
        return value.get("value", value.get("plaintext", MASKED_SECRET))
    return value


_MISSING = object()


def lookup(properties: Mapping[str, Any] | None, path: Sequence[str]) -> Any:
    """The value at `path`, `_MISSING` when absent, `UNKNOWN` when it or any parent is unknown."""
    current: Any = properties
    for segment in path:
        current = _unwrap_secret(current)
        if current == UNKNOWN:
            return UNKNOWN
        if not isinstance(current, dict) or segment not in current:
            return _MISSING
        current = current[segment]
    return _unwrap_secret(current)


_PATH_TOKEN = re.compile(r'\["((?:[^"\\]|\\.)*)"\]|\[(\d+)\]|([^.\[\]]+)')


def split_property_path(path: str) -> tuple[str, ...]:
    """Split a detailedDiff key (`identity.userAssignedIdentities[0]`, `tags["a.b"]`) into segments."""
    return tuple(quoted or index or plain for quoted, index, plain in _PATH_TOKEN.findall(path))


def _touches(diff_path: tuple[str, ...], guarded: tuple[str, ...]) -> bool:
    """True when a diff entry is at, below or above the guarded path (a parent replaced wholesale counts)."""
    shortest = min(len(diff_path), len(guarded))
    return diff_path[:shortest] == guarded[:shortest]


def _fmt(value: Any) -> str:
    if value is _MISSING:
        return "(absent)"
    if value == UNKNOWN:
        return "(unknown until apply)"
    return json.dumps(value) if not isinstance(value, str) else value


def _masked(*values: Any) -> bool:
    """True when any value, or anything nested in it, is a secret the preview printed as `[secret]`."""
    for value in values:
        if value == MASKED_SECRET:
            return True
        if isinstance(value, dict) and _masked(*value.values()):
            return True
        if isinstance(value, list) and _masked(*value):
            return True
    return False


# --------------------------------------------------------------------------------------------------
# Rules
# --------------------------------------------------------------------------------------------------


def _op_findings(step: Step, resource_type: str) -> Iterator[Finding]:
    short = resource_type.split(":")[-1]
    if step.op in DESTRUCTIVE_OPS:
        reasons = f" (replaceReasons: {', '.join(step.replaceReasons)})" if step.replaceReasons else ""
        yield Finding(
            rule="destructive-op",
            urn=step.urn,
            path=f"op={step.op}",
            message=(
                f"`{step.op}` on a {short}{reasons}: deleting or replacing the cluster, its key vault, its "
                "key or its KMS identity makes the secrets in etcd unreadable. This is never overridable; "
                "change the program so the resource stays in place."
            ),
        )
    elif step.op not in NON_DESTRUCTIVE_OPS:
        yield Finding(
            rule="unrecognised-op",
            urn=step.urn,
            path=f"op={step.op}",
            message=f"op `{step.op}` on a {short} is not one the guard knows to be safe; review it by hand.",
        )


def _key_id_finding(urn: str, old: Any, new: Any) -> Finding | None:
    path = ".".join(KEY_ID_PATH)
    if old == new:
        return None
    if new == UNKNOWN:
        return Finding(
            rule="kms-key-unknown",
            urn=urn,
            path=path,
            message=(
                f"the preview shows an unknown key id (known only after apply) on an existing cluster, "
                f"was {_fmt(old)}. An override cannot name an unknown key id: pin the new versioned key "
                "id in the stack config, preview again, then override that exact id."
            ),
        )
    if new is _MISSING or new is None or new == "":
        return Finding(
            rule="kms-key-removed",
            urn=urn,
            path=path,
            message=f"the KMS key id is removed from an existing cluster (was {_fmt(old)}).",
        )
    if old is _MISSING or old is None or old == "":
        return Finding(
            rule="kms-key-change",
            urn=urn,
            path=path,
            message=(
                f"a KMS key id is added to an existing cluster (KMS enabled in place): {_fmt(new)}. " + _OVERRIDE_HINT
            ),
            new_key_id=new if isinstance(new, str) else None,
        )
    return Finding(
        rule="kms-key-change",
        urn=urn,
        path=path,
        message=(
            f"the KMS key id changes on an existing cluster: {_fmt(old)} -> {_fmt(new)}. "
            "Changing keys was unsupported in the original KMS design; a rotation must be planned. " + _OVERRIDE_HINT
        ),
        new_key_id=new if isinstance(new, str) else None,
    )


def _enabled_finding(urn: str, old_props: Mapping[str, Any], new_props: Mapping[str, Any]) -> Finding | None:
    old = lookup(old_props, ENABLED_PATH)
    if old is not True:
        return None
    new = lookup(new_props, ENABLED_PATH)
    if new is True:
        return None
    path = ".".join(ENABLED_PATH)
    if new == UNKNOWN:
        detail = "becomes unknown until apply"
    elif lookup(new_props, KMS_PATH) in (_MISSING, None):
        path = ".".join(KMS_PATH)
        detail = "block is removed, which disables KMS"
    else:
        detail = f"goes from true to {_fmt(new)}"
    return Finding(
        rule="kms-disabled",
        urn=urn,
        path=path,
        message=(
            f"KMS {detail} on an existing cluster. Disabling KMS was unsupported in the original design; "
            "after it the old key must still never be deleted or expire. Not overridable."
        ),
    )


def _network_access_finding(urn: str, old: Any, new: Any) -> Finding | None:
    effective_old = DEFAULT_NETWORK_ACCESS if old in (_MISSING, None) else old
    effective_new = DEFAULT_NETWORK_ACCESS if new in (_MISSING, None) else new
    if effective_old == effective_new:
        return None
    return Finding(
        rule="kms-network-access-change",
        urn=urn,
        path=".".join(NETWORK_ACCESS_PATH),
        message=(
            f"keyVaultNetworkAccess changes {_fmt(effective_old)} -> {_fmt(effective_new)}. Switching "
            "Public<->Private requires disabling KMS first and cannot happen in place. Not overridable."
        ),
    )


def _identity_shape(identity: Any) -> Any:
    """Identity as (type, sorted ids), case-folded: ARM ids and enum values are case-insensitive.

    User-assigned identities are a list of ids on input and a map keyed by id on output.
    """
    if identity in (_MISSING, None) or identity == UNKNOWN or not isinstance(identity, dict):
        return identity
    identity_type = _unwrap_secret(identity.get("type"))
    ids = _unwrap_secret(identity.get("userAssignedIdentities"))
    if ids == UNKNOWN:
        return UNKNOWN
    if isinstance(ids, dict):
        id_list: Iterable[Any] = ids.keys()
    elif isinstance(ids, list):
        id_list = ids
    else:
        id_list = []
    if any(_unwrap_secret(i) == UNKNOWN for i in id_list):
        return UNKNOWN
    return (
        identity_type.lower() if isinstance(identity_type, str) else identity_type,
        tuple(sorted(str(_unwrap_secret(i)).lower() for i in id_list)),
    )


def _identity_finding(urn: str, old: Any, new: Any) -> Finding | None:
    old_shape, new_shape = _identity_shape(old), _identity_shape(new)
    if old_shape == new_shape:
        return None
    detail = "becomes unknown until apply" if new_shape == UNKNOWN else f"{_fmt(old)} -> {_fmt(new)}"
    return Finding(
        rule="identity-change",
        urn=urn,
        path=".".join(IDENTITY_PATH),
        message=(
            f"the cluster identity changes: {detail}. The KMS grant on the key belongs to that identity; "
            "a new identity without the grant cannot decrypt the secrets. Not overridable."
        ),
    )


_GUARDED_PATHS: dict[str, tuple[str, ...]] = {
    "kms-key-change": KEY_ID_PATH,
    "kms-disabled": ENABLED_PATH,
    "kms-network-access-change": NETWORK_ACCESS_PATH,
    "identity-change": IDENTITY_PATH,
}


def _state_findings(step: Step, old_props: dict[str, Any], new_props: dict[str, Any]) -> Iterator[Finding]:
    """Compare old and new values; a rule whose values are masked secrets is handed to the detailed diff."""
    urn = step.urn
    old_key, new_key = lookup(old_props, KEY_ID_PATH), lookup(new_props, KEY_ID_PATH)
    if _masked(old_key, new_key):
        yield from _diff_findings(step, only="kms-key-change", reason="its values are masked secrets")
    elif finding := _key_id_finding(urn, old_key, new_key):
        yield finding

    if _masked(lookup(old_props, ENABLED_PATH), lookup(new_props, ENABLED_PATH)):
        yield from _diff_findings(step, only="kms-disabled", reason="its values are masked secrets")
    elif finding := _enabled_finding(urn, old_props, new_props):
        yield finding

    old_net, new_net = lookup(old_props, NETWORK_ACCESS_PATH), lookup(new_props, NETWORK_ACCESS_PATH)
    if _masked(old_net, new_net):
        yield from _diff_findings(step, only="kms-network-access-change", reason="its values are masked")
    elif finding := _network_access_finding(urn, old_net, new_net):
        yield finding

    old_id, new_id = lookup(old_props, IDENTITY_PATH), lookup(new_props, IDENTITY_PATH)
    if _masked(old_id, new_id):
        yield from _diff_findings(step, only="identity-change", reason="its values are masked secrets")
    elif finding := _identity_finding(urn, old_id, new_id):
        yield finding


def _diff_findings(step: Step, *, only: str | None = None, reason: str) -> Iterator[Finding]:
    """Findings from `detailedDiff` (then `diffReasons`) when the old/new values cannot be compared."""
    rules = {only: _GUARDED_PATHS[only]} if only else _GUARDED_PATHS
    if step.detailedDiff:
        for diff_key, diff in step.detailedDiff.items():
            segments = split_property_path(diff_key)
            for rule, guarded in rules.items():
                if _touches(segments, guarded):
                    yield Finding(
                        rule=rule,
                        urn=step.urn,
                        path=diff_key,
                        message=(
                            f"detailedDiff marks {diff_key} ({diff.kind}), which covers "
                            f"{'.'.join(guarded)}, and the guard cannot compare old and new values "
                            f"because {reason}. Not overridable: an override needs the new key id "
                            "in newState."
                        ),
                    )
        return
    if step.diffReasons:
        for top_level in step.diffReasons:
            segments = split_property_path(top_level)
            for rule, guarded in rules.items():
                if _touches(segments, guarded):
                    yield Finding(
                        rule=rule,
                        urn=step.urn,
                        path=top_level,
                        message=(
                            f"diffReasons names {top_level}, which covers {'.'.join(guarded)}, and the "
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
                "an update of an existing cluster with no old/new state, no detailedDiff and no "
                "diffReasons: the guard cannot tell what changes, so it refuses."
            ),
        )


def _expiry(value: Any) -> str:
    if isinstance(value, int | float) and not isinstance(value, bool):
        return datetime.fromtimestamp(value, tz=UTC).strftime("%Y-%m-%dT%H:%M:%SZ")
    return _fmt(value)


def _data_plane_path(setting: tuple[str, ...], vault: str, key: str, new: Any) -> str:
    """The command that really makes the change on an existing key."""
    where = f"--vault-name {vault} --name {key}"
    if setting == ("properties", "attributes", "expires"):
        return f"az keyvault key set-attributes {where} --expires {_expiry(new)}"
    if setting == ("properties", "attributes", "notBefore"):
        return f"az keyvault key set-attributes {where} --not-before {_expiry(new)}"
    if setting == ("properties", "attributes", "enabled"):
        return f"az keyvault key set-attributes {where} --enabled {str(new).lower()}"
    if setting == ("tags",):
        return f"az keyvault key set-attributes {where} --tags ..."
    if setting == ("properties", "rotationPolicy"):
        return f"az keyvault key rotation-policy update {where} --value <policy.json>"
    # Type, size, curve, operations, exportability and release policy are fixed per version: only a new version
    # has new ones, and the cluster then moves to it as a planned rotation.
    return (
        f"az keyvault key create {where} with the new settings (a new version), or az keyvault key rotate {where}; "
        "then pin the new version and follow the planned rotation (guard override, re-encrypt)"
    )


def _changed_key_settings(step: Step) -> list[tuple[tuple[str, ...], str, Any, Any]]:
    """(setting path, diff path, old, new) for each create-time setting the step changes."""
    old_props = step.oldState.properties() if step.oldState else None
    new_props = step.newState.properties() if step.newState else None
    changed: list[tuple[tuple[str, ...], str, Any, Any]] = []
    if old_props is not None and new_props is not None:
        for setting in KEY_CREATE_TIME_SETTINGS:
            old, new = lookup(old_props, setting), lookup(new_props, setting)
            if old != new:
                changed.append((setting, ".".join(setting), old, new))
        if not changed:
            for top in ("properties", "tags"):
                old, new = lookup(old_props, (top,)), lookup(new_props, (top,))
                if old != new:
                    changed.append(((top,), top, old, new))
        return changed
    paths = list(step.detailedDiff or {}) or list(step.diffReasons or [])
    for diff_path in paths:
        segments = split_property_path(diff_path)
        if not segments or segments[0] not in ("properties", "tags"):
            continue
        setting = next((s for s in KEY_CREATE_TIME_SETTINGS if _touches(segments, s)), segments[:1])
        changed.append((setting, diff_path, _MISSING, _MISSING))
    return changed


def _key_findings(step: Step) -> Iterator[Finding]:
    """An update of an existing Key's settings: what ARM really does with it, and the path that works."""
    if step.op != "update":
        return
    state = step.newState or step.oldState
    inputs = state.properties() if state else None
    vault = inputs.get("vaultName", "<vault>") if inputs else "<vault>"
    key = inputs.get("keyName", "<key>") if inputs else "<key>"
    for setting, diff_path, old, new in _changed_key_settings(step):
        label = KEY_CREATE_TIME_SETTINGS.get(setting, diff_path)
        shown = (
            f" {_expiry(old)} -> {_expiry(new)}"
            if setting[-1] in ("expires", "notBefore")
            else ("" if old is _MISSING and new is _MISSING else f" {_fmt(old)} -> {_fmt(new)}")
        )
        if setting == ("properties", "attributes", "expires"):
            effect = (
                "fails the deployment with KeyCreationParametersDidNotMatchExistingKey: azure-native sends it as "
                "ARM's Keys_CreateIfNotExist, which does not update an existing key"
            )
        else:
            effect = (
                "is not applied: azure-native sends it as ARM's Keys_CreateIfNotExist, which returns the existing "
                "key unchanged, and the stack's state would then claim a setting the key does not have"
            )
        yield Finding(
            rule="key-create-time-change",
            urn=step.urn,
            path=diff_path,
            message=(
                f"the preview calls this an update, but the key's {label}{shown} {effect}. Make the change on the "
                f"data plane: {_data_plane_path(setting, vault, key, new)}; then `pulumi refresh` so the state "
                f"matches, and preview again: this finding is gone. Not overridable ({KEY_DOCS})."
            ),
        )


def _cluster_findings(step: Step) -> Iterator[Finding]:
    if step.op not in CHANGE_OPS and step.op in NON_DESTRUCTIVE_OPS:
        return  # a create has nothing existing to break; same/read/refresh/import change nothing
    if step.op in {"delete", "delete-replaced"}:
        return  # the op itself is the finding; there is no new state to compare
    old_props = step.oldState.properties() if step.oldState else None
    new_props = step.newState.properties() if step.newState else None
    if old_props is not None and new_props is not None:
        yield from _state_findings(step, old_props, new_props)
    else:
        yield from _diff_findings(step, reason="the preview carries no old/new state for it")


def check_preview(preview: Preview, overrides: Sequence[KeyRotationOverride] = ()) -> GuardResult:
    """Judge a parsed preview. Raises `BadInput` for a preview that cannot be judged."""
    if not preview.steps:
        raise BadInput("the preview has no steps at all; an empty plan is refused, nothing passes by default")
    errors = [d for d in preview.diagnostics or [] if (d.severity or "").lower() == "error"]
    if errors:
        raise BadInput(
            "the preview reported errors, so its plan is incomplete: "
            + "; ".join(d.message.strip() or "(no message)" for d in errors[:3])
        )

    findings: dict[tuple[str, str, str], Finding] = {}
    for step in preview.steps:
        resource_type = step_type(step)
        if resource_type not in GUARDED_TYPES:
            continue
        found = list(_op_findings(step, resource_type))
        if resource_type == MANAGED_CLUSTER:
            found.extend(_cluster_findings(step))
        elif resource_type == KEY:
            found.extend(_key_findings(step))
        for finding in found:
            # A replacement shows up as several steps for one URN; report each property finding once.
            findings.setdefault((finding.urn, finding.rule, finding.path), finding)

    result = GuardResult(steps=len(preview.steps))
    # An override is used when its (URN, new key id) pair excused a finding; the same pair given twice
    # (file and flag) is one permission, not a stale second one.
    used: set[tuple[str, str]] = set()
    for finding in findings.values():
        match = next(
            (
                o
                for o in overrides
                if finding.rule == "kms-key-change"
                and finding.new_key_id is not None
                and o.urn == finding.urn
                and o.newKeyId == finding.new_key_id
            ),
            None,
        )
        if match is None:
            result.findings.append(finding)
        else:
            used.add((match.urn, match.newKeyId))
            result.allowed.append((finding, match))

    planned = {f.urn: f.new_key_id for f in findings.values() if f.rule == "kms-key-change" and f.new_key_id}
    for override in dict.fromkeys(overrides):
        if (override.urn, override.newKeyId) in used:
            continue
        if override.urn in planned:
            why = f"the preview plans key id {planned[override.urn]} for this cluster, not this one"
        elif any(f.urn == override.urn for f in findings.values()):
            why = "this cluster has findings, but no key id change with a known new key id"
        else:
            why = "the preview has no key id change for this URN"
        result.stale_overrides.append((override, why))
    return result


# --------------------------------------------------------------------------------------------------
# Input
# --------------------------------------------------------------------------------------------------


def _validation_message(error: ValidationError, limit: int = 5) -> str:
    lines = []
    for item in error.errors()[:limit]:
        where = ".".join(str(part) for part in item["loc"]) or "(top level)"
        lines.append(f"{where}: {item['msg']}")
    more = len(error.errors()) - limit
    if more > 0:
        lines.append(f"... and {more} more")
    return "; ".join(lines)


def _read_text(source: str) -> str:
    try:
        if source == "-":
            return sys.stdin.read()
        return Path(source).read_text(encoding="utf-8")
    except (OSError, UnicodeDecodeError) as error:
        raise BadInput(f"cannot read {source}: {error}") from None


def load_preview(source: str) -> Preview:
    """Parse the file (or `-` for stdin) that `pulumi preview --json` wrote."""
    text = _read_text(source)
    if not text.strip():
        raise BadInput(f"{source} is empty: not a `pulumi preview --json` output")
    try:
        data = json.loads(text)
    except json.JSONDecodeError as error:
        raise BadInput(f"{source} is not JSON ({error}); expected `pulumi preview --json` output") from None
    if not isinstance(data, dict):
        raise BadInput(f"{source} holds a JSON {type(data).__name__}, not the preview's top-level object")
    try:
        return Preview.model_validate(data)
    except ValidationError as error:
        raise BadInput(f"{source} is not in the `pulumi preview --json` shape: {_validation_message(error)}") from None


def load_override_file(source: str) -> list[KeyRotationOverride]:
    """Parse a reviewable overrides file, YAML (`.yaml`/`.yml`) or JSON."""
    text = _read_text(source)
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
        raise BadInput(f"overrides file {source} must be a mapping with a `keyRotations` list")
    try:
        return OverrideFile.model_validate(data).keyRotations
    except ValidationError as error:
        raise BadInput(f"overrides file {source}: {_validation_message(error)}") from None


def parse_override_flag(value: str) -> KeyRotationOverride:
    """`URN=KEY_ID` from `--allow-key-rotation`; a URN holds no `=`, so split at the last one."""
    urn, sep, key_id = value.rpartition("=")
    if not sep or not urn or not key_id:
        raise BadInput(f"--allow-key-rotation expects URN=KEY_ID, got {value!r}")
    try:
        return KeyRotationOverride(urn=urn, newKeyId=key_id, reason="--allow-key-rotation on the command line")
    except ValidationError as error:
        raise BadInput(f"--allow-key-rotation {value!r}: {_validation_message(error)}") from None


# --------------------------------------------------------------------------------------------------
# Output and entry point
# --------------------------------------------------------------------------------------------------


def _summary(preview: Preview) -> str:
    if preview.changeSummary:
        return ", ".join(f"{op} {count}" for op, count in sorted(preview.changeSummary.items()))
    return "no changeSummary"


def render(result: GuardResult, preview: Preview, source: str, console: Console) -> None:
    """Print each finding with its URN and property path, then the overrides used and unused."""
    console.print(Text(f"plan guard: {source}: {result.steps} steps ({_summary(preview)})", style="bold"))
    for finding in result.findings:
        console.print(Text.assemble(("REFUSED ", "bold red"), (f"[{finding.rule}] ", "red"), finding.urn))
        console.print(Text(f"    at {finding.path}"))
        console.print(Text(f"    {finding.message}"))
    for finding, override in result.allowed:
        console.print(Text.assemble(("ALLOWED ", "bold yellow"), (f"[{finding.rule}] ", "yellow"), finding.urn))
        console.print(Text(f"    at {finding.path}: new key id {finding.new_key_id}"))
        console.print(Text(f"    by override: {override.reason}"))
    for override, why in result.stale_overrides:
        console.print(Text.assemble(("STALE OVERRIDE ", "bold yellow"), override.urn))
        console.print(Text(f"    newKeyId {override.newKeyId} matched nothing: {why}. Remove it."))
    if result.findings:
        count = len(result.findings)
        console.print(
            Text(
                f"plan guard: refused, {count} finding{'s' if count != 1 else ''}. "
                "Destructive ops, disabling KMS, network access and identity changes are never "
                "overridable; a key rotation needs an override naming the URN and the new key id; a Key's "
                "create-time settings change on the data plane, then `pulumi refresh`.",
                style="bold red",
            )
        )
    elif result.allowed:
        count = len(result.allowed)
        console.print(
            Text(
                f"plan guard: passed, with {count} key rotation{'s' if count != 1 else ''} allowed by "
                "override. Re-encrypt every secret after `pulumi up`.",
                style="bold green",
            )
        )
    else:
        console.print(Text("plan guard: passed, no irreversible KMS change in this plan.", style="bold green"))


def configure_parser(parser: argparse.ArgumentParser) -> argparse.ArgumentParser:
    """The arguments of `kms-aks guard`, shared by `kms_aks_tools.cli` and `python -m`."""
    parser.add_argument("preview", help="file written by `pulumi preview --json` (`-` for stdin)")
    parser.add_argument(
        "--overrides",
        metavar="FILE",
        help="reviewable YAML/JSON file: keyRotations: [{urn, newKeyId, reason}]",
    )
    parser.add_argument(
        "--allow-key-rotation",
        metavar="URN=KEY_ID",
        action="append",
        default=[],
        help="allow exactly this cluster's key id to change to exactly this versioned key id (repeatable; "
        "quote it in single quotes: URNs contain `$`)",
    )
    parser.set_defaults(run=run)
    return parser


def build_parser() -> argparse.ArgumentParser:
    description = "Refuse a `pulumi preview --json` plan that makes an irreversible KMS change."
    return configure_parser(subcommand_parser("guard", description))


def run(args: argparse.Namespace) -> int:
    """Run the guard; returns the exit status instead of raising, so tests can call it directly."""
    out = make_console()
    err = make_console(stderr=True)
    try:
        overrides: list[KeyRotationOverride] = []
        if args.overrides:
            overrides.extend(load_override_file(args.overrides))
        overrides.extend(parse_override_flag(value) for value in args.allow_key_rotation)
        preview = load_preview(args.preview)
        result = check_preview(preview, overrides)
    except BadInput as error:
        err.print(Text.assemble(("plan guard: bad input: ", "bold red"), str(error)))
        err.print(Text("plan guard: refused (exit 2). Nothing passes by default."))
        return EXIT_BAD_INPUT
    render(result, preview, args.preview, out)
    return result.exit_code


def main(argv: Sequence[str] | None = None) -> int:
    return run(build_parser().parse_args(argv))


if __name__ == "__main__":
    sys.exit(main())
