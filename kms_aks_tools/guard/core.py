"""Plan guard: refuses a `pulumi preview --json` plan that makes an irreversible or cutting KMS change.

A policy pack sees only the desired state, so it cannot tell a new cluster from an existing one whose KMS key is
being swapped, whose identity loses its grant on the key, or whose vault is closed to it. `pulumi preview` shows
all of those as ordinary one-line updates. This module reads the preview's steps (old and new state, detailed
diff) and refuses:

- on a cluster: a change of `securityProfile.azureKeyVaultKms.keyId` (including an unknown new key id, which
  cannot be reviewed); `enabled` going from true to false or the KMS block removed; any change of
  `keyVaultNetworkAccess`; a change of the cluster's `identity`;
- the rotation gate: a key id change away from a current key that has no re-encryption record in
  `rotations/<stack>.yaml` (written by `kms-aks reencrypt`) that `reencryption_records.judge` trusts: complete,
  with the API server's evidence for that key, about this cluster (its name and API server host in the old
  state). AKS keeps two key slots, and a rotation drops the older one with every Secret still stored under it;
- op `replace`, `create-replacement`, `delete-replaced` or `delete` on a ManagedCluster, a Key Vault, a Key Vault
  key or a user-assigned identity (and any op on a KMS-relevant type the guard does not know);
- on the KMS identity's grants (AccessPolicy, RoleAssignment): a delete or replace, an update that drops encrypt
  or decrypt or changes the principal, scope, role, vault or tenant; a grant the preview does not let the guard
  tie to the KMS identity, or clear of it, counts as the KMS identity's (fail closed);
- on a Key Vault: a change of the permission model (`properties.enableRbacAuthorization`), public network
  access, network ACLs (`properties.networkAcls`) or tenant (`properties.tenantId`);
- `protect` removed from a KMS resource (cluster, vault, key, identity, grant);
- an `update` of an existing Key Vault key's settings (expiry, size, type, operations, rotation policy, ...):
  azure-native sends it as ARM's `Keys_CreateIfNotExist`, which does not update an existing key. The preview
  calls it an update; the guard names it for what it is and gives the data-plane command that does it.

Every type is read through `azure_facts.tokens`: a KMS resource declared under a v2 versioned-module token or a
v3 parameterized-package token is judged as its plain type, and a KMS-relevant type in a form the guard does not
understand is a finding (`unrecognised-type`), never skipped.

Overrides live in a reviewable file (`--overrides guard-overrides.yaml`); each excuses exactly one finding:

- `keyRotations: [{urn, newKeyId, reason}]`: this cluster's key id may change to exactly this versioned key id
  (also `--allow-key-rotation URN=KEY_ID`);
- `reencryptionWaivers: [{urn, currentKeyId, reason}]`: this cluster may leave exactly this current key although
  it has no re-encryption record (the rotation gate);
- `transitions: [{urn, rule, at, reason}]`: exactly the finding printed as `REFUSED [rule] urn` / `at <at>`, for
  the rules that a change made in the safe order legitimately meets (grants, the vault's permission model,
  network and tenant, the cluster's identity, protect, and the deletion of a user-assigned identity).

Usage::

    python -m kms_aks_tools.guard preview.json [--overrides FILE] [--allow-key-rotation URN=KEY_ID ...]
        [--records DIR]

Exit status: 0 when the plan is clean, 1 when there are findings, 2 when the input is unusable (not JSON, not
the preview shape, no steps, a failed preview, a malformed override or records file). Nothing passes by
default: input the guard cannot read is a refusal, never a pass.
"""

from __future__ import annotations

import json
import re
from collections.abc import Iterable, Iterator, Mapping, Sequence
from dataclasses import dataclass, field
from datetime import UTC, datetime
from pathlib import Path
from typing import Annotated, Any

from pydantic import AfterValidator, BaseModel, ConfigDict, Field, ValidationError, model_validator

from azure_facts import VERSIONED_KEY_ID
from azure_facts.engine import UNKNOWN, stack_from_urn, type_from_urn
from azure_facts.key_ids import normalize_key_id
from azure_facts.kms_closure import Member
from azure_facts.tokens import (
    ACCESS_POLICY,
    KEY,
    KMS_RELEVANT_TYPES,
    MANAGED_CLUSTER,
    ROLE_ASSIGNMENT,
    USER_ASSIGNED_IDENTITY,
    VAULT,
    UnrecognisedKmsToken,
    canonical_type,
)
from kms_aks_tools.cli.exits import EXIT_BLOCKED, EXIT_OK
from kms_aks_tools.cluster.reencryption_records import (
    RECORDS_DIR,
    ClusterIdentity,
    RecordError,
    RecordFile,
    load_records,
    records_path,
    server_host,
    trusted_record,
)
from kms_aks_tools.guard.closure import closure_of, unreviewed_findings
from kms_aks_tools.preview.model import (
    MASKED_SECRET,
    MISSING,
    BadInput,
    Preview,
    Step,
    check_change_summary,
    lookup,
    read_text,
    split_property_path,
    unwrap_secret,
    validation_message,
)
from kms_aks_tools.project.stack_file import ProjectNotFoundError, find_project

# The stack config key that says whether a cluster outside the stack uses its vault's key (default: assumed so
# when the stack holds a vault or key but no cluster). docs/ci-and-state.md.
EXTERNAL_CLUSTER_CONFIG = "kms-aks:keyServesExternalCluster"


# Deleting or replacing any of these makes the cluster's etcd secrets unreadable (or the cluster gone).
GUARDED_TYPES = frozenset({MANAGED_CLUSTER, VAULT, KEY, USER_ASSIGNED_IDENTITY})
# The KMS identity's grants on the key (and, with a private vault, on the vault and subnets).
GRANT_TYPES = frozenset({ACCESS_POLICY, ROLE_ASSIGNMENT})
ROOT_STACK_TYPE = "pulumi:pulumi:Stack"

DESTRUCTIVE_OPS = frozenset({"replace", "create-replacement", "delete-replaced", "delete"})
REMOVING_OPS = frozenset({"delete", "delete-replaced"})
# Ops known to leave an existing guarded resource in place. Anything else on a KMS-relevant type is refused:
# a future CLI op the guard has never seen must not pass by default.
NON_DESTRUCTIVE_OPS = frozenset({"same", "create", "update", "read", "refresh", "import"})
# Ops whose step carries an existing resource's old state next to the planned new state.
CHANGE_OPS = frozenset({"update", "replace", "create-replacement"})


KMS_PATH: tuple[str, ...] = ("securityProfile", "azureKeyVaultKms")
KEY_ID_PATH = (*KMS_PATH, "keyId")
ENABLED_PATH = (*KMS_PATH, "enabled")
NETWORK_ACCESS_PATH = (*KMS_PATH, "keyVaultNetworkAccess")
PRIVATE_VAULT_PATH = (*KMS_PATH, "keyVaultResourceId")
IDENTITY_PATH: tuple[str, ...] = ("identity",)

# ARM's default when keyVaultNetworkAccess is omitted: an explicit "Public" is no change.
DEFAULT_NETWORK_ACCESS = "Public"

# A versioned Key Vault key identifier, as AKS KMS requires it (`key.kid`), from the shared Azure facts.
KEY_ID_PATTERN = VERSIONED_KEY_ID

# The vault's settings that decide whether the KMS identity reaches the key (ARM names, keyvault.json
# VaultProperties), with ARM's value when the property is absent.
VAULT_PERMISSION_MODEL_PATH = ("properties", "enableRbacAuthorization")
VAULT_PUBLIC_NETWORK_PATH = ("properties", "publicNetworkAccess")
VAULT_NETWORK_ACLS_PATH = ("properties", "networkAcls")
VAULT_TENANT_PATH = ("properties", "tenantId")
VAULT_ACCESS_POLICIES_PATH = ("properties", "accessPolicies")

# The grants' fields whose change moves or narrows the grant (ARM names: AccessPolicyEntry, RoleAssignment).
ACCESS_POLICY_PRINCIPAL = ("policy", "objectId")
ACCESS_POLICY_KEYS = ("policy", "permissions", "keys")
ROLE_ASSIGNMENT_PRINCIPAL = ("principalId",)
GRANT_FIELDS: dict[str, dict[tuple[str, ...], str]] = {
    ACCESS_POLICY: {
        ACCESS_POLICY_PRINCIPAL: "principal",
        ("policy", "tenantId"): "tenant",
        ("vaultName",): "vault",
        ("resourceGroupName",): "vault's resource group",
    },
    ROLE_ASSIGNMENT: {
        ROLE_ASSIGNMENT_PRINCIPAL: "principal",
        ("scope",): "scope",
        ("roleDefinitionId",): "role",
    },
}
# What AKS KMS needs on the key: wrap and unwrap data encryption keys.
KMS_KEY_PERMISSIONS = frozenset({"encrypt", "decrypt"})

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

# The findings a change made in the safe order legitimately meets: each one can be excused by a transition
# override naming its URN, rule and path. `destructive-op` only for deleting a user-assigned identity (the last
# step of an identity swap); on a cluster, vault or key it never is.
OVERRIDABLE_RULES = frozenset(
    {
        "identity-change",
        "kms-grant-removed",
        "kms-grant-replaced",
        "kms-grant-narrowed",
        "kms-grant-moved",
        "vault-permission-model-change",
        "vault-network-access-change",
        "vault-network-acls-change",
        "vault-tenant-change",
        "vault-access-policies-change",
        "protect-removed",
        "destructive-op",
        "unreviewed-kms-change",
    }
)
ROTATION_GATE_RULE = "rotation-without-reencryption"

# What the named rules judge on each type: a change at or below one of these paths is theirs to pass or refuse;
# any other change on a closure member is on the known-safe list or refused as unreviewed-kms-change.
JUDGED_PATHS: dict[str, tuple[tuple[str, ...], ...]] = {
    MANAGED_CLUSTER: (KEY_ID_PATH, ENABLED_PATH, NETWORK_ACCESS_PATH, PRIVATE_VAULT_PATH, IDENTITY_PATH),
    VAULT: (
        VAULT_ACCESS_POLICIES_PATH,
        VAULT_PERMISSION_MODEL_PATH,
        VAULT_PUBLIC_NETWORK_PATH,
        VAULT_NETWORK_ACLS_PATH,
        VAULT_TENANT_PATH,
    ),
    KEY: (("properties",), ("tags",)),  # key-create-time-change judges every setting of an existing key
    ACCESS_POLICY: (*GRANT_FIELDS[ACCESS_POLICY], ACCESS_POLICY_KEYS),
    ROLE_ASSIGNMENT: tuple(GRANT_FIELDS[ROLE_ASSIGNMENT]),
}

_OVERRIDE_HINT = (
    "For a planned rotation, add an entry {urn, newKeyId, reason} to keyRotations in the overrides file "
    "(or --allow-key-rotation URN=KEY_ID), then re-encrypt every secret after `pulumi up` (docs/rotation.md)."
)


def _transition_hint(rule: str, urn: str, path: str) -> str:
    return (
        f"When this is the planned step of that order, add {{urn: '{urn}', rule: {rule}, at: '{path}', reason}} "
        "to transitions in the overrides file: it excuses exactly this change."
    )


# --------------------------------------------------------------------------------------------------
# The `pulumi preview --json` shape
# --------------------------------------------------------------------------------------------------


# --------------------------------------------------------------------------------------------------
# Overrides
# --------------------------------------------------------------------------------------------------


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
        raise ValueError(f"{error}{_lost_dollar_hint(urn)}") from None
    if canonical != MANAGED_CLUSTER:
        raise ValueError(
            f"names a {resource_type}; only a ManagedCluster's key id can be overridden{_lost_dollar_hint(urn)}"
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
    # Set only for a key id change whose old and new ids are both known: what a rotation override names.
    new_key_id: str | None = None
    # Set on the rotation gate's finding: the cluster's current key, what a re-encryption waiver names.
    current_key_id: str | None = None
    # True when a transition override {urn, rule, at: path, reason} may excuse it.
    overridable: bool = False

    def excused_by(self, override: Override) -> bool:
        if override.urn != self.urn:
            return False
        if isinstance(override, KeyRotationOverride):
            return (
                self.rule == "kms-key-change" and self.new_key_id is not None and override.newKeyId == self.new_key_id
            )
        if isinstance(override, ReencryptionWaiver):
            return (
                self.rule == ROTATION_GATE_RULE
                and self.current_key_id is not None
                and normalize_key_id(override.currentKeyId) == normalize_key_id(self.current_key_id)
            )
        return self.overridable and override.rule == self.rule and override.at == self.path


@dataclass
class GuardResult:
    """What the guard concluded about one preview."""

    steps: int
    findings: list[Finding] = field(default_factory=list)
    allowed: list[tuple[Finding, Override]] = field(default_factory=list)
    stale_overrides: list[tuple[Override, str]] = field(default_factory=list)

    @property
    def exit_code(self) -> int:
        return EXIT_BLOCKED if self.findings else EXIT_OK


# --------------------------------------------------------------------------------------------------
# The re-encryption records (the rotation gate's input)
# --------------------------------------------------------------------------------------------------

_STACK_NAME = re.compile(r"^[A-Za-z0-9_.-]+$")


@dataclass
class Records:
    """Where the re-encryption records are: `--records DIR`, or `rotations/` of the project around `start`."""

    directory: Path | None = None
    start: Path = field(default_factory=Path.cwd)
    _loaded: dict[str, RecordFile] = field(default_factory=dict)

    def path_for(self, stack: str) -> Path:
        if not _STACK_NAME.match(stack):
            raise BadInput(f"stack name {stack!r} in a URN is not a stack name Pulumi allows")
        if self.directory is not None:
            return self.directory / f"{stack}.yaml"
        try:
            root = find_project(self.start)
        except ProjectNotFoundError:
            raise BadInput(
                f"the rotation gate needs the re-encryption records of stack {stack}, but no Pulumi.yaml is in "
                f"{self.start} or above: run the guard from the project, or pass --records DIR"
            ) from None
        return records_path(root, stack)

    def shown(self, path: Path) -> str:
        """`path` as the gate names it: relative to the project, whose `rotations/` is the working tree's (a copy
        of the project, as the sandbox runs the guard in, names the file to commit, not the copy's)."""
        if self.directory is not None:
            return str(path)
        return str(path.relative_to(path.parent.parent)) if path.parent.name == RECORDS_DIR else str(path)

    def load(self, stack: str) -> tuple[Path, RecordFile]:
        path = self.path_for(stack)
        if stack not in self._loaded:
            try:
                self._loaded[stack] = load_records(path, stack)
            except RecordError as error:
                raise BadInput(f"re-encryption records: {error}") from None
        return path, self._loaded[stack]


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


def _short(resource_type: str) -> str:
    return resource_type.rsplit(":", 1)[-1]


def _touches(diff_path: tuple[str, ...], guarded: tuple[str, ...]) -> bool:
    """True when a diff entry is at, below or above the guarded path (a parent replaced wholesale counts)."""
    shortest = min(len(diff_path), len(guarded))
    return diff_path[:shortest] == guarded[:shortest]


def _fmt(value: Any) -> str:
    if value is MISSING:
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
    if new is MISSING or new is None or new == "":
        return Finding(
            rule="kms-key-removed",
            urn=urn,
            path=path,
            message=f"the KMS key id is removed from an existing cluster (was {_fmt(old)}).",
        )
    if old is MISSING or old is None or old == "":
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


def _enabled_finding(
    urn: str, old_props: Mapping[str, Any], new_props: Mapping[str, Any], old_outputs: Mapping[str, Any] | None = None
) -> Finding | None:
    old = lookup(old_props, ENABLED_PATH)
    if old is not True and lookup(old_outputs, ENABLED_PATH) is not True:
        return None
    new = lookup(new_props, ENABLED_PATH)
    if new is True:
        return None
    path = ".".join(ENABLED_PATH)
    if new == UNKNOWN:
        detail = "becomes unknown until apply"
    elif lookup(new_props, KMS_PATH) in (MISSING, None):
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
    effective_old = DEFAULT_NETWORK_ACCESS if old in (MISSING, None) else old
    effective_new = DEFAULT_NETWORK_ACCESS if new in (MISSING, None) else new
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
    if identity in (MISSING, None) or identity == UNKNOWN or not isinstance(identity, dict):
        return identity
    identity_type = unwrap_secret(identity.get("type"))
    ids = unwrap_secret(identity.get("userAssignedIdentities"))
    if ids == UNKNOWN:
        return UNKNOWN
    if isinstance(ids, dict):
        id_list: Iterable[Any] = ids.keys()
    elif isinstance(ids, list):
        id_list = ids
    else:
        id_list = []
    if any(unwrap_secret(i) == UNKNOWN for i in id_list):
        return UNKNOWN
    return (
        identity_type.lower() if isinstance(identity_type, str) else identity_type,
        tuple(sorted(str(unwrap_secret(i)).lower() for i in id_list)),
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
            f"the cluster identity changes: {detail}. The KMS grant on the key belongs to the old identity; a new "
            "identity without its own grant cannot encrypt or decrypt, and the API server can no longer read the "
            "secrets in etcd. Safe order: create the new identity and grant it encrypt+decrypt on the key in one "
            "update (and let the grant propagate), switch the cluster to it in the next, remove the old grant "
            "and identity last. " + _transition_hint("identity-change", urn, ".".join(IDENTITY_PATH))
        ),
        overridable=True,
    )


def _private_vault_finding(urn: str, old: Any, new: Any) -> Finding | None:
    if _lower(old) == _lower(new) or (old in (MISSING, None) and new in (MISSING, None)):
        return None
    return Finding(
        rule="kms-private-vault-change",
        urn=urn,
        path=".".join(PRIVATE_VAULT_PATH),
        message=(
            f"keyVaultResourceId changes {_fmt(old)} -> {_fmt(new)}: with keyVaultNetworkAccess Private it names the "
            "vault AKS reaches the key through (its private endpoint); another id points the KMS plugin at another "
            "vault, which does not hold the cluster's key, or leaves it no way to the key. Keep it the vault of the "
            "key id; a move to another vault is a planned rotation to a key in that vault. Not overridable."
        ),
    )


def _observed_key_id(step: Step, old_props: Mapping[str, Any]) -> Any:
    """The cluster's key id as it is now: the refreshed outputs' when they hold one (an out-of-band change or
    drift shows there, not in the inputs), else the inputs'."""
    outputs = step.oldState.outputs if step.oldState else None
    refreshed = lookup(outputs, KEY_ID_PATH)
    if isinstance(refreshed, str) and refreshed and refreshed != UNKNOWN:
        return refreshed
    return lookup(old_props, KEY_ID_PATH)


_GUARDED_PATHS: dict[str, tuple[str, ...]] = {
    "kms-key-change": KEY_ID_PATH,
    "kms-disabled": ENABLED_PATH,
    "kms-network-access-change": NETWORK_ACCESS_PATH,
    "kms-private-vault-change": PRIVATE_VAULT_PATH,
    "identity-change": IDENTITY_PATH,
}


def _state_findings(step: Step, old_props: dict[str, Any], new_props: dict[str, Any]) -> Iterator[Finding]:
    """Compare old and new values; a rule whose values are masked secrets is handed to the detailed diff."""
    urn = step.urn
    old_key, new_key = _observed_key_id(step, old_props), lookup(new_props, KEY_ID_PATH)
    if _masked(old_key, new_key):
        yield from _diff_findings(step, only="kms-key-change", reason="its values are masked secrets")
    elif finding := _key_id_finding(urn, old_key, new_key):
        yield finding

    if _masked(lookup(old_props, ENABLED_PATH), lookup(new_props, ENABLED_PATH)):
        yield from _diff_findings(step, only="kms-disabled", reason="its values are masked secrets")
    elif finding := _enabled_finding(urn, old_props, new_props, step.oldState.outputs if step.oldState else None):
        yield finding

    old_net, new_net = lookup(old_props, NETWORK_ACCESS_PATH), lookup(new_props, NETWORK_ACCESS_PATH)
    if _masked(old_net, new_net):
        yield from _diff_findings(step, only="kms-network-access-change", reason="its values are masked")
    elif finding := _network_access_finding(urn, old_net, new_net):
        yield finding

    old_vault, new_vault = lookup(old_props, PRIVATE_VAULT_PATH), lookup(new_props, PRIVATE_VAULT_PATH)
    if _masked(old_vault, new_vault):
        yield from _diff_findings(step, only="kms-private-vault-change", reason="its values are masked")
    elif finding := _private_vault_finding(urn, old_vault, new_vault):
        yield finding

    old_id, new_id = lookup(old_props, IDENTITY_PATH), lookup(new_props, IDENTITY_PATH)
    if _masked(old_id, new_id):
        yield from _diff_findings(step, only="identity-change", reason="its values are masked secrets")
    elif finding := _identity_finding(urn, old_id, new_id):
        yield finding


def _diff_findings(
    step: Step,
    *,
    only: str | None = None,
    reason: str,
    guarded: Iterable[tuple[str, tuple[str, ...]]] | None = None,
    subject: str = "cluster",
) -> Iterator[Finding]:
    """Findings from `detailedDiff` (then `diffReasons`) when the old/new values cannot be compared.

    `guarded` pairs each rule with a property path it watches (default: the cluster's); a finding of an
    overridable rule stays overridable by a transition override naming the path printed.
    """
    pairs = _GUARDED_PATHS.items() if guarded is None else guarded
    rules = [(rule, path) for rule, path in pairs if only is None or rule == only]
    if step.detailedDiff:
        for diff_key, diff in step.detailedDiff.items():
            segments = split_property_path(diff_key)
            for rule, watched in rules:
                if _touches(segments, watched):
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
                                _transition_hint(rule, step.urn, diff_key)
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
                if _touches(segments, watched):
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
    hidden = any(_masked(lookup(props, (top,))) for props in (old_props, new_props) for top in ("properties", "tags"))
    if old_props is not None and new_props is not None and not hidden:
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
        changed.append((setting, diff_path, MISSING, MISSING))
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
            else ("" if old is MISSING and new is MISSING else f" {_fmt(old)} -> {_fmt(new)}")
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


# --------------------------------------------------------------------------------------------------
# Types: every form of a KMS-relevant token judged as its plain type, an unknown form refused
# --------------------------------------------------------------------------------------------------


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


# --------------------------------------------------------------------------------------------------
# Which grants are the KMS identity's
# --------------------------------------------------------------------------------------------------


def _lower(value: Any) -> Any:
    return value.lower() if isinstance(value, str) else value


def _unknown(value: Any) -> bool:
    return value == UNKNOWN or _masked(value)


def _identity_ids(identity: Any) -> tuple[set[str], bool]:
    """The user-assigned identity ids in a cluster's `identity` (list on input, map on output); True if unknown."""
    identity = unwrap_secret(identity)
    if identity in (MISSING, None):
        return set(), False
    if _unknown(identity) or not isinstance(identity, dict):
        return set(), True
    ids = unwrap_secret(identity.get("userAssignedIdentities"))
    if ids is None:
        return set(), False
    if _unknown(ids):
        return set(), True
    listed = list(ids.keys()) if isinstance(ids, dict) else ids if isinstance(ids, list) else []
    values = [unwrap_secret(i) for i in listed]
    if any(_unknown(v) or not isinstance(v, str) for v in values):
        return {v.lower() for v in values if isinstance(v, str) and not _unknown(v)}, True
    return {v.lower() for v in values}, False


@dataclass
class KmsIdentities:
    """The KMS identities' principals as far as the preview shows them, and why that view may be incomplete."""

    principals: set[str] = field(default_factory=set)
    gaps: list[str] = field(default_factory=list)


def kms_identities(judged: Sequence[tuple[Step, str]]) -> KmsIdentities:
    """The principals of every user-assigned identity a cluster in the preview uses (before or after).

    The view is complete only when the preview shows unchanged resources (`--show-sames`): without them an
    unchanged cluster or identity is simply absent, and a grant could not be cleared of being the KMS one.
    """
    view = KmsIdentities()
    shows_unchanged = any(
        step.op == "same"
        and type_ != ROOT_STACK_TYPE
        and bool(step.oldState and step.oldState.protect) == bool(step.newState and step.newState.protect)
        for step, type_ in judged
    )
    if not shows_unchanged:
        view.gaps.append(
            "the preview does not show unchanged resources, so the cluster and its identity may be missing from it "
            "(run `pulumi preview --json --show-sames`, as .ci/pulumi-stack preview does)"
        )
    cluster_ids: set[str] = set()
    for step, type_ in judged:
        if type_ != MANAGED_CLUSTER:
            continue
        for state in (step.oldState, step.newState):
            if state is None:
                continue
            for props in (state.inputs, state.outputs):
                ids, unknown = _identity_ids(lookup(props, IDENTITY_PATH))
                cluster_ids |= ids
                if unknown and props is state.inputs:
                    view.gaps.append(f"the identity of cluster {step.urn} is unknown until apply")
    principals_by_id: dict[str, set[Any]] = {}
    for step, type_ in judged:
        if type_ != USER_ASSIGNED_IDENTITY:
            continue
        for state in (step.oldState, step.newState):
            if state is None:
                continue
            outputs = state.outputs or {}
            for resource_id in {state.id, outputs.get("id")}:
                if isinstance(resource_id, str) and not _unknown(resource_id):
                    principals_by_id.setdefault(resource_id.lower(), set()).add(
                        unwrap_secret(outputs.get("principalId", MISSING))
                    )
    for identity_id in sorted(cluster_ids):
        principals = principals_by_id.get(identity_id)
        if principals is None:
            view.gaps.append(f"the cluster's identity {identity_id} is not in the preview")
            continue
        for principal in principals:
            if principal in (MISSING, None) or _unknown(principal) or not isinstance(principal, str):
                view.gaps.append(f"the principal of identity {identity_id} is not known in the preview")
            else:
                view.principals.add(principal.lower())
    return view


def _grant_principal_path(grant_type: str) -> tuple[str, ...]:
    return ACCESS_POLICY_PRINCIPAL if grant_type == ACCESS_POLICY else ROLE_ASSIGNMENT_PRINCIPAL


def _kms_grant_because(step: Step, grant_type: str, view: KmsIdentities) -> str | None:
    """Why this grant counts as the KMS identity's, or None when the preview shows it is not."""
    path = _grant_principal_path(grant_type)
    principals = [
        lookup(state.properties(), path) for state in (step.oldState, step.newState) if state and state.properties()
    ]
    for principal in principals:
        if isinstance(principal, str) and principal.lower() in view.principals:
            return f"it is held by the KMS identity (principal {principal})"
    if not principals:
        return "the preview carries no state for it, so its principal cannot be read"
    if any(p in (MISSING, None) or _unknown(p) for p in principals):
        return "its principal is unknown or masked in the preview, so it cannot be cleared of being the KMS identity's"
    if view.gaps:
        return "it cannot be cleared of being the KMS identity's: " + "; ".join(dict.fromkeys(view.gaps))
    return None


# --------------------------------------------------------------------------------------------------
# Grants, the vault, protect
# --------------------------------------------------------------------------------------------------

_GRANT_SAFE_ORDER = (
    "Safe order: add the new grant in one update and let it propagate, switch to it in the next, and remove the "
    "old grant last, in its own update."
)


def _grant_findings(step: Step, grant_type: str, view: KmsIdentities) -> Iterator[Finding]:
    if step.op in {"create", "same", "read", "refresh", "import"}:
        return
    because = _kms_grant_because(step, grant_type, view)
    if because is None:
        return
    short = _short(grant_type)
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
                + _transition_hint(rule, step.urn, path)
            ),
            overridable=True,
        )
        return
    if step.op != "update":
        return  # an op the guard does not know is refused by _op_findings
    old_props = step.oldState.properties() if step.oldState else None
    new_props = step.newState.properties() if step.newState else None
    watched = [("kms-grant-moved", p) for p in GRANT_FIELDS[grant_type]]
    if grant_type == ACCESS_POLICY:
        watched.append(("kms-grant-narrowed", ACCESS_POLICY_KEYS))
    if old_props is None or new_props is None:
        yield from _diff_findings(
            step,
            reason=f"the preview carries no old/new state for it ({because})",
            guarded=watched,
            subject=f"{short} ({because})",
        )
        return
    if any(_masked(lookup(old_props, path), lookup(new_props, path)) for _, path in watched):
        yield from _diff_findings(
            step, reason=f"its values are masked ({because})", guarded=watched, subject=f"{short} ({because})"
        )
        return
    for field_path, label in GRANT_FIELDS[grant_type].items():
        old, new = lookup(old_props, field_path), lookup(new_props, field_path)
        if _lower(old) == _lower(new):
            continue
        path = ".".join(field_path)
        yield Finding(
            rule="kms-grant-moved",
            urn=step.urn,
            path=path,
            message=(
                f"this {short}'s {label} changes {_fmt(old)} -> {_fmt(new)}; {because}. The grant then no longer "
                f"gives the KMS identity encrypt/decrypt on the key, and {cut}. {_GRANT_SAFE_ORDER} "
                + _transition_hint("kms-grant-moved", step.urn, path)
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
                    f"this AccessPolicy's key permissions change {_fmt(old_keys)} -> {_fmt(new_keys)}, dropping "
                    f"{', '.join(lost)}; {because}. AKS KMS needs both encrypt and decrypt: {cut}. Keep both "
                    "permissions; to move them, grant them elsewhere first. "
                    + _transition_hint("kms-grant-narrowed", step.urn, path)
                ),
                overridable=True,
            )


def _lost_permissions(old: Any, new: Any) -> list[str]:
    """The KMS permissions the old key permissions had and the new ones lack (all of them when new is unknown)."""
    old_set = _key_permissions(old)
    had = sorted(KMS_KEY_PERMISSIONS & old_set)
    if new == UNKNOWN or _masked(new) or (isinstance(new, list) and any(_unknown(p) for p in new)):
        return [f"{p} (unknown until apply)" for p in had] or ["(unknown until apply)"]
    new_set = _key_permissions(new)
    return [p for p in had if p not in new_set]


def _key_permissions(permissions: Any) -> set[str]:
    """Key permissions as Key Vault applies them: `all` grants every key permission, encrypt and decrypt too
    (the `KeyPermissions` enum of the keyvault.json spec lists `all` beside the single permissions)."""
    listed = {p.lower() for p in permissions if isinstance(p, str)} if isinstance(permissions, list) else set()
    return listed | KMS_KEY_PERMISSIONS if "all" in listed else listed


def _normalised_acls(acls: Any) -> Any:
    """A vault's networkAcls as ARM applies them: absent means Allow with the AzureServices bypass."""
    acls = unwrap_secret(acls)
    if acls in (MISSING, None):
        acls = {}
    if not isinstance(acls, dict) or _unknown(acls):
        return acls
    return {
        "defaultAction": _lower(acls.get("defaultAction", "Allow")),
        "bypass": _lower(acls.get("bypass", "AzureServices")),
        "ipRules": sorted(json.dumps(r, sort_keys=True).lower() for r in acls.get("ipRules") or []),
        "virtualNetworkRules": sorted(
            json.dumps(r, sort_keys=True).lower() for r in acls.get("virtualNetworkRules") or []
        ),
    }


_VAULT_PATHS: dict[str, tuple[str, ...]] = {
    "vault-access-policies-change": VAULT_ACCESS_POLICIES_PATH,
    "vault-permission-model-change": VAULT_PERMISSION_MODEL_PATH,
    "vault-network-access-change": VAULT_PUBLIC_NETWORK_PATH,
    "vault-network-acls-change": VAULT_NETWORK_ACLS_PATH,
    "vault-tenant-change": VAULT_TENANT_PATH,
}


def _vault_findings(step: Step) -> Iterator[Finding]:
    if step.op not in CHANGE_OPS:
        return  # create/same change nothing existing; delete and unknown ops are _op_findings'
    old_props = step.oldState.properties() if step.oldState else None
    new_props = step.newState.properties() if step.newState else None
    if old_props is None or new_props is None:
        yield from _diff_findings(
            step,
            reason="the preview carries no old/new state for it",
            guarded=_VAULT_PATHS.items(),
            subject="key vault",
        )
        return
    urn = step.urn

    def finding(rule: str, detail: str) -> Finding:
        path = ".".join(_VAULT_PATHS[rule])
        return Finding(
            rule=rule,
            urn=urn,
            path=path,
            message=f"{detail} {_transition_hint(rule, urn, path)}",
            overridable=True,
        )

    masked = {rule: _masked(lookup(old_props, path), lookup(new_props, path)) for rule, path in _VAULT_PATHS.items()}
    for rule in (r for r, hidden in masked.items() if hidden):
        yield from _diff_findings(
            step, only=rule, reason="its values are masked", guarded=_VAULT_PATHS.items(), subject="key vault"
        )
    old_policies = lookup(old_props, VAULT_ACCESS_POLICIES_PATH)
    new_policies = lookup(new_props, VAULT_ACCESS_POLICIES_PATH)
    if not masked["vault-access-policies-change"] and old_policies != new_policies:
        yield finding(
            "vault-access-policies-change",
            f"the vault's inline access policies change {_fmt(old_policies)} -> {_fmt(new_policies)}. A vault "
            "update replaces the whole accessPolicies list (Key Vault keeps one list, one entry per object id), so "
            "writing it drops every access policy declared as its own AccessPolicy resource, the KMS identity's "
            "grant included, and an inline KMS entry can lose decrypt or move to another principal with it. The "
            "azure-native maintainers warn: use stand-alone access policies or inline ones, not both "
            "(pulumi/pulumi-azure-native#594). Keep the KMS grant a separate AccessPolicy and leave "
            "properties.accessPolicies out of the Vault.",
        )
    old_rbac = lookup(old_props, VAULT_PERMISSION_MODEL_PATH)
    new_rbac = lookup(new_props, VAULT_PERMISSION_MODEL_PATH)
    if not masked["vault-permission-model-change"] and ((old_rbac is True) != (new_rbac is True) or _unknown(new_rbac)):
        yield finding(
            "vault-permission-model-change",
            f"the vault's permission model changes: enableRbacAuthorization {_fmt(old_rbac)} -> {_fmt(new_rbac)}. "
            "Key Vault honours access policies only with RBAC off and role assignments only with it on, so the KMS "
            "identity's grant stops working the moment the switch applies, and the cluster can no longer encrypt "
            "or decrypt. Safe order: add the grant of the new model (a Key Vault Crypto User role assignment on "
            "the key, or an access policy with encrypt+decrypt) in one update and let it propagate, switch the "
            "model in the next, remove the old grant last.",
        )
    old_public = lookup(old_props, VAULT_PUBLIC_NETWORK_PATH)
    new_public = lookup(new_props, VAULT_PUBLIC_NETWORK_PATH)
    effective = [_lower("Enabled" if v in (MISSING, None) else v) for v in (old_public, new_public)]
    if not masked["vault-network-access-change"] and (effective[0] != effective[1] or _unknown(new_public)):
        yield finding(
            "vault-network-access-change",
            f"the vault's publicNetworkAccess changes {_fmt(old_public)} -> {_fmt(new_public)}. A cluster whose KMS "
            "uses keyVaultNetworkAccess Public reaches the key over the vault's public endpoint: closing it cuts "
            "the cluster off its key. Safe way: move the cluster's KMS to Private first (docs/private-key-vault.md),"
            " then close the vault in a later update.",
        )
    old_acls = lookup(old_props, VAULT_NETWORK_ACLS_PATH)
    new_acls = lookup(new_props, VAULT_NETWORK_ACLS_PATH)
    if not masked["vault-network-acls-change"] and (
        _normalised_acls(old_acls) != _normalised_acls(new_acls) or _unknown(new_acls)
    ):
        deny = isinstance(new_acls, dict) and _lower(new_acls.get("defaultAction")) == "deny"
        yield finding(
            "vault-network-acls-change",
            f"the vault's networkAcls change {_fmt(old_acls)} -> {_fmt(new_acls)}. "
            + (
                'defaultAction Deny is Key Vault\'s "selected networks" firewall, which AKS KMS does not support '
                "with a public vault (keyVaultNetworkAccess Public): the KMS plugin's calls are refused. "
                if deny
                else "Network rules decide whether the KMS plugin reaches the key. "
            )
            + "Keep defaultAction Allow while the cluster's KMS is Public; to close the vault, move the cluster's "
            "KMS to Private first (docs/private-key-vault.md).",
        )
    old_tenant = lookup(old_props, VAULT_TENANT_PATH)
    new_tenant = lookup(new_props, VAULT_TENANT_PATH)
    if not masked["vault-tenant-change"] and (_lower(old_tenant) != _lower(new_tenant)):
        yield finding(
            "vault-tenant-change",
            f"the vault's tenantId changes {_fmt(old_tenant)} -> {_fmt(new_tenant)}. The vault then authenticates "
            "against another tenant: the KMS identity (a managed identity of the old tenant) and every access "
            "policy are no longer honoured, and the cluster is cut off its key. Moving tenants is a migration: a "
            "vault and key in the new tenant, an identity granted there, a planned rotation to the new key "
            "(guard override, re-encryption), and the old vault retired last.",
        )


def _protect_finding(step: Step, resource_type: str) -> Finding | None:
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
            f"`protect` comes off this {_short(resource_type)}: after this update, removing it from the program or a "
            "`pulumi destroy` deletes it without a further stop, and losing the cluster's key, vault, identity or "
            "grant makes the secrets in etcd unreadable. Lift protection only in its own reviewed update, right "
            "before a planned removal. " + _transition_hint("protect-removed", step.urn, path)
        ),
        overridable=True,
    )


def _op_findings(step: Step, resource_type: str, member: Member | None = None) -> Iterator[Finding]:
    short = _short(resource_type)
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
                    + _transition_hint("destructive-op", step.urn, path)
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


# --------------------------------------------------------------------------------------------------
# The rotation gate
# --------------------------------------------------------------------------------------------------


def _gate_findings(
    key_changes: Iterable[Finding],
    current_keys: Mapping[str, str],
    clusters: Mapping[str, ClusterIdentity],
    records: Records,
) -> Iterator[Finding]:
    """A key id change away from a current key without a re-encryption record `reencryption_records.judge` trusts."""
    for change in key_changes:
        current = current_keys.get(change.urn)
        if current is None:
            continue  # KMS enabled in place: no current key, nothing stored under an older one
        stack = stack_from_urn(change.urn)
        found, record_file = records.load(stack)
        trusted, verdicts = trusted_record(record_file, current, clusters[change.urn])
        if trusted is not None:
            continue
        why = " Its records were refused: " + "; ".join(v.reason for v in verdicts[:3]) + "." if verdicts else ""
        path = records.shown(found)
        yield Finding(
            rule=ROTATION_GATE_RULE,
            urn=change.urn,
            path=change.path,
            message=(
                f"the cluster's current key {current} has no verified re-encryption record of this cluster in "
                f"{path}: some Secrets may still be stored under the previous key.{why} AKS keeps two key slots "
                f"(current and previous); after this change {current} becomes the previous key and the older one "
                "is dropped, with every Secret still under it unreadable. First rewrite every Secret under the "
                f"current key: `kms-aks reencrypt --stack {stack} --key-id {current} --context <kube-context>`, and "
                f"commit the record it writes ({path}); then preview again (docs/rotation.md). Only if no Secret "
                f"can be under an older key (e.g. the cluster has only ever used this one), add {{urn, currentKeyId: "
                f"'{current}', reason}} to reencryptionWaivers in the overrides file; the rotation override is needed "
                "as well."
            ),
            current_key_id=current,
        )


def _cluster_identity(step: Step) -> ClusterIdentity:
    """The cluster a re-encryption record must name: its resource name and API server hosts, from the old state
    (outputs `name`, `fqdn`, `privateFQDN`). What is masked, unknown or absent is None: the record is refused."""
    outputs = (step.oldState.outputs if step.oldState else None) or {}

    def plain(key: str) -> str | None:
        value = outputs.get(key)
        return value if isinstance(value, str) and value and value != UNKNOWN and not _masked(value) else None

    hosts = frozenset(server_host(h) for h in (plain("fqdn"), plain("privateFQDN")) if h)
    return ClusterIdentity(name=plain("name"), hosts=hosts or None)


def _current_key_id(step: Step) -> str | None:
    """The key id the cluster uses now (old state: refreshed outputs first), when it is a plain known value."""
    old_props = step.oldState.properties() if step.oldState else None
    old = _observed_key_id(step, old_props or {})
    return old if isinstance(old, str) and old and old != UNKNOWN and not _masked(old) else None


# --------------------------------------------------------------------------------------------------
# The whole preview
# --------------------------------------------------------------------------------------------------


def _external_cluster_config(preview: Preview) -> bool | None:
    """The stack config's `kms-aks:keyServesExternalCluster`, as the preview shows its config."""
    config = (preview.model_extra or {}).get("config")
    value = config.get(EXTERNAL_CLUSTER_CONFIG) if isinstance(config, dict) else None
    if value is None:
        return None
    if isinstance(value, bool):
        return value
    if isinstance(value, str) and value.lower() in ("true", "false"):
        return value.lower() == "true"
    raise BadInput(f"stack config {EXTERNAL_CLUSTER_CONFIG} is {value!r}; it takes true or false")


def check_preview(preview: Preview, overrides: Sequence[Override] = (), records: Records | None = None) -> GuardResult:
    """Judge a parsed preview. Raises `BadInput` for a preview (or records file) that cannot be judged.

    `records` locates the re-encryption records for the rotation gate (default: `rotations/` of the project
    around the working directory).
    """
    if not preview.steps:
        raise BadInput("the preview has no steps at all; an empty plan is refused, nothing passes by default")
    errors = [d for d in preview.diagnostics or [] if (d.severity or "").lower() == "error"]
    if errors:
        raise BadInput(
            "the preview reported errors, so its plan is incomplete: "
            + "; ".join(d.message.strip() or "(no message)" for d in errors[:3])
        )

    check_change_summary(preview)

    findings: dict[tuple[str, str, str], Finding] = {}
    judged: list[tuple[Step, str]] = []
    for step in preview.steps:
        resource_type, type_findings = judge_types(step)
        judged.append((step, resource_type))
        for finding in type_findings:
            findings.setdefault((finding.urn, finding.rule, finding.path), finding)
    closure = closure_of(judged, external_cluster=_external_cluster_config(preview))
    view = kms_identities(judged)
    if closure.external_cluster:
        view.gaps.append(
            "the stack holds a key vault but no cluster, so a cluster in another stack may use its key through this "
            f"grant (set {EXTERNAL_CLUSTER_CONFIG}: false in the stack config if none does)"
        )

    current_keys: dict[str, str] = {}
    clusters: dict[str, ClusterIdentity] = {}
    for step, resource_type in judged:
        member = closure.members.get(step.urn)
        if resource_type not in KMS_RELEVANT_TYPES and member is None:
            continue
        found = list(_op_findings(step, resource_type, member))
        if resource_type == MANAGED_CLUSTER:
            found.extend(_cluster_findings(step))
            if (current := _current_key_id(step)) is not None:
                current_keys[step.urn] = current
                clusters[step.urn] = _cluster_identity(step)
        elif resource_type == KEY:
            found.extend(_key_findings(step))
        elif resource_type == VAULT:
            found.extend(_vault_findings(step))
        elif resource_type in GRANT_TYPES:
            found.extend(_grant_findings(step, resource_type, view))
        if (protect := _protect_finding(step, resource_type)) is not None:
            found.append(protect)
        if member is not None and not (
            resource_type in GRANT_TYPES and _kms_grant_because(step, resource_type, view) is None
        ):
            # A grant cleared of being the KMS identity's is judged whole by the grant rules.
            refused = [split_property_path(f.path) for f in found if not f.path.startswith("op=")]
            for rule, path, message, overridable in unreviewed_findings(
                step, member, JUDGED_PATHS.get(resource_type, ()), refused
            ):
                found.append(Finding(rule=rule, urn=step.urn, path=path, message=message, overridable=overridable))
        for finding in found:
            # A replacement shows up as several steps for one URN; report each property finding once.
            findings.setdefault((finding.urn, finding.rule, finding.path), finding)

    key_changes = [f for f in findings.values() if f.rule == "kms-key-change" and f.new_key_id is not None]
    for finding in _gate_findings(key_changes, current_keys, clusters, records or Records()):
        findings.setdefault((finding.urn, finding.rule, finding.path), finding)

    result = GuardResult(steps=len(preview.steps))
    unique = list(dict.fromkeys(overrides))
    for finding in findings.values():
        match = next((o for o in unique if finding.excused_by(o)), None)
        if match is None:
            result.findings.append(finding)
        else:
            result.allowed.append((finding, match))
    # Stale: an override that matches no finding. The same permission given twice (file and flag, with different
    # reasons) matches the same finding, so neither is stale.
    for override in unique:
        if not any(finding.excused_by(override) for finding in findings.values()):
            result.stale_overrides.append((override, _why_stale(override, findings.values())))
    return result


def _why_stale(override: Override, findings: Iterable[Finding]) -> str:
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


# --------------------------------------------------------------------------------------------------
# Input
# --------------------------------------------------------------------------------------------------


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
