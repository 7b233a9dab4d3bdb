"""Whether each KMS key's expiry and rotation policy leave time to rotate it (`kms-aks rotate-check`, whose
options, output and exit codes are in `kms_aks_tools.commands.rotate_check`).

An expired key version breaks the cluster, and AKS keeps using the version its `keyId` names until an operator
moves it (this project pins it; docs/rotation.md). So every version must stay valid until its successor
exists and the cluster has been moved to it and its secrets re-encrypted. `run_rotation_check` runs the real
program for the stack under the mock engine, as `pulumi preview` would, finds the key(s) each KMS cluster uses,
and `check_rotation` judges them: refusals (exit 1) and warnings, as the command's help says.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field
from datetime import date, timedelta
from pathlib import Path
from typing import Any, Literal

from azure_facts import VERSIONED_KEY_ID
from azure_facts.findings import Finding, Outcome, violation, warning
from azure_facts.key_validity import duration_days as shared_duration_days
from azure_facts.key_validity import encrypt_blockers, unix_date
from azure_facts.key_validity import first_rotation as shared_first_rotation
from kms_aks.config.stack import PROJECT, StackConfig
from kms_aks_tools.cli.exits import EXIT_BLOCKED, EXIT_OK, UserError
from kms_aks_tools.offline.mock_engine import ROOT, run_stack
from kms_aks_tools.offline.recording import UNKNOWN, RecordedResource, RecordedStack
from kms_aks_tools.project.stack_config import stack_config_from_file
from kms_aks_tools.project.stack_file import check_stack, load_stack_file

CLUSTER = "azure-native:containerservice:ManagedCluster"
KEY = "azure-native:keyvault:Key"
KEY_ID_PATH = "securityProfile.azureKeyVaultKms.keyId"

# Key Vault's own floor between a rotation and the expiry of the version it replaces; below it there is no
# time to move the cluster to the new version and re-encrypt its secrets.
MIN_ROTATION_WINDOW_DAYS = 7


@dataclass
class KeyRotation:
    """What the stack says about one KMS key: where it comes from, when it expires, how it rotates."""

    name: str
    source: Literal["created", "existing"]
    cluster: str
    key_id: str | None = None
    pinned_version: str | None = None
    protected: bool = True
    expires_on: date | None = None
    not_before: date | None = None
    rotate_after_days: int | None = None
    rotate_before_expiry_days: int | None = None
    expire_after_days: int | None = None
    notify_before_expiry_days: int | None = None
    findings: list[Finding] = field(default_factory=list)
    notes: list[str] = field(default_factory=list)

    @property
    def rotation_interval_days(self) -> int | None:
        """Days from a version's creation to its automatic rotation, whichever trigger the policy uses."""
        if self.rotate_after_days is not None:
            return self.rotate_after_days
        if self.rotate_before_expiry_days is not None and self.expire_after_days is not None:
            return self.expire_after_days - self.rotate_before_expiry_days
        return None

    @property
    def window_days(self) -> int | None:
        """Days between a rotation and the expiry of the version it replaces: the time to move and re-encrypt."""
        interval = self.rotation_interval_days
        if interval is None or self.expire_after_days is None:
            return None
        return self.expire_after_days - interval


@dataclass
class RotationReport:
    """Every KMS key of a stack with its findings; `exit_code` 1 when any is refused."""

    stack: str
    as_of: date
    keys: list[KeyRotation] = field(default_factory=list)

    @property
    def refusals(self) -> list[tuple[KeyRotation, Finding]]:
        return [(k, f) for k in self.keys for f in k.findings if f.outcome is Outcome.VIOLATION]

    @property
    def warnings(self) -> list[tuple[KeyRotation, Finding]]:
        return [(k, f) for k in self.keys for f in k.findings if f.outcome is Outcome.WARNING]

    @property
    def exit_code(self) -> int:
        return EXIT_BLOCKED if self.refusals else EXIT_OK


class RotationCheckError(UserError):
    """Input the check cannot judge (unknown stack, invalid config): a message, exit status 2."""


# ------------------------------------------------------------------------------------------- reading


def duration_days(value: Any) -> int | None:
    """Days of an ISO 8601 duration as Key Vault writes them (P90D, P3M, P1Y); months count 30 days, years 365."""
    return None if value == UNKNOWN else shared_duration_days(value)


def _get(data: Any, *path: str) -> Any:
    for key in path:
        if not isinstance(data, Mapping):
            return None
        data = data.get(key)
    return data


def _key_property(key: RecordedResource, name: str) -> Any:
    # Inputs nest key settings under `properties`; the provider's outputs flatten them.
    value = _get(key.inputs, "properties", name)
    return value if value is not None else key.outputs.get(name)


def _unix_date(value: Any) -> date | None:
    return unix_date(value)


def _read_key(key: RecordedResource, into: KeyRotation) -> None:
    into.expires_on = _unix_date(_get(_key_property(key, "attributes"), "expires"))
    into.not_before = _unix_date(_get(_key_property(key, "attributes"), "notBefore"))
    policy = _key_property(key, "rotationPolicy")
    into.expire_after_days = duration_days(_get(policy, "attributes", "expiryTime"))
    for action in _get(policy, "lifetimeActions") or []:
        kind = str(_get(action, "action", "type") or "").lower()
        trigger = _get(action, "trigger") or {}
        if kind == "rotate":
            into.rotate_after_days = duration_days(trigger.get("timeAfterCreate"))
            into.rotate_before_expiry_days = duration_days(trigger.get("timeBeforeExpiry"))
        elif kind == "notify":
            into.notify_before_expiry_days = duration_days(trigger.get("timeBeforeExpiry"))


def _created_on(key: RecordedResource, as_of: date) -> date:
    """When the key (its first version) was created: the provider's answer when known, else `as_of`."""
    return _unix_date(_get(key.outputs, "attributes", "created")) or as_of


# ------------------------------------------------------------------------------------------- checking


def _check_created_key(info: KeyRotation, created: date, as_of: date) -> None:
    interval, expire, window = info.rotation_interval_days, info.expire_after_days, info.window_days
    if expire is not None and interval is not None:
        if expire <= interval:
            info.findings.append(
                violation(
                    f"versions expire {expire} days after creation but are rotated only after {interval} days: "
                    "the version the cluster uses expires before its successor exists, and an expired key breaks "
                    f"the cluster. Make the rotation policy's expiry longer than its rotation interval by at least "
                    f"{MIN_ROTATION_WINDOW_DAYS} days ({PROJECT}:kmsKey.rotation: expireAfterDays > rotateAfterDays).",
                )
            )
        elif window is not None and window < MIN_ROTATION_WINDOW_DAYS:
            info.findings.append(
                violation(
                    f"a version expires {window} days after it is rotated: too little time to move the cluster to "
                    f"the new version and re-encrypt every secret (Key Vault requires {MIN_ROTATION_WINDOW_DAYS}). "
                    f"Leave at least {MIN_ROTATION_WINDOW_DAYS} days between rotateAfterDays and expireAfterDays.",
                )
            )
    elif expire is not None:
        notify = (
            f" (Key Vault notifies {info.notify_before_expiry_days} days before)"
            if info.notify_before_expiry_days
            else ""
        )
        info.findings.append(
            warning(
                f"versions expire {expire} days after creation and nothing rotates them automatically: rotate by "
                f"hand before each expiry{notify}.",
            )
        )

    if info.not_before is not None:
        blockers = encrypt_blockers(as_of=as_of, expires=None, not_before=info.not_before)
        if blockers:
            info.findings.append(
                violation(
                    f"the key is not valid until {info.not_before} (notBefore), after {as_of}: Key Vault refuses "
                    "every operation before it, so the cluster could neither encrypt nor decrypt. Remove notBefore "
                    "or set it to a past date.",
                )
            )
    if info.expires_on is not None:
        # The first version's fixed expiry is its own; a "before expiry" trigger fires relative to it (the one
        # implementation the policy pack shares: azure_facts.key_validity).
        first_rotation = shared_first_rotation(
            created, info.expires_on, info.rotate_after_days, info.rotate_before_expiry_days
        )
        if info.expires_on <= as_of:
            info.findings.append(
                violation(
                    f"the first version expires on {info.expires_on}, on or before {as_of}: an expired key breaks "
                    f"the cluster. Move {PROJECT}:kmsKey.expiresOn later, or rotate to a new version first.",
                )
            )
        elif first_rotation is not None and info.expires_on <= first_rotation:
            info.findings.append(
                violation(
                    f"{PROJECT}:kmsKey.expiresOn {info.expires_on} comes before the first automatic rotation on "
                    f"{first_rotation} (created {created} + {info.rotate_after_days} days): the version the cluster "
                    "uses expires "
                    f"before its successor exists. Set expiresOn after {first_rotation + timedelta(days=6)}, or "
                    "remove it and let the rotation policy's expiry apply.",
                )
            )
        elif first_rotation is not None and (info.expires_on - first_rotation).days < MIN_ROTATION_WINDOW_DAYS:
            days = (info.expires_on - first_rotation).days
            info.findings.append(
                violation(
                    f"{PROJECT}:kmsKey.expiresOn {info.expires_on} is only {days} days after the first automatic "
                    f"rotation on {first_rotation}: too little time to move the cluster to the new version and "
                    f"re-encrypt every secret. Leave at least {MIN_ROTATION_WINDOW_DAYS} days.",
                )
            )
        elif first_rotation is None:
            info.findings.append(
                warning(
                    f"the first version expires on {info.expires_on} ({(info.expires_on - as_of).days} days after "
                    f"{as_of}) and no rotation policy replaces it: create a new version and rotate the cluster to "
                    "it before then (docs/rotation.md).",
                )
            )

    if info.expires_on is None and expire is None and interval is None:
        if info.protected:
            info.findings.append(
                warning(
                    "neither an expiry nor a rotation policy on a protected stack: the key is never replaced "
                    "(Azure Policy 152b15f7-8e1f-4c1f-ab71-8c010ba5dbc0 and d8cf8476-a2ec-4916-896e-992351803c44 "
                    f"flag both). Set {PROJECT}:kmsKey.rotation.",
                )
            )
        else:
            info.notes.append("no expiry and no rotation (an unprotected, throwaway stack)")


def _cluster_notes(info: KeyRotation, cluster: RecordedResource) -> None:
    pinned = KEY_ID_PATH not in cluster.ignore_changes
    if info.source == "existing":
        info.notes.append("the cluster uses exactly this key id; rotate by setting existingKey.keyId")
    elif pinned and info.pinned_version:
        info.notes.append(f"the cluster is pinned to version {info.pinned_version} ({PROJECT}:kmsKey.version)")
    elif not pinned:
        info.notes.append(
            "the cluster keeps the version it was created with (no kmsKey.version): a new version reaches it only "
            f"by setting {PROJECT}:kmsKey.version"
        )
    if info.window_days is not None and info.window_days >= MIN_ROTATION_WINDOW_DAYS:
        info.notes.append(
            f"after each automatic rotation, move the cluster to the new version and re-encrypt within "
            f"{info.window_days} days"
        )


def check_rotation(recorded: RecordedStack, config: StackConfig, *, as_of: date) -> RotationReport:
    """The expiry and rotation of every key a KMS cluster of `recorded` uses, judged as of `as_of`."""
    report = RotationReport(stack=recorded.stack, as_of=as_of)
    by_urn = recorded.by_urn()
    pinned_version = config.kms_key.version if config.kms_key else None
    for cluster in recorded.by_type(CLUSTER):
        kms = _get(cluster.inputs, "securityProfile", "azureKeyVaultKms") or {}
        if kms.get("enabled") is not True:
            continue
        keys = [
            by_urn[urn]
            for urn in cluster.property_dependencies.get("securityProfile", ())
            if urn in by_urn and by_urn[urn].type == KEY
        ]
        for key in keys:
            info = KeyRotation(
                name=str(key.inputs.get("keyName") or key.name),
                source="created",
                cluster=cluster.name,
                pinned_version=pinned_version,
                protected=key.protect,
            )
            _read_key(key, info)
            _check_created_key(info, _created_on(key, as_of), as_of)
            _cluster_notes(info, cluster)
            report.keys.append(info)
        key_id = kms.get("keyId")
        if not keys and isinstance(key_id, str) and key_id != UNKNOWN:
            report.keys.append(_existing_key(key_id, cluster, config))
    return report


def _existing_key(key_id: str, cluster: RecordedResource, config: StackConfig) -> KeyRotation:
    match = VERSIONED_KEY_ID.match(key_id)
    info = KeyRotation(
        name=match["name"] if match else key_id,
        source="existing",
        cluster=cluster.name,
        key_id=key_id,
        pinned_version=match["version"] if match else None,
        protected=config.protect_kms_resources,
    )
    vault = f"{match['vault']}" if match else "its vault"
    if info.protected:
        info.findings.append(
            warning(
                f"a bring-your-own key: its expiry and rotation policy live in {vault}, outside this stack, so this "
                f"check cannot see them. Check them with `az keyvault key show --id {key_id} --query "
                f"attributes.expires` and `az keyvault key rotation-policy show --vault-name {vault} --name "
                f"{info.name}`, and keep this version valid until the cluster has moved to the next one.",
            )
        )
    else:
        info.notes.append("a bring-your-own key: its expiry and rotation are managed outside this stack")
    _cluster_notes(info, cluster)
    return info


# ------------------------------------------------------------------------------------------- running


def run_rotation_check(stack: str, *, as_of: date, root: Path = ROOT) -> RotationReport:
    """Runs the program for `stack` (a name or a `Pulumi.<stack>.yaml` path) as in preview, then checks it."""
    try:
        check_stack(stack, root)
        load_stack_file(stack, root)  # a file that cannot be read is bad input before anything runs
    except (FileNotFoundError, ValueError) as error:
        raise RotationCheckError(str(error)) from None
    recorded = run_stack(stack, preview=True, root=root)
    if recorded.error is not None:
        raise RotationCheckError(f"stack {recorded.stack}: {recorded.error}")
    return check_rotation(recorded, stack_config_from_file(stack, root), as_of=as_of)


# ------------------------------------------------------------------------------------------- every stack (--all)


def key_id_of(config: StackConfig) -> str | None:
    """The whole key id the cluster uses, as far as the config knows it before apply.

    A bring-your-own key's versioned id is in the config; a created key's id is its vault and name, with the version
    only when `kmsKey.version` pins it (otherwise Key Vault draws the version when it creates the key).
    """
    if config.existing_key is not None:
        return config.existing_key.key_id
    if config.key_vault is None or config.kms_key is None:
        return None
    key_id = f"https://{config.key_vault.name}.vault.azure.net/keys/{config.kms_key.name}"
    return f"{key_id}/{config.kms_key.version}" if config.kms_key.version else key_id


def key_expiry(report: RotationReport) -> tuple[str | None, int | None]:
    """(expiry, days left after `as_of`) of the key the stack's cluster uses.

    A fixed first-version expiry is its date; a rotation policy's expiry is that of a version created on `as_of`;
    a bring-your-own key's expiry is outside this stack; no expiry at all is "never".
    """
    if not report.keys:
        return None, None
    info = report.keys[0]
    if info.source == "existing":
        return "outside this stack", None
    if info.expires_on is not None:
        return info.expires_on.isoformat(), (info.expires_on - report.as_of).days
    if info.expire_after_days is not None:
        return (report.as_of + timedelta(days=info.expire_after_days)).isoformat(), info.expire_after_days
    return "never", None


def rotation_verdict(report: RotationReport) -> str:
    if report.refusals:
        return "refused"
    if report.warnings:
        return f"fit ({len(report.warnings)} warning{'s' if len(report.warnings) != 1 else ''})"
    return "fit"
