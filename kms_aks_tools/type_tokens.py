"""The tooling's side of type tokens: `make plan`, the mock engine and the ARM export read every form one way.

`azure_facts.tokens` is the one reading of azure-native type tokens (plain, v2 versioned module, v3 parameterized
package). Here it is made tolerant, for the tools that only describe a stack: a token that names a KMS-relevant type
in a form nobody understands stays as it is, so the plan still shows the resource and the policy pack refuses it
(aks-kms-recognised-types, exit 1) instead of the plan failing on it.
"""

from __future__ import annotations

import re
from functools import cache

from azure_facts import tokens

# azure-native's spelling of an ARM API version (v20240801, v20240902preview), or ARM's own (2024-09-02-preview).
_API_VERSION = re.compile(r"^v?(\d{4})-?(\d{2})-?(\d{2})(?:-?([a-z]+))?$")


@cache
def plain_type(type_token: str) -> str:
    """The plain type of any understood form (`azure-native:<module>:<Name>`); any other token unchanged."""
    try:
        return tokens.canonical_type(type_token)
    except tokens.UnrecognisedKmsToken:
        return type_token


@cache
def answered_as(type_token: str) -> str:
    """The type the mock engine's providers answer `type_token` as: `plain_type`, and for an unknown form of a
    KMS-relevant type, the type it looks like.

    azure-native itself would not know such a token; the mock answers it anyway so that `make plan` runs the program
    to its end and shows the policy pack's verdict on it (aks-kms-recognised-types: mandatory, exit 1) rather than
    a program error about output shapes."""
    try:
        return tokens.canonical_type(type_token)
    except tokens.UnrecognisedKmsToken as error:
        return error.canonical


@cache
def pinned_api_version(type_token: str) -> str | None:
    """The ARM API version a token pins (`2024-08-01`, `2024-09-02-preview`), None for the plain form or any other."""
    try:
        parsed = tokens.parse(type_token)
    except tokens.UnrecognisedKmsToken:
        return None
    if parsed is None or parsed.api_version is None:
        return None
    match = _API_VERSION.match(parsed.api_version)
    if match is None:
        return None
    year, month, day, suffix = match.groups()
    return f"{year}-{month}-{day}" + (f"-{suffix}" if suffix else "")
