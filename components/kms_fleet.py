"""KmsFleet: KMS clusters in an Azure Kubernetes Fleet Manager fleet, upgraded stage by stage without a human.

    Fleet (hubless unless a hub is asked for)
      ├─ FleetMember per cluster, each in its update group (canary, eu, us, ...)
      ├─ FleetUpdateStrategy: ordered stages of groups, a wait after each stage
      └─ AutoUpgradeProfile: on each new release of its channel, Fleet Manager creates AND starts an update run
                             that follows the strategy (an UpdateRun declared here would stay "Not started")

azure-native 3.29 serves all four with Azure REST API 2024-05-02-preview. Required arguments there:
Fleet `resource_group_name`; FleetMember `cluster_resource_id`, `fleet_name`, `resource_group_name`;
FleetUpdateStrategy `fleet_name`, `resource_group_name`, `strategy`; AutoUpgradeProfile `channel`, `fleet_name`,
`resource_group_name` (UpdateRun, not used: `fleet_name`, `managed_cluster_update`, `resource_group_name`).
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from typing import Literal

import pulumi
from pulumi_azure_native import containerservice


@dataclass(frozen=True)
class FleetMemberSpec:
    """A cluster that joins: its member name, its ARM id, and the update group it is upgraded with."""

    name: str
    cluster_resource_id: pulumi.Input[str]
    group: str


@dataclass(frozen=True)
class UpdateStageSpec:
    """Groups upgraded together, then `after_stage_wait_seconds` before the next stage starts."""

    name: str
    groups: Sequence[str]
    after_stage_wait_seconds: int = 0


@dataclass(frozen=True)
class AutoUpgradeSpec:
    """How Fleet Manager starts runs by itself: the release channel, node images, and an off switch."""

    channel: Literal["Stable", "Rapid", "NodeImage"] = "Stable"
    node_image_selection: Literal["Latest", "Consistent"] = "Consistent"
    disabled: bool = False


@dataclass
class KmsFleetArgs:
    """The fleet and its members. `hub_dns_prefix` None makes a hubless fleet (update orchestration only)."""

    fleet_name: str
    resource_group_name: pulumi.Input[str]
    location: str
    members: Sequence[FleetMemberSpec]
    stages: Sequence[UpdateStageSpec]
    auto_upgrade: AutoUpgradeSpec = field(default_factory=AutoUpgradeSpec)
    hub_dns_prefix: str | None = None
    strategy_name: str = "staged"
    auto_upgrade_profile_name: str = "auto"
    tags: Mapping[str, str] = field(default_factory=dict)


class KmsFleet(pulumi.ComponentResource):
    """A Fleet whose members are KMS clusters, with a staged strategy that auto-upgrade follows."""

    fleet: containerservice.Fleet
    members: dict[str, containerservice.FleetMember]
    strategy: containerservice.FleetUpdateStrategy
    auto_upgrade: containerservice.AutoUpgradeProfile

    def __init__(self, name: str, args: KmsFleetArgs, opts: pulumi.ResourceOptions | None = None) -> None:
        super().__init__("kms-aks:index:KmsFleet", name, None, opts)
        child = pulumi.ResourceOptions(parent=self)
        self.fleet = containerservice.Fleet(
            f"{name}-fleet",
            fleet_name=args.fleet_name,
            resource_group_name=args.resource_group_name,
            location=args.location,
            # No hub by default: a hubless fleet orchestrates upgrades and costs nothing; a hub is an AKS cluster.
            hub_profile=containerservice.FleetHubProfileArgs(dns_prefix=args.hub_dns_prefix)
            if args.hub_dns_prefix
            else None,
            tags=dict(args.tags),
            opts=child,
        )
        self.members = {
            member.name: containerservice.FleetMember(
                f"{name}-member-{member.name}",
                fleet_member_name=member.name,
                fleet_name=self.fleet.name,
                resource_group_name=args.resource_group_name,
                cluster_resource_id=member.cluster_resource_id,
                group=member.group,
                opts=child,
            )
            for member in args.members
        }
        self.strategy = containerservice.FleetUpdateStrategy(
            f"{name}-strategy",
            update_strategy_name=args.strategy_name,
            fleet_name=self.fleet.name,
            resource_group_name=args.resource_group_name,
            strategy=containerservice.UpdateRunStrategyArgs(
                stages=[
                    containerservice.UpdateStageArgs(
                        name=stage.name,
                        groups=[containerservice.UpdateGroupArgs(name=group) for group in stage.groups],
                        after_stage_wait_in_seconds=stage.after_stage_wait_seconds,
                    )
                    for stage in args.stages
                ]
            ),
            # A run that reaches a group with no member yet would skip it: the groups exist first.
            opts=pulumi.ResourceOptions(parent=self, depends_on=list(self.members.values())),
        )
        self.auto_upgrade = containerservice.AutoUpgradeProfile(
            f"{name}-auto-upgrade",
            auto_upgrade_profile_name=args.auto_upgrade_profile_name,
            fleet_name=self.fleet.name,
            resource_group_name=args.resource_group_name,
            channel=args.auto_upgrade.channel,
            node_image_selection=containerservice.AutoUpgradeNodeImageSelectionArgs(
                type=args.auto_upgrade.node_image_selection
            ),
            # The runs it creates follow the staged strategy; without it they would upgrade every member at once.
            update_strategy_id=self.strategy.id,
            disabled=args.auto_upgrade.disabled,
            opts=child,
        )
        self.fleet_resource_id = self.fleet.id
        self.strategy_resource_id = self.strategy.id
        self.auto_upgrade_profile_id = self.auto_upgrade.id
        self.register_outputs(
            {
                "fleetResourceId": self.fleet_resource_id,
                "strategyResourceId": self.strategy_resource_id,
                "autoUpgradeProfileId": self.auto_upgrade_profile_id,
                "memberIds": {name: member.id for name, member in self.members.items()},
            }
        )
