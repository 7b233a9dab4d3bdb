"""`kms-key-change`, `kms-key-removed`, `kms-key-unknown`: the cluster's `securityProfile.azureKeyVaultKms.keyId`.

Protects the key the cluster's Secrets are encrypted under. A changed key id is a rotation: AKS keeps two key
slots, so it must be planned (an override naming exactly the new versioned key id, and the rotation gate's
re-encryption record); a removed key id disables KMS; an unknown new key id cannot be reviewed at all. The current
key is read from the refreshed outputs first: an out-of-band change or drift shows there, not in the inputs.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from azure_facts.engine import UNKNOWN
from azure_facts.findings import Finding
from azure_facts.property_paths import MISSING, hides, lookup
from kms_aks_tools.guard.common import KEY_ID_PATH, ROTATION_OVERRIDE_HINT, fmt
from kms_aks_tools.preview.model import Step


def key_id_finding(urn: str, old: Any, new: Any) -> Finding | None:
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
                f"was {fmt(old)}. An override cannot name an unknown key id: pin the new versioned key "
                "id in the stack config, preview again, then override that exact id."
            ),
        )
    if new is MISSING or new is None or new == "":
        return Finding(
            rule="kms-key-removed",
            urn=urn,
            path=path,
            message=f"the KMS key id is removed from an existing cluster (was {fmt(old)}).",
        )
    if old is MISSING or old is None or old == "":
        return Finding(
            rule="kms-key-change",
            urn=urn,
            path=path,
            message=(
                f"a KMS key id is added to an existing cluster (KMS enabled in place): {fmt(new)}. "
                + ROTATION_OVERRIDE_HINT
            ),
            new_key_id=new if isinstance(new, str) else None,
        )
    return Finding(
        rule="kms-key-change",
        urn=urn,
        path=path,
        message=(
            f"the KMS key id changes on an existing cluster: {fmt(old)} -> {fmt(new)}. "
            "Changing keys was unsupported in the original KMS design; a rotation must be planned. "
            + ROTATION_OVERRIDE_HINT
        ),
        new_key_id=new if isinstance(new, str) else None,
    )


def observed_key_id(step: Step, old_props: Mapping[str, Any]) -> Any:
    """The cluster's key id as it is now: the refreshed outputs' when they hold one (an out-of-band change or
    drift shows there, not in the inputs), else the inputs'."""
    outputs = step.oldState.outputs if step.oldState else None
    refreshed = lookup(outputs, KEY_ID_PATH)
    if isinstance(refreshed, str) and refreshed and refreshed != UNKNOWN:
        return refreshed
    return lookup(old_props, KEY_ID_PATH)


def current_key_of(step: Step) -> str | None:
    """The key id the cluster uses now (old state: refreshed outputs first), when it is a plain known value."""
    old_props = step.oldState.properties() if step.oldState else None
    old = observed_key_id(step, old_props or {})
    return old if isinstance(old, str) and old and old != UNKNOWN and not hides(old) else None
