"""azure-native type tokens in every form a Pulumi program or state can hold them, read one way.

The same Azure resource reaches the engine (and so the plan guard, the policy pack and `make plan`) under
several type tokens:

- the plain form, the default API version of the installed SDK: `azure-native:containerservice:ManagedCluster`;
- the v2 versioned-module form, an explicit API version inside the module (azure-native v2, still in older
  states): `azure-native:containerservice/v20240801:ManagedCluster`;
- the v3 parameterized-package form that `pulumi package add azure-native containerservice v20250901`
  registers: the package is `azure-native_<module>_<version>` (`createSchema` in pulumi-azure-native's
  provider/pkg/provider/provider_parameterize.go: `fmt.Sprintf("%s_%s_%s", schema.Name, module, version)`)
  and its tokens are `<package>:<module>/<version>:<Name>` (`makeToken` there); the issue that asked for this
  module quoted `<package>:<module>:<Name>`, so both module spellings are read.

`canonical_type` turns each into the plain form, so that every gate judges a ManagedCluster as a
ManagedCluster whatever API version declared it. A token whose module and resource name are those of a
KMS-relevant type, but whose shape is none of the above, raises `UnrecognisedKmsToken`: a gate must refuse it,
never skip it as "not a cluster".

Standard library only: the policy pack imports this (see `azure_facts/__init__.py`).
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from functools import cache

PACKAGE = "azure-native"

MANAGED_CLUSTER = "azure-native:containerservice:ManagedCluster"
VAULT = "azure-native:keyvault:Vault"
KEY = "azure-native:keyvault:Key"
USER_ASSIGNED_IDENTITY = "azure-native:managedidentity:UserAssignedIdentity"
ROLE_ASSIGNMENT = "azure-native:authorization:RoleAssignment"
ACCESS_POLICY = "azure-native:keyvault:AccessPolicy"

# The types whose change can cut a cluster off its KMS key: the cluster, the key and its vault, the KMS
# identity and its grants on the key.
KMS_RELEVANT_TYPES = frozenset({MANAGED_CLUSTER, VAULT, KEY, USER_ASSIGNED_IDENTITY, ROLE_ASSIGNMENT, ACCESS_POLICY})

# (module, resource name), case-folded: what makes a token "about" a KMS-relevant type, whatever its shape.
_KMS_RELEVANT_NAMES = {tuple(t.split(":")[1:]): t for t in KMS_RELEVANT_TYPES}
_KMS_RELEVANT_FOLDED = {(module.lower(), name.lower()): t for (module, name), t in _KMS_RELEVANT_NAMES.items()}

# ARM API versions as azure-native spells them in modules and package names: v20240801, v20240902preview,
# v20230315privatepreview. A parameterized package's version is whatever `pulumi package add` was given, so the
# dashed ARM spelling (2024-08-01, 2024-09-02-preview) is read too.
_API_VERSION = r"v?(\d{4})-?(\d{2})-?(\d{2})(?:-?(preview|privatepreview|beta))?"
API_VERSION_PATTERN = re.compile(rf"^{_API_VERSION}$")
_MODULE = r"[a-z][a-zA-Z0-9]*"
_NAME = r"[A-Z][A-Za-z0-9]*"

_PLAIN_OR_VERSIONED = re.compile(
    rf"^{re.escape(PACKAGE)}:(?P<module>{_MODULE})(?:/(?P<version>{_API_VERSION}))?:(?P<name>{_NAME})$"
)
_PARAMETERIZED = re.compile(
    rf"^{re.escape(PACKAGE)}_(?P<pkg_module>{_MODULE})_(?P<pkg_version>{_API_VERSION})"
    rf":(?P<module>{_MODULE})(?:/(?P<version>{_API_VERSION}))?:(?P<name>{_NAME})$"
)


class UnrecognisedKmsToken(ValueError):
    """A token that names a KMS-relevant resource in a shape no rule here understands: refuse, never skip."""

    def __init__(self, token: str, canonical: str) -> None:
        self.token = token
        self.canonical = canonical
        super().__init__(
            f"type token {token!r} looks like a {canonical.rsplit(':', 1)[-1]} ({canonical}) but is in no form "
            "kms-aks understands (plain `azure-native:<module>:<Name>`, versioned module "
            "`azure-native:<module>/<version>:<Name>`, or parameterized package "
            "`azure-native_<module>_<version>:<module>/<version>:<Name>`), so it cannot be checked. "
            "Declare the resource through the azure-native SDK, or report the token form so the gates learn it."
        )


@dataclass(frozen=True)
class AzureNativeToken:
    """An understood azure-native token: its canonical (plain) type and the API version it pins, if any."""

    token: str
    canonical: str
    api_version: str | None
    form: str  # "plain", "versioned-module" or "parameterized"


def parse(token: str) -> AzureNativeToken | None:
    """The azure-native reading of `token`, None when it is not an azure-native token at all.

    Raises `UnrecognisedKmsToken` for a token that names a KMS-relevant type in a shape not understood here.
    """
    if match := _PLAIN_OR_VERSIONED.match(token):
        version = match["version"]
        return AzureNativeToken(
            token=token,
            canonical=f"{PACKAGE}:{match['module']}:{match['name']}",
            api_version=version,
            form="versioned-module" if version else "plain",
        )
    if (match := _PARAMETERIZED.match(token)) and _parameterized_consistent(match):
        return AzureNativeToken(
            token=token,
            canonical=f"{PACKAGE}:{match['module']}:{match['name']}",
            api_version=match["pkg_version"],
            form="parameterized",
        )
    if (canonical := _looks_kms_relevant(token)) is not None:
        raise UnrecognisedKmsToken(token, canonical)
    return None


def _parameterized_consistent(match: re.Match[str]) -> bool:
    """The package names the module and version its tokens carry; a mismatch is not a token azure-native makes."""
    if match["pkg_module"] != match["module"]:
        return False
    return match["version"] is None or match["version"] == match["pkg_version"]


def _looks_kms_relevant(token: str) -> str | None:
    """The canonical KMS-relevant type a token seems to name (case-folded module and name), else None."""
    parts = token.split(":")
    if len(parts) < 2:
        return None
    name = parts[-1].lower()
    # The module is whatever sits between package and name, without an API version; a parameterized package
    # carries it too (`azure-native_<module>_<version>`).
    candidates = {segment.split("/")[0].lower() for segment in parts[1:-1]}
    candidates |= {piece.lower() for piece in re.split(r"[_/]", parts[0])}
    for module in candidates:
        if (canonical := _KMS_RELEVANT_FOLDED.get((module, name))) is not None:
            return canonical
    return None


def canonical_type(token: str) -> str:
    """The plain azure-native type for any understood form; any other token unchanged.

    Raises `UnrecognisedKmsToken` for a KMS-relevant type in a form not understood.
    """
    parsed = parse(token)
    return parsed.canonical if parsed is not None else token


def is_kms_relevant(token: str) -> bool:
    """True for a KMS-relevant type in any understood form. Raises `UnrecognisedKmsToken` as `canonical_type`."""
    return canonical_type(token) in KMS_RELEVANT_TYPES


@cache  # a stack holds a few dozen distinct tokens and thousands of resources
def plain_type(token: str) -> str | None:
    """The plain type of `token` in any understood form (any other token unchanged); None for a token that names a
    KMS-relevant type in a form not understood, which a gate must refuse (aks-kms-recognised-types does).

    The one tolerant reading, for the pack and the tools; `canonical_type` is the same reading for a gate that
    reports the unrecognised token itself (it raises `UnrecognisedKmsToken`)."""
    try:
        return canonical_type(token)
    except UnrecognisedKmsToken:
        return None


@cache
def pinned_api_version(token: str) -> str | None:
    """The ARM API version a token pins, in ARM's spelling (`2024-08-01`, `2024-09-02-preview`); None for the plain
    form, a token not understood or any other."""
    try:
        parsed = parse(token)
    except UnrecognisedKmsToken:
        return None
    if parsed is None or parsed.api_version is None:
        return None
    year, month, day, suffix = API_VERSION_PATTERN.match(parsed.api_version).groups()  # type: ignore[union-attr]
    return f"{year}-{month}-{day}" + (f"-{suffix}" if suffix else "")
