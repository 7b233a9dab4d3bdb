"""The fleet project's stack config (`fleet/Pulumi.<stack>.yaml`, namespace `kms-aks-fleet`), validated in one place.

Every problem is collected and reported together, each naming its key and what is allowed, before a single
resource is registered (the same base and messages as the cluster stacks': `kms_aks.config.base`).
Patterns and enums are Azure Kubernetes Fleet Manager's own (REST API 2024-05-02-preview, the version
pulumi-azure-native 3.29 uses): group and stage names `^[a-z0-9]([-a-z0-9]*[a-z0-9])?$` up to 50 characters, hub
DNS prefix as `FleetHubProfile.dnsPrefix`, auto-upgrade channels `Stable`, `Rapid`, `NodeImage`.
"""

from __future__ import annotations

import re
from datetime import date, datetime
from typing import Annotated, Any, Literal

from pydantic import Field, StrictInt, ValidationError, model_validator

from kms_aks.config.base import ConfigError, StrictModel, decode_value, describe, matching
from kms_aks.config.stack import AzureRegion, DnsPrefix, ResourceGroupName

NAMESPACE = "kms-aks-fleet"
PROJECT = "kms-aks-fleet"

# Fleet Manager's name rule for update groups and stages (fleets.json: UpdateGroup.name, UpdateStage.name).
GroupName = matching(
    r"^[a-z0-9]([-a-z0-9]*[a-z0-9])?$", "lower-case letters, digits and hyphens, not starting or ending with a hyphen"
)
FleetName = matching(
    r"^[a-z0-9]([-a-z0-9]*[a-z0-9])?$", "lower-case letters, digits and hyphens, not starting or ending with a hyphen"
)
# A Pulumi stack name: letters, digits, '-', '_' and '.' (the kms-aks stack a member comes from).
StackName = matching(r"^[A-Za-z0-9_.-]{1,100}$", "a stack name: letters, digits, '-', '_' and '.'")
# `<organization>/<project>`: where the kms-aks stacks live (a file backend's organization is `organization`).
StackPrefix = matching(r"^[A-Za-z0-9_.-]+/[A-Za-z0-9_.-]+$", "<organization>/<project>, such as organization/kms-aks")

# The longest wait between two stages this project accepts: one week. Fleet Manager documents no ceiling; a
# longer pause is an operator's decision (stop the run), not a strategy.
MAX_STAGE_WAIT_SECONDS = 7 * 24 * 3600


class HubConfig(StrictModel):
    """`kms-aks-fleet:hub`: a hub cluster for the fleet (multi-cluster scheduling). Absent: a hubless fleet."""

    dns_prefix: DnsPrefix


class MemberConfig(StrictModel):
    """One `kms-aks-fleet:members` entry: the kms-aks stack whose cluster joins, and its update group."""

    stack: StackName
    group: Annotated[GroupName, Field(max_length=50)]


class StageConfig(StrictModel):
    """One `kms-aks-fleet:stages` entry: the groups upgraded together, then a wait before the next stage."""

    name: Annotated[GroupName, Field(max_length=50)]
    groups: Annotated[list[Annotated[GroupName, Field(max_length=50)]], Field(min_length=1)]
    after_stage_wait_seconds: Annotated[StrictInt, Field(ge=0, le=MAX_STAGE_WAIT_SECONDS)] = 0


class AutoUpgradeConfig(StrictModel):
    """`kms-aks-fleet:autoUpgrade`: Fleet Manager starts an update run through the stages on each new release."""

    channel: Literal["Stable", "Rapid", "NodeImage"] = "Stable"
    node_image_selection: Literal["Latest", "Consistent"] = "Consistent"
    disabled: bool = False


class FleetConfig(StrictModel):
    """The whole `kms-aks-fleet:` namespace of a fleet stack."""

    location: AzureRegion
    resource_group_name: ResourceGroupName | None = None
    fleet_name: Annotated[FleetName, Field(max_length=63)] | None = None
    hub: HubConfig | None = None
    stack_prefix: StackPrefix = "organization/kms-aks"
    members: Annotated[list[MemberConfig], Field(min_length=1)]
    stages: Annotated[list[StageConfig], Field(min_length=1)]
    auto_upgrade: AutoUpgradeConfig = AutoUpgradeConfig()

    @model_validator(mode="after")
    def _groups_and_stages_agree(self) -> FleetConfig:
        problems = membership_problems(self.model_dump(by_alias=True))
        if problems:
            raise ValueError("; ".join(problems))
        return self


def membership_problems(config: dict[str, Any]) -> list[str]:
    """Members, groups and stages that do not fit (each stack once, each group in one stage, no empty group)."""
    members = [m for m in config.get("members") or [] if isinstance(m, dict)]
    stages = [s for s in config.get("stages") or [] if isinstance(s, dict)]
    problems: list[str] = []
    stacks = [str(m.get("stack")) for m in members]
    for stack in sorted({s for s in stacks if stacks.count(s) > 1}):
        problems.append(f"{NAMESPACE}:members: stack {stack!r} is listed more than once; a cluster joins once")
    stage_names = [str(s.get("name")) for s in stages]
    for name in sorted({n for n in stage_names if stage_names.count(n) > 1}):
        problems.append(f"{NAMESPACE}:stages: stage {name!r} is defined more than once; stage names are unique")
    staged: dict[str, str] = {}
    for stage in stages:
        for group in stage.get("groups") or []:
            if group in staged:
                problems.append(
                    f"{NAMESPACE}:stages: group {group!r} is in stage {staged[group]!r} and in {stage.get('name')!r}; "
                    "a group is upgraded in exactly one stage"
                )
            staged.setdefault(group, str(stage.get("name")))
    member_groups = {str(m.get("group")) for m in members}
    for member in members:
        if member.get("group") not in staged:
            problems.append(
                f"{NAMESPACE}:members: stack {member.get('stack')!r} is in group {member.get('group')!r}, which no "
                f"stage upgrades; groups in stages: {', '.join(staged) or 'none'}"
            )
    for group, stage in staged.items():
        if group not in member_groups:
            problems.append(
                f"{NAMESPACE}:stages: group {group!r} (stage {stage!r}) has no member; give a member that group or "
                "remove it from the stage"
            )
    return problems


def parse_fleet_config(raw: dict[str, Any]) -> FleetConfig:
    """Validates the namespace's keys (without the `kms-aks-fleet:` prefix, values as Pulumi gives them)."""
    decoded = {key: decode_value(value) for key, value in raw.items()}
    try:
        return FleetConfig.model_validate(decoded)
    except ValidationError as exc:
        problems = []
        for error in exc.errors():
            text = describe(error, namespace=NAMESPACE, root=FleetConfig)
            # The cross-field check reports its problems as one "; "-joined message: one line each.
            problems += [part for part in re.split(r"; (?=kms-aks-fleet:)", text.removeprefix(": "))]
        raise ConfigError(problems) from None


def load_fleet_config() -> FleetConfig:
    """The typed config of the running fleet stack; raises ConfigError naming every bad key."""
    from pulumi.runtime import config as runtime_config

    all_config = {**runtime_config.get_config_env(), **runtime_config.CONFIG.get()}
    prefix = f"{NAMESPACE}:"
    return parse_fleet_config({k[len(prefix) :]: v for k, v in all_config.items() if k.startswith(prefix)})


# ------------------------------------------------------------------------------------------- members

# The exports a kms-aks stack gives the fleet (`__main__.py`): without any of them a member is refused.
# `kmsKeyExpiresOn` is optional: a stack output of None (a key version without expiry) is not in the stack's outputs.
MEMBER_EXPORTS = ("clusterResourceId", "kmsEnabled", "kmsKeyId")
MANAGED_CLUSTER_ID = re.compile(
    r"^/subscriptions/[^/]+/resourceGroups/[^/]+/providers/Microsoft\.ContainerService/managedClusters/[^/]+$",
    re.IGNORECASE,
)


def member_problems(stack: str, outputs: dict[str, Any], today: date) -> list[str]:
    """Why the cluster of kms-aks stack `stack` may not join, from its exports; empty when it may.

    Fails closed: a stack without the exports (deployed by an older program, or not a kms-aks stack) is refused,
    as is a cluster whose KMS is off or whose key version has expired.
    """
    where = f"{NAMESPACE}:members: stack {stack!r}"
    missing = [name for name in MEMBER_EXPORTS if name not in outputs]
    if missing:
        return [
            f"{where} exports no {', '.join(missing)}: it is not a kms-aks stack, or was last deployed by an older "
            "program. Run `pulumi up` on it with the current kms-aks program, then preview the fleet again"
        ]
    problems = []
    if outputs["kmsEnabled"] is not True:
        problems.append(
            f"{where}: KMS etcd encryption is off on its cluster (kmsEnabled: {outputs['kmsEnabled']!r}); only "
            "KMS clusters join this fleet. Turn KMS on for that stack (docs/fleet.md) or remove it from members"
        )
    cluster_id = outputs["clusterResourceId"]
    if not isinstance(cluster_id, str) or not MANAGED_CLUSTER_ID.match(cluster_id):
        problems.append(f"{where}: clusterResourceId {cluster_id!r} is not an AKS cluster's ARM id")
    expires = outputs.get("kmsKeyExpiresOn")
    if expires is not None:
        try:
            expiry = datetime.fromisoformat(str(expires))
        except ValueError:
            problems.append(f"{where}: kmsKeyExpiresOn {expires!r} is not an ISO 8601 date-time")
        else:
            if expiry.date() <= today:
                problems.append(
                    f"{where}: its KMS key version expired on {expiry.date()}: the cluster cannot decrypt its "
                    "secrets, and an upgrade would fail on it. Rotate the key (docs/rotation.md) first"
                )
    return problems


class MemberRefused(Exception):
    """One or more members may not join; the message names each stack and why."""

    def __init__(self, problems: list[str]) -> None:
        self.problems = problems
        super().__init__(
            f"the fleet refuses {len(problems)} member problem{'s' if len(problems) != 1 else ''}, nothing was "
            "created:\n" + "\n".join(f"  - {p}" for p in problems)
        )
