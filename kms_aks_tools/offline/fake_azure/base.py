"""What every builder shares: what it may ask of the mocks that call it (`Mocks`: the resources made so far in this
run, and the other stacks' outputs a StackReference reads; `kms_aks_tools.offline.mocks.AzureNativeMocks` answers
it), and the type a token is answered as (`answered_as`)."""

from __future__ import annotations

import functools
from collections.abc import Callable, Mapping
from typing import Any, Protocol

from pulumi.runtime import mocks as pulumi_mocks

from azure_facts import tokens
from kms_aks_tools.offline.fake_azure.ids import hex_digest


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


def autoname(args: pulumi_mocks.MockResourceArgs) -> str:
    """azure-native's AutoNameRandom: the logical name and 8 hex digits (the stand-in's Check draws them first)."""
    return f"{args.name}{hex_digest(8, args.name)}"


Inputs = dict[str, Any]


def child_builder(
    *,
    name_key: str,
    parent: Callable[[Inputs], str],
    collection: str,
    arm_type: str,
    api_version: str,
    body: Callable[[Inputs], Inputs],
    computed: Callable[[Inputs, str], Inputs] = lambda inputs, name: {},
) -> Callable[[Mocks, pulumi_mocks.MockResourceArgs, Inputs], tuple[str, Inputs]]:
    """The builder of a resource of the common shape: named by its `name_key` input (auto-named without it), its id
    `<parent id>/<collection>/<name>`, its outputs the inputs ARM echoes (`body`: without the path parameters), its
    `name`, what ARM computes (`computed(inputs, name)`), its ARM type and the API version."""

    def build(_: Mocks, args: pulumi_mocks.MockResourceArgs, inputs: Inputs) -> tuple[str, Inputs]:
        name = inputs.get(name_key) or autoname(args)
        echoed = {k: v for k, v in body(inputs).items() if k != name_key}
        outputs = {**echoed, "name": name, **computed(inputs, name), "type": arm_type, "azureApiVersion": api_version}
        return f"{parent(inputs)}/{collection}/{name}", outputs

    return build
