"""kms-aks-fleet: the kms-aks clusters in one Azure Kubernetes Fleet Manager fleet, upgraded stage by stage.

Wiring:
    every member's stack outputs read (`<stackPrefix>/<stack>`: cluster id, kmsEnabled, key id, key expiry) and
      checked (stack exists, KMS on, exports present, key not expired): one message for all problems, before
      anything is registered
    -> a StackReference per member (its cluster id) -> resource group
      -> KmsFleet: Fleet, a FleetMember per stack in its update group, the staged FleetUpdateStrategy, and the
         AutoUpgradeProfile that starts runs through those stages on each release of its channel
Config: `kms-aks-fleet:` keys, validated by kms_aks.config.fleet; see docs/fleet.md.
"""

from datetime import UTC, datetime
from typing import Any

import pulumi
from pulumi_azure_native import resources

from components.kms_fleet import AutoUpgradeSpec, FleetMemberSpec, KmsFleet, KmsFleetArgs, UpdateStageSpec
from kms_aks.config.base import ConfigError
from kms_aks.config.fleet import NAMESPACE, MemberRefused, load_fleet_config, member_problems

try:
    config = load_fleet_config()
except ConfigError as error:
    # RunError ends the program with this message alone: a config mistake is not a crash.
    raise pulumi.RunError(str(error)) from None

stack = pulumi.get_stack()
tags = {"project": "kms-aks-fleet", "stack": stack}


def read_member_outputs(stack_name: str) -> tuple[dict[str, Any] | None, str | None]:
    """A member stack's outputs through the engine's own `pulumi:pulumi:readStackOutputs` (what a StackReference
    reads), or why they cannot be read. An invoke's failure is the program's to report; a failed StackReference
    read would end the program with the SDK's stack trace instead of one message."""
    try:
        result = pulumi.runtime.invoke("pulumi:pulumi:readStackOutputs", {"name": stack_name})
    except Exception as error:  # the engine's answer for a stack its backend does not have
        return None, str(error)
    return dict((result.value or {}).get("outputs") or {}), None


# Every member judged before the first registration: a refused member means nothing is created, not even a read.
today = datetime.now(tz=UTC).date()
problems: list[str] = []
for member in config.members:
    qualified = f"{config.stack_prefix}/{member.stack}"
    outputs, unreadable = read_member_outputs(qualified)
    if outputs is None:
        problems.append(
            f"{NAMESPACE}:members: stack {member.stack!r} ({qualified}) cannot be read: {unreadable}. Deploy that "
            f"kms-aks stack first, or fix its name or {NAMESPACE}:stackPrefix"
        )
    else:
        problems += member_problems(member.stack, outputs, today)
if problems:
    raise pulumi.RunError(str(MemberRefused(problems)))

# Each member's cluster comes from its stack through a StackReference (the state records where it came from).
references = {
    member.stack: pulumi.StackReference(f"member-{member.stack}", stack_name=f"{config.stack_prefix}/{member.stack}")
    for member in config.members
}

resource_group = resources.ResourceGroup(
    "rg",
    resource_group_name=config.resource_group_name or f"rg-kms-aks-fleet-{stack}",
    location=config.location,
    tags=tags,
)

fleet = KmsFleet(
    "kms",
    KmsFleetArgs(
        fleet_name=config.fleet_name or f"fleet-kms-aks-{stack}",
        resource_group_name=resource_group.name,
        location=config.location,
        hub_dns_prefix=config.hub.dns_prefix if config.hub else None,
        members=[
            FleetMemberSpec(
                name=member.stack,
                cluster_resource_id=references[member.stack].get_output("clusterResourceId"),
                group=member.group,
            )
            for member in config.members
        ],
        stages=[
            UpdateStageSpec(
                name=stage.name, groups=tuple(stage.groups), after_stage_wait_seconds=stage.after_stage_wait_seconds
            )
            for stage in config.stages
        ],
        auto_upgrade=AutoUpgradeSpec(
            channel=config.auto_upgrade.channel,
            node_image_selection=config.auto_upgrade.node_image_selection,
            disabled=config.auto_upgrade.disabled,
        ),
        tags=tags,
    ),
)

pulumi.export("resourceGroupName", resource_group.name)
pulumi.export("fleetName", fleet.fleet.name)
pulumi.export("fleetResourceId", fleet.fleet_resource_id)
pulumi.export("updateStrategyId", fleet.strategy_resource_id)
pulumi.export("autoUpgradeProfileId", fleet.auto_upgrade_profile_id)
pulumi.export("members", {member.stack: member.group for member in config.members})
