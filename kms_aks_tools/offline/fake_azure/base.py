"""What every builder shares: what it may ask of the mocks that call it (`Mocks`: the resources made so far in this
run, and the other stacks' outputs a StackReference reads; `kms_aks_tools.offline.mocks.AzureNativeMocks` answers
it), and the type a token is answered as (`answered_as`)."""

from __future__ import annotations

import functools
from collections.abc import Mapping
from typing import Any, Protocol

from azure_facts import tokens


class Mocks(Protocol):
    preview: bool
    stacks: Mapping[str, Mapping[str, Any]]

    def identity_principal(self, identity_id: str) -> dict[str, str]: ...

    def vault_purge_protected(self, vault_name: str) -> bool: ...

    def vault_location(self, vault_name: str) -> str | None: ...


@functools.cache
def answered_as(type_token: str) -> str:
    """The type the mock engine's providers answer `type_token` as: its plain type, and for an unknown form of a
    KMS-relevant type, the type it looks like.

    azure-native itself would not know such a token; the mock answers it anyway so that `make plan` runs the program
    to its end and shows the policy pack's verdict on it (aks-kms-recognised-types: mandatory, exit 1) rather than
    a program error about output shapes."""
    try:
        return tokens.canonical_type(type_token)
    except tokens.UnrecognisedKmsToken as error:
        return error.canonical
