"""kms-aks-fleet: the kms-aks clusters in one Azure Kubernetes Fleet Manager fleet, upgraded stage by stage.

Wiring:
    StackReference per member (`<stackPrefix>/<stack>`: the kms-aks stack's cluster id, kmsEnabled, key id, expiry)
      -> every member checked (KMS on, exports present, key not expired): one message for all problems
      -> resource group (waits for the check, so a refused member means nothing is created)
      -> KmsFleet: Fleet, a FleetMember per stack in its update group, the staged FleetUpdateStrategy, and the
         AutoUpgradeProfile that starts runs through those stages on each release of its channel
Config: `kms-aks-fleet:` keys, validated by kms_aks.fleet_config; see docs/fleet.md.
"""

from datetime import UTC, datetime
from typing import Any

import pulumi
from pulumi_azure_native import resources

from components.kms_fleet import AutoUpgradeSpec, FleetMemberSpec, KmsFleet, KmsFleetArgs, UpdateStageSpec
from kms_aks.config import ConfigError
from kms_aks.fleet_config import MemberRefused, load_fleet_config, member_problems

try:
    config = load_fleet_config()
except ConfigError as error:
    # RunError ends the program with this message alone: a config mistake is not a crash.
    raise pulumi.RunError(str(error)) from None

stack = pulumi.get_stack()
tags = {"project": "kms-aks-fleet", "stack": stack}

references = {
    member.stack: pulumi.StackReference(f"member-{member.stack}", stack_name=f"{config.stack_prefix}/{member.stack}")
    for member in config.members
}


def checked_members(outputs_by_stack: dict[str, Any]) -> list[pulumi.Resource]:
    """Every member's exports judged together; raises with every problem, so nothing depending on this is created."""
    today = datetime.now(tz=UTC).date()
    problems = [p for name, outputs in outputs_by_stack.items() for p in member_problems(name, outputs or {}, today)]
    if problems:
        raise pulumi.RunError(str(MemberRefused(problems)))
    return list(references.values())


# Everything below waits for this: in preview and in up, a refused member stops the program before the first create.
members_checked = pulumi.Output.all(**{name: ref.outputs for name, ref in references.items()}).apply(checked_members)

resource_group = resources.ResourceGroup(
    "rg",
    resource_group_name=config.resource_group_name or f"rg-kms-aks-fleet-{stack}",
    location=config.location,
    tags=tags,
    opts=pulumi.ResourceOptions(depends_on=members_checked),
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
    # The component waits too: not even its (state-only) registration happens for a refused member.
    opts=pulumi.ResourceOptions(depends_on=members_checked),
)

pulumi.export("resourceGroupName", resource_group.name)
pulumi.export("fleetName", fleet.fleet.name)
pulumi.export("fleetResourceId", fleet.fleet_resource_id)
pulumi.export("updateStrategyId", fleet.strategy_resource_id)
pulumi.export("autoUpgradeProfileId", fleet.auto_upgrade_profile_id)
pulumi.export("members", {member.stack: member.group for member in config.members})
