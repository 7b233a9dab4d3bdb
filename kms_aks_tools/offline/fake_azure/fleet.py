"""Azure Kubernetes Fleet Manager as azure-native 3.29 serves it, for the mock engine and the stand-in (whose diff
rules for these types are in `kms_aks_tools.standin.rules`, citing what is written here).

The `fleet/` project (`components/kms_fleet.py`) declares a Fleet, its members, an update strategy and an
auto-upgrade profile. This module knows how azure-native answers them:

- **API version.** pulumi-azure-native 3.29.0's `containerservice.Fleet`, `FleetMember`, `FleetUpdateStrategy`,
  `UpdateRun` and `AutoUpgradeProfile` all use Azure REST API version **2024-05-02-preview** (each class's
  docstring in the installed SDK: "Uses Azure REST API version 2024-05-02-preview").
- **ARM ids** (the PUT paths of `Microsoft.ContainerService/fleet` 2024-05-02-preview `fleets.json`):
  `.../resourceGroups/{rg}/providers/Microsoft.ContainerService/fleets/{fleetName}` and its child collections
  `/members/{fleetMemberName}`, `/updateStrategies/{updateStrategyName}`, `/autoUpgradeProfiles/{name}`,
  `/updateRuns/{updateRunName}`.
- **Replace rules.** `provider/pkg/gen/replacement.go`'s `forceNewMap` has no Fleet entry, so replacements come
  from the path parameters and the spec's create-only properties (`x-ms-mutability` without "update", read by
  `provider/pkg/gen/properties.go` `genProperty` -> `forceNew`; a property whose type has create-only children is
  `ForceNewInferredFromReferencedTypes`, and the differ looks one level into it, as for the cluster's
  `networkProfile`): `FleetMemberProperties.clusterResourceId`, `FleetHubProfile.dnsPrefix`,
  `.apiServerAccessProfile` and `.agentProfile`, `AutoUpgradeProfileProperties.updateStrategyId`, and the
  tracked Fleet's `location`. A member's `group` and a strategy's `strategy` are mutable (updated in place).
- **Outputs.** As the service answers a PUT (the spec's examples): `provisioningState`, the member's `status`,
  a hub's `fqdn`/`kubernetesVersion`/`portalFqdn` only when the fleet has a hub, an `eTag`, and
  `azureApiVersion`.

It also answers the engine's built-ins from the stacks the mock engine was given (`Mocks(stacks=...)`):
the `pulumi:pulumi:StackReference` read and the `pulumi:pulumi:readStackOutputs` invoke (pulumi
`pkg/resource/deploy/builtins.go`), failing like the engine's backend client for a stack it does not have
(`unknown stack "<name>"`): the read as an error, the invoke as a failure the program can catch.
"""

from __future__ import annotations

import hashlib
from typing import Any

from pulumi.runtime import mocks as pulumi_mocks

from kms_aks_tools.offline.fake_azure.base import Mocks, autoname, child_builder
from kms_aks_tools.offline.fake_azure.ids import rg_id

API_VERSION = "2024-05-02-preview"
FLEET = "azure-native:containerservice:Fleet"
FLEET_MEMBER = "azure-native:containerservice:FleetMember"
UPDATE_STRATEGY = "azure-native:containerservice:FleetUpdateStrategy"
AUTO_UPGRADE_PROFILE = "azure-native:containerservice:AutoUpgradeProfile"
UPDATE_RUN = "azure-native:containerservice:UpdateRun"
STACK_REFERENCE = "pulumi:pulumi:StackReference"
READ_STACK_OUTPUTS = "pulumi:pulumi:readStackOutputs"

SPEC = "Microsoft.ContainerService/fleet 2024-05-02-preview fleets.json"  # cited by the stand-in's diff rules

# Path parameters are inputs only: ARM's response body has none of them.
_PATH_PARAMETERS = frozenset(
    {"resourceGroupName", "fleetName", "fleetMemberName", "updateStrategyName", "autoUpgradeProfileName"}
)


def _etag(*parts: str) -> str:
    return f'"{hashlib.sha256("/".join(parts).encode()).hexdigest()[:32]}"'


def fleet_id(resource_group: str, fleet: str) -> str:
    return f"{rg_id(resource_group)}/providers/Microsoft.ContainerService/fleets/{fleet}"


def _body(inputs: dict[str, Any]) -> dict[str, Any]:
    return {k: v for k, v in inputs.items() if k not in _PATH_PARAMETERS}


def _fleet(_: Mocks, args: pulumi_mocks.MockResourceArgs, inputs: dict) -> tuple[str, dict]:
    name = inputs.get("fleetName") or autoname(args)
    rg = inputs["resourceGroupName"]
    outputs: dict[str, Any] = {
        **_body(inputs),
        "name": name,
        "provisioningState": "Succeeded",
        "eTag": _etag("fleet", rg, name),
        "type": "Microsoft.ContainerService/fleets",
        "azureApiVersion": API_VERSION,
    }
    hub = inputs.get("hubProfile")
    if isinstance(hub, dict):
        # A hub is an AKS cluster the service runs for the fleet: it has an API server of its own.
        prefix = hub.get("dnsPrefix") or name
        digest = hashlib.sha256(f"{rg}/{name}".encode()).hexdigest()[:8]
        outputs["hubProfile"] = {
            **hub,
            "fqdn": f"{prefix}-{digest}.hcp.{inputs.get('location', '')}.azmk8s.io",
            "portalFqdn": f"{prefix}-{digest}.portal.hcp.{inputs.get('location', '')}.azmk8s.io",
            "kubernetesVersion": "1.33.2",
        }
    return fleet_id(rg, name), outputs


def _fleet_child(
    name_key: str, collection: str, etag_kind: str, required: str, computed: Any = lambda inputs, name: {}
) -> Any:
    """A fleet's member, update strategy or auto-upgrade profile: named by `name_key`, under the fleet's id, its
    `required` input echoed, its eTag of `etag_kind`, and what else ARM computes (`computed`)."""

    def outputs(inputs: dict[str, Any], name: str) -> dict[str, Any]:
        rg, fleet = inputs["resourceGroupName"], inputs["fleetName"]
        return {
            required: inputs[required],
            "provisioningState": "Succeeded",
            **computed(inputs, name),
            "eTag": _etag(etag_kind, rg, fleet, name),
        }

    return child_builder(
        name_key=name_key,
        parent=lambda inputs: fleet_id(inputs["resourceGroupName"], inputs["fleetName"]),
        collection=collection,
        arm_type=f"Microsoft.ContainerService/fleets/{collection}",
        api_version=API_VERSION,
        body=_body,
        computed=outputs,
    )


_fleet_member = _fleet_child(
    "fleetMemberName",
    "members",
    "member",
    "clusterResourceId",
    lambda inputs, name: {
        "status": {
            "lastOperationId": _etag(
                "member-operation", inputs["resourceGroupName"], inputs["fleetName"], name
            ).strip('"')
        }
    },
)
_update_strategy = _fleet_child("updateStrategyName", "updateStrategies", "strategy", "strategy")
_auto_upgrade_profile = _fleet_child("autoUpgradeProfileName", "autoUpgradeProfiles", "auto-upgrade", "channel")


class UnknownStack(LookupError):
    """The engine's answer to a StackReference whose stack the backend does not have."""


def _stack_reference(mocks: Mocks, args: pulumi_mocks.MockResourceArgs, inputs: dict) -> tuple[str, dict]:
    # The engine's built-in provider reads the stack's outputs from the backend (builtins.go readStackReference).
    name = str(inputs.get("name") or args.resource_id or args.name)
    outputs = mocks.stacks.get(name)
    if outputs is None:
        raise UnknownStack(f'unknown stack "{name}"')
    return name, {"name": name, "outputs": dict(outputs), "secretOutputNames": []}


def _read_stack_outputs(mocks: Mocks, args: pulumi_mocks.MockCallArgs) -> Any:
    name = str(args.args.get("name", ""))
    outputs = mocks.stacks.get(name)
    if outputs is None:
        return {}, [("name", f'unknown stack "{name}"')]
    return {"name": name, "outputs": dict(outputs), "secretOutputNames": []}


BUILDERS = {
    FLEET: _fleet,
    FLEET_MEMBER: _fleet_member,
    UPDATE_STRATEGY: _update_strategy,
    AUTO_UPGRADE_PROFILE: _auto_upgrade_profile,
    STACK_REFERENCE: _stack_reference,
}
CALLS = {READ_STACK_OUTPUTS: _read_stack_outputs}
