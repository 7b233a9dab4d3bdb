"""`key-create-time-change`: an `update` of an existing Key Vault key's settings (expiry, size, type, operations,
rotation policy, ...).

azure-native sends it as ARM's `Keys_CreateIfNotExist`, which does not update an existing key: a changed expiry
fails the deployment, anything else is silently not applied and the state then claims a setting the key does not
have. The rule names it for what it is and gives the data-plane command that does it. Not overridable.
"""

from __future__ import annotations

from collections.abc import Iterator
from datetime import UTC, datetime
from typing import Any

from azure_facts.findings import Finding
from azure_facts.property_paths import MISSING, covers, hides, lookup, split_property_path
from kms_aks_tools.guard.common import fmt
from kms_aks_tools.preview.model import Step

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


def _expiry(value: Any) -> str:
    if isinstance(value, int | float) and not isinstance(value, bool):
        return datetime.fromtimestamp(value, tz=UTC).strftime("%Y-%m-%dT%H:%M:%SZ")
    return fmt(value)


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
    hidden = any(hides(lookup(props, (top,))) for props in (old_props, new_props) for top in ("properties", "tags"))
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
        setting = next((s for s in KEY_CREATE_TIME_SETTINGS if covers(segments, s)), segments[:1])
        changed.append((setting, diff_path, MISSING, MISSING))
    return changed


def key_findings(step: Step) -> Iterator[Finding]:
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
            else ("" if old is MISSING and new is MISSING else f" {fmt(old)} -> {fmt(new)}")
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
