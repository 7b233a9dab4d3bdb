"""Azure resources that exist outside every stack, declared in a reviewed file, for the stand-in's cloud.

A bring-your-own-key stack pins a key that another team's vault holds; AKS refuses a key version its vault does
not hold (`standin.arm`: `KeyNotFound`). The stand-in's cloud holds such resources when a file declares them,
as another team would have created them in Azure (`sandbox-azure.yaml` at the project root, read by every
`kms-aks sandbox` command; the e2e harness passes its own to `outside_states`):

    # Azure resources no stack of this project creates. Reviewed like code.
    vaults:
      - id: /subscriptions/<sub>/resourceGroups/rg-keys/providers/Microsoft.KeyVault/vaults/kv-team-keys
        location: westeurope
        permissionModel: rbac            # or accessPolicy
        keys:
          - name: aks-etcd
            versions: [0123456789abcdef0123456789abcdef]   # oldest first; the last is the key's current one
    roleAssignments:                     # grants another team made (e.g. on its vault)
      - scope: /subscriptions/<sub>/resourceGroups/rg-keys/providers/Microsoft.KeyVault/vaults/kv-team-keys
        roleDefinitionId: /subscriptions/<sub>/providers/Microsoft.Authorization/roleDefinitions/<role guid>
        principalId: <principal object id>

Each becomes the resource ARM would hold (a Vault, a Key with its versions: `standin.key_versions`, a
RoleAssignment), under its own ARM id. Unknown fields, a vault id that is not a vault's ARM id and a version that
is not 32 hex digits are refused with the file's name and the field.
"""

from __future__ import annotations

import hashlib
import re
from pathlib import Path
from typing import Any, Literal

import yaml
from pydantic import BaseModel, ConfigDict, Field, ValidationError, field_validator

from kms_aks_tools.standin.key_versions import KEY, KEY_VERSION

OUTSIDE_FILE = "sandbox-azure.yaml"
VAULT = "azure-native:keyvault:Vault"
ROLE_ASSIGNMENT = "azure-native:authorization:RoleAssignment"
_VAULT_ID = re.compile(
    r"^/subscriptions/[^/]+/resourceGroups/(?P<group>[^/]+)/providers/Microsoft\.KeyVault/vaults/(?P<name>[^/]+)$", re.I
)
_GUID = r"[0-9a-fA-F]{8}-[0-9a-fA-F]{4}-[0-9a-fA-F]{4}-[0-9a-fA-F]{4}-[0-9a-fA-F]{12}"


class OutsideError(ValueError):
    """A file that cannot be read as outside resources: one message naming the file and what is wrong."""


class _Strict(BaseModel):
    model_config = ConfigDict(extra="forbid")


class OutsideKey(_Strict):
    name: str = Field(pattern=r"^[0-9A-Za-z-]{1,127}$")
    kty: Literal["RSA", "RSA-HSM"] = "RSA"
    size: Literal[2048, 3072, 4096] = 2048
    versions: list[str] = Field(min_length=1)

    @field_validator("versions")
    @classmethod
    def _hex_versions(cls, versions: list[str]) -> list[str]:
        for version in versions:
            if not re.fullmatch(r"[0-9a-f]{32}", version):
                raise ValueError(f"key version {version!r} is not 32 lowercase hex digits")
        return versions


class OutsideVault(_Strict):
    id: str = Field(pattern=_VAULT_ID.pattern)
    location: str = "westeurope"
    permissionModel: Literal["rbac", "accessPolicy"] = "rbac"
    keys: list[OutsideKey] = Field(default_factory=list)

    @property
    def name(self) -> str:
        match = _VAULT_ID.match(self.id)
        assert match is not None
        return match["name"]


class OutsideRoleAssignment(_Strict):
    scope: str = Field(pattern=r"^/subscriptions/")
    roleDefinitionId: str = Field(pattern=rf"/providers/Microsoft\.Authorization/roleDefinitions/{_GUID}$")
    principalId: str = Field(pattern=rf"^{_GUID}$")


class OutsideResources(_Strict):
    vaults: list[OutsideVault] = Field(default_factory=list)
    roleAssignments: list[OutsideRoleAssignment] = Field(default_factory=list)


def read_outside(path: Path) -> OutsideResources:
    """The declared resources; an absent file declares none."""
    if not path.is_file():
        return OutsideResources()
    try:
        data: Any = yaml.safe_load(path.read_text(encoding="utf-8")) or {}
        return OutsideResources.model_validate(data)
    except yaml.YAMLError as error:
        raise OutsideError(f"{path.name}: not valid YAML: {error}") from None
    except ValidationError as error:
        first = error.errors()[0]
        where = ".".join(str(part) for part in first["loc"]) or "(top level)"
        raise OutsideError(f"{path.name}: {where}: {first['msg']}") from None


def outside_states(resources: OutsideResources) -> dict[str, tuple[str, dict[str, Any]]]:
    """The ARM resources the declarations stand for: id -> (type token, outputs), as the stand-in's cloud holds them."""
    states: dict[str, tuple[str, dict[str, Any]]] = {}
    for vault in resources.vaults:
        vault_uri = f"https://{vault.name}.vault.azure.net/"
        states[vault.id] = (
            VAULT,
            {
                "name": vault.name,
                "location": vault.location,
                "type": "Microsoft.KeyVault/vaults",
                "properties": {"vaultUri": vault_uri, "enableRbacAuthorization": vault.permissionModel == "rbac"},
            },
        )
        for key in vault.keys:
            key_id = f"{vault.id}/keys/{key.name}"
            key_uri = f"{vault_uri}keys/{key.name}"
            states[key_id] = (
                KEY,
                {
                    "name": key.name,
                    "keyUri": key_uri,
                    "keyUriWithVersion": f"{key_uri}/{key.versions[-1]}",
                    "kty": key.kty,
                    "keySize": key.size,
                    "keyOps": ["encrypt", "decrypt"],
                    "location": vault.location,
                    "type": "Microsoft.KeyVault/vaults/keys",
                },
            )
            for version in key.versions[:-1]:
                states[f"{key_id}/versions/{version}"] = (
                    KEY_VERSION,
                    {"name": version, "keyUriWithVersion": f"{key_uri}/{version}", "type": KEY_VERSION},
                )
    for grant in resources.roleAssignments:
        # A role assignment's name is a GUID; one derived from what it grants keeps the id stable between runs.
        digest = hashlib.sha256(f"{grant.scope}|{grant.roleDefinitionId}|{grant.principalId}".encode()).hexdigest()
        name = f"{digest[:8]}-{digest[8:12]}-{digest[12:16]}-{digest[16:20]}-{digest[20:32]}"
        states[f"{grant.scope}/providers/Microsoft.Authorization/roleAssignments/{name}"] = (
            ROLE_ASSIGNMENT,
            {
                "name": name,
                "scope": grant.scope,
                "roleDefinitionId": grant.roleDefinitionId,
                "principalId": grant.principalId,
                "principalType": "ServicePrincipal",
                "type": "Microsoft.Authorization/roleAssignments",
            },
        )
    return states


def add_outside(states: dict[str, tuple[str, dict[str, Any]]], path: Path) -> list[str]:
    """Adds the resources `path` declares that the cloud does not hold yet (a saved cloud keeps what happened to
    them since, e.g. a key's later versions); returns the ids added."""
    added = []
    for resource_id, state in outside_states(read_outside(path)).items():
        if resource_id not in states:
            states[resource_id] = state
            added.append(resource_id)
    return added
