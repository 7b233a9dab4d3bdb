"""Key versions in the stand-in's cloud: what Key Vault's rotate (or a rotation policy) adds to an existing key.

ARM's Keys resource holds a key's *current* version only (`keyUriWithVersion`); the older and newer versions are
the child resources `Microsoft.KeyVault/vaults/keys/versions` (ARM's `Keys_GetVersion`, `Keys_ListVersions`),
created on the data plane (`az keyvault key rotate`), never by `Keys_CreateIfNotExist`. The stand-in keeps each
such version as a resource of that type under its key's ARM id, `<key id>/versions/<version>`, so the check that
AKS's key exists (`standin.arm`) finds a version made after the stack's `up`, and the saved cloud
(`standin.saved`) keeps it between sandbox commands.
"""

from __future__ import annotations

import secrets
from typing import Any

KEY = "azure-native:keyvault:Key"
KEY_VERSION = "Microsoft.KeyVault/vaults/keys/versions"


class KeyVersionError(ValueError):
    """No such key in the cloud: the message names the key and the keys there are."""


def find_key(states: dict[str, tuple[str, dict[str, Any]]], vault: str, name: str) -> tuple[str, dict[str, Any]]:
    """The ARM id and outputs of key `name` in vault `vault` (names compare case-insensitively, as Azure's)."""
    wanted = f"https://{vault}.vault.azure.net/keys/{name}".lower()
    for rid, (typ, outputs) in states.items():
        if typ == KEY and str(outputs.get("keyUri", "")).lower().rstrip("/") == wanted:
            return rid, outputs
    there = sorted(str(o.get("keyUri")) for t, o in states.values() if t == KEY)
    raise KeyVersionError(
        f"the stand-in's cloud holds no key {name} in vault {vault}; keys there: {', '.join(there) or 'none'} "
        "(`kms-aks sandbox up` creates the stack's key)"
    )


def new_key_version(states: dict[str, tuple[str, dict[str, Any]]], vault: str, name: str) -> str:
    """Adds a new version of the key (as `az keyvault key rotate` does) and returns its versioned key id."""
    key_id, outputs = find_key(states, vault, name)
    version = secrets.token_hex(16)
    versioned = f"{str(outputs['keyUri']).rstrip('/')}/{version}"
    states[f"{key_id}/versions/{version}"] = (
        KEY_VERSION,
        {
            "name": version,
            "keyUriWithVersion": versioned,
            "kty": outputs.get("kty"),
            "keySize": outputs.get("keySize"),
            "keyOps": outputs.get("keyOps", []),
            "type": KEY_VERSION,
        },
    )
    return versioned


def versions(states: dict[str, tuple[str, dict[str, Any]]], key_arm_id: str) -> list[str]:
    """Every versioned key id the cloud holds for the key: its create-time version, then the later ones."""
    typ, outputs = states[key_arm_id]
    found = [str(outputs["keyUriWithVersion"])] if typ == KEY else []
    prefix = f"{key_arm_id}/versions/".lower()
    found += [
        str(o["keyUriWithVersion"])
        for rid, (t, o) in states.items()
        if t == KEY_VERSION and rid.lower().startswith(prefix)
    ]
    return found
