"""The mocks the Pulumi SDK's mock engine calls: azure-native's, azuread's and time's answers to registrations and
invokes (from the fake Azure's table, `kms_aks_tools.offline.fake_azure`), and what a preview knows of a resource.
The Azure stand-in (`kms_aks_tools.standin`) answers with the same ones.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

import pulumi
from pulumi.runtime import mocks as pulumi_mocks

from azure_facts.engine import Secret
from azure_facts.tokens import pinned_api_version
from kms_aks_tools.offline.fake_azure import BUILDERS, CALLS, answered_as, generic_arm
from kms_aks_tools.offline.fake_azure.ids import (
    DEPLOYER_CLIENT_ID,
    DEPLOYER_OBJECT_ID,
    SUBSCRIPTION_ID,
    TENANT_ID,
    guid,
)
from kms_aks_tools.offline.recording import UNKNOWN


class AzureNativeMocks(pulumi.runtime.Mocks):
    """Answers registrations and invokes as azure-native and azuread do, keeping what it created by id."""

    def __init__(self, preview: bool = False, stacks: Mapping[str, Mapping[str, Any]] | None = None) -> None:
        self.preview = preview
        self.states: dict[str, tuple[str, dict[str, Any]]] = {}  # id -> (type, outputs)
        # The backend's stacks a StackReference can read: fully qualified name -> outputs (fake_azure.fleet).
        self.stacks: Mapping[str, Mapping[str, Any]] = stacks or {}

    def new_resource(self, args: pulumi_mocks.MockResourceArgs) -> tuple[str | None, dict]:
        if not args.custom and not args.resource_id:  # a component (a read has an id and no `custom` flag)
            return None, {}
        # A read (a StackReference, `Resource.get`) is answered in preview too: the engine reads it then as well.
        if self.preview and not args.resource_id:
            return None, preview_outputs(args.inputs, self.try_build(args))
        resource_id, outputs = self.build(args)
        self.states[resource_id] = (answered_as(args.typ), outputs)
        return resource_id, outputs

    def build(self, args: pulumi_mocks.MockResourceArgs) -> tuple[str, dict[str, Any]]:
        """What the provider answers a create (or re-PUT) of `args` with, without storing it.

        The builders are keyed by plain type: a resource declared under a versioned module or a parameterized
        package (`azure_facts.tokens`) gets the same answer, with the API version its token pins as
        `azureApiVersion` (`answered_as` says what an unknown form is answered as).
        The Azure stand-in (`kms_aks_tools.standin.provider`) calls this too: one set of builders.
        """
        resource_type = answered_as(args.typ)
        builder = BUILDERS.get(resource_type)
        if builder is None and resource_type.startswith("azure-native:"):
            builder = generic_arm
        if builder is None:
            return f"{args.name}-id", dict(args.inputs)
        resource_id, outputs = builder(self, args, dict(args.inputs))
        api_version = pinned_api_version(args.typ)
        if api_version is not None and "azureApiVersion" in outputs:
            outputs["azureApiVersion"] = api_version
        return resource_id, outputs

    def try_build(self, args: pulumi_mocks.MockResourceArgs) -> dict[str, Any] | None:
        """The outputs a create would give, or None when preview inputs (unknowns) are too incomplete to build."""
        try:
            return self.build(args)[1]
        except (KeyError, TypeError, ValueError, AttributeError):
            return None

    def call(self, args: pulumi_mocks.MockCallArgs) -> Any:
        if args.token in CALLS:
            return CALLS[args.token](self, args)
        if args.token == "azure-native:authorization:getClientConfig":
            return {
                "clientId": DEPLOYER_CLIENT_ID,
                "objectId": DEPLOYER_OBJECT_ID,
                "subscriptionId": SUBSCRIPTION_ID,
                "tenantId": TENANT_ID,
            }
        if args.token == "azuread:index/getClientConfig:getClientConfig":
            return {
                "id": f"{TENANT_ID}-{DEPLOYER_CLIENT_ID}-{DEPLOYER_OBJECT_ID}",
                "clientId": DEPLOYER_CLIENT_ID,
                "objectId": DEPLOYER_OBJECT_ID,
                "tenantId": TENANT_ID,
            }
        raise NotImplementedError(
            f"the mock engine does not answer invoke {args.token}; add it to AzureNativeMocks.call"
        )

    def _outputs_of(self, type_token: str, name_key: str, name: str) -> dict[str, Any] | None:
        for typ, outputs in self.states.values():
            if typ == type_token and outputs.get(name_key) == name:
                return outputs
        return None

    def identity_principal(self, identity_id: str) -> dict[str, str]:
        typ, outputs = self.states.get(identity_id, ("", {}))
        if typ != "azure-native:managedidentity:UserAssignedIdentity":
            # An identity outside this stack: ARM still answers with its principal.
            return {"principalId": guid("principal", identity_id), "clientId": guid("client", identity_id)}
        return {"principalId": outputs["principalId"], "clientId": outputs["clientId"]}

    def vault_purge_protected(self, vault_name: str) -> bool:
        vault = self._outputs_of("azure-native:keyvault:Vault", "name", vault_name)
        return bool(vault and vault["properties"].get("enablePurgeProtection"))

    def vault_location(self, vault_name: str) -> str | None:
        vault = self._outputs_of("azure-native:keyvault:Vault", "name", vault_name)
        return vault.get("location") if vault else None


def preview_outputs(inputs: dict[str, Any], created: dict[str, Any] | None) -> dict[str, Any]:
    """What a preview knows of a resource it would create: the outputs' shape, with the inputs where they give a
    value and unknown everywhere the provider computes one.

    That is azure-native's `PreviewOutputs` ("maps [the inputs] to the outputs shape, adding unknowns for all
    properties that are not defined in inputs", provider/pkg/convert): a nested computed value such as a vault's
    `properties.vaultUri` is unknown, not absent. Absent would reach the program as None, and a component that
    registers it as an output then breaks an update plan (`up --plan` saw `vaultUri` change from nothing to a
    value, "resource violates plan"), which the real engine showed and the old inputs-only answer hid.
    `created` is what the builder would answer a create with; None when it cannot be built from preview inputs.
    Secrets (the Azure stand-in's `Secret`s) are known only where both sides are secret, and in tags.
    """
    if created is None:
        known = dict(inputs)
        known.pop("identity", None)  # a map on output where the input is a list: unknown until created
        return known
    # Resources whose outputs flatten the inputs' `properties` (a Key's `kty`, `keySize`) take them from there.
    flattened = inputs.get("properties") if "properties" not in created else None
    given = {**flattened, **inputs} if isinstance(flattened, dict) else inputs
    # Top level: inputs that are not outputs (ARM path parameters such as resourceGroupName) are dropped.
    return {
        key: _known_where_given(given[key], value, key) if key in given else UNKNOWN for key, value in created.items()
    }


def _known_where_given(given: Any, created: Any, key: str) -> Any:
    if isinstance(created, dict | Secret) and isinstance(given, dict | Secret) and key == "tags":
        return given  # a free-form map: exactly what the inputs say
    if isinstance(created, Secret) and isinstance(given, Secret):
        return Secret(_known_where_given(given.value, created.value, "value"))
    if isinstance(created, Secret) or isinstance(given, Secret):
        return UNKNOWN  # a secret has no shape to compare: computed unless both sides are secret
    if isinstance(created, dict) and isinstance(given, dict):
        known = {
            name: _known_where_given(value, created[name], name) if name in created else value
            for name, value in given.items()
        }
        return {**known, **{name: UNKNOWN for name in created if name not in given}}
    if isinstance(created, dict) != isinstance(given, dict) or isinstance(created, list) != isinstance(given, list):
        return UNKNOWN  # a different shape on output (e.g. identities: a list in, a map out) is computed
    return given
