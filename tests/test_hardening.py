"""Hardening per stack config (ephemeral OS disk, encryption at host, secrets rotation, Defender), the grant
propagation wait, and the config refusals of the new keys."""

from __future__ import annotations

from typing import Any

import pytest

from kms_aks.config.base import ConfigError
from kms_aks.config.stack import parse_stack_config
from kms_aks_tools.offline.recording import RecordedStack
from kms_aks_tools.project.stack_file import load_stack_file
from tests.conftest import KmsAks
from tests.engine import run_stack
from tests.graph import ACCESS_POLICY, CLUSTER, SLEEP

WORKSPACE = "azure-native:operationalinsights:Workspace"


def _pool(stack: RecordedStack) -> dict[str, Any]:
    [pool] = stack.one(CLUSTER).inputs["agentPoolProfiles"]
    return pool


def _dev_with(**cluster_overrides: Any) -> RecordedStack:
    cluster = load_stack_file("dev")["kms-aks:cluster"]
    recorded = run_stack("dev", config={"kms-aks:cluster": {**cluster, **cluster_overrides}})
    assert recorded.error is None, recorded.error
    return recorded


def _raw(stack: str = "dev") -> dict[str, Any]:
    return {k.removeprefix("kms-aks:"): v for k, v in load_stack_file(stack).items() if k.startswith("kms-aks:")}


# ---------------------------------------------------------------------------------------------- OS disk


@pytest.mark.parametrize("stack_name", ["dev", "prod"])
def test_the_shipped_vm_size_gets_an_ephemeral_os_disk(stack_name: str, request) -> None:
    stack: RecordedStack = request.getfixturevalue(f"{stack_name}_stack")
    pool = _pool(stack)
    # Standard_D4ds_v5 has a 150 GiB temporary disk (Microsoft Learn, Ddsv5 series): the 128 GB OS disk fits.
    assert pool["vmSize"] == "Standard_D4ds_v5"
    assert (pool["osDiskType"], pool["osDiskSizeGB"]) == ("Ephemeral", 128)


def test_a_vm_size_without_a_local_disk_gets_a_managed_os_disk() -> None:
    # Dsv5 sizes have no temporary disk at all (Microsoft Learn, Dsv5 series).
    recorded = _dev_with(systemNodePool={"vmSize": "Standard_D4s_v5", "count": 2})
    assert _pool(recorded)["osDiskType"] == "Managed"
    assert not any("not in this project's table" in w for w in recorded.warnings)


def test_an_unknown_vm_size_gets_a_managed_os_disk_and_a_warning() -> None:
    recorded = _dev_with(systemNodePool={"vmSize": "Standard_F8s_v2", "count": 2})
    assert _pool(recorded)["osDiskType"] == "Managed"
    assert any("Standard_F8s_v2 is not in this project's table" in w for w in recorded.warnings)


def test_managed_os_disk_is_the_way_out() -> None:
    recorded = _dev_with(systemNodePool={"vmSize": "Standard_D4ds_v5", "count": 2, "osDiskType": "Managed"})
    assert _pool(recorded)["osDiskType"] == "Managed"


# ---------------------------------------------------------------------------------------------- encryption, add-ons


def test_encryption_at_host_is_on_in_both_stacks(dev_stack: RecordedStack, prod_stack: RecordedStack) -> None:
    # prod sets it; dev gets it from the default (hardening on by default), as its stack file does not name it.
    assert "encryptionAtHost" in load_stack_file("prod")["kms-aks:cluster"]["systemNodePool"]
    assert "encryptionAtHost" not in load_stack_file("dev")["kms-aks:cluster"]["systemNodePool"]
    assert _pool(prod_stack)["enableEncryptionAtHost"] is True
    assert _pool(dev_stack)["enableEncryptionAtHost"] is True


def test_encryption_at_host_can_be_turned_off() -> None:
    # The way out for a subscription without the Microsoft.Compute/EncryptionAtHost feature.
    recorded = _dev_with(systemNodePool={"vmSize": "Standard_D4ds_v5", "count": 2, "encryptionAtHost": False})
    assert _pool(recorded)["enableEncryptionAtHost"] is False


@pytest.mark.parametrize("stack_name", ["dev", "prod"])
def test_the_key_vault_secrets_provider_rotates_secrets(stack_name: str, request) -> None:
    stack: RecordedStack = request.getfixturevalue(f"{stack_name}_stack")
    addon = stack.one(CLUSTER).inputs["addonProfiles"]["azureKeyvaultSecretsProvider"]
    # ARM's add-on config is a map of strings, as the Secrets Store CSI driver add-on documents it.
    assert addon == {"enabled": True, "config": {"enableSecretRotation": "true", "rotationPollInterval": "2m"}}


def test_the_secrets_provider_can_be_turned_off_or_slowed_down() -> None:
    off = _dev_with(secretsProvider={"enabled": False})
    assert "azureKeyvaultSecretsProvider" not in off.one(CLUSTER).inputs["addonProfiles"]
    slow = _dev_with(secretsProvider={"rotationPollIntervalMinutes": 30})
    addon = slow.one(CLUSTER).inputs["addonProfiles"]["azureKeyvaultSecretsProvider"]
    assert addon["config"]["rotationPollInterval"] == "30m"


def test_defender_reports_to_the_workspace_in_prod_only(dev_stack: RecordedStack, prod_stack: RecordedStack) -> None:
    defender = prod_stack.one(CLUSTER).inputs["securityProfile"]["defender"]
    assert defender == {
        "logAnalyticsWorkspaceResourceId": prod_stack.one(WORKSPACE).id,
        "securityMonitoring": {"enabled": True},
    }
    assert "defender" not in dev_stack.one(CLUSTER).inputs["securityProfile"]


def test_the_plan_names_the_os_disk_and_host_encryption(kms_aks: KmsAks) -> None:
    result = kms_aks("plan", "--stack", "prod")
    assert result.returncode == 0, result.stdout + result.stderr
    assert "OS disk: Ephemeral (128 GB)" in result.stdout
    assert "encryption at host: yes" in result.stdout
    assert "kms-grant-propagation time:index/sleep:Sleep" in result.stdout
    assert "wait: 30s" in result.stdout
    # The monitoring resources show what a reviewer checks: categories, event types, receivers (counted only).
    assert "logs: AuditEvent" in result.stdout and "metrics: AllMetrics" in result.stdout
    assert "logs: kube-audit-admin, kube-apiserver, guard" in result.stdout
    assert "events: Microsoft.KeyVault.KeyNearExpiry" in result.stdout
    assert "receivers: 1 email, 0 webhook" in result.stdout


# ---------------------------------------------------------------------------------------------- propagation wait


@pytest.mark.parametrize("stack_name", ["dev", "prod"])
def test_the_wait_follows_every_grant_and_precedes_the_cluster(stack_name: str, request) -> None:
    stack: RecordedStack = request.getfixturevalue(f"{stack_name}_stack")
    wait, cluster = stack.one(SLEEP), stack.one(CLUSTER)
    grants = [r for r in stack.resources if r.name in ("kms-access-policy", "kms-crypto-user")]
    assert len(grants) == 1
    assert all(g.urn in wait.dependencies for g in grants)
    assert wait.urn in cluster.dependencies
    assert wait.inputs["createDuration"] == "30s"
    # A new identity has new grants: its principal id re-runs the wait.
    assert wait.inputs["triggers"] == {
        "principalId": stack.one("azure-native:managedidentity:UserAssignedIdentity").outputs["principalId"]
    }
    # The time provider answers with its creation time as id.
    assert wait.id.endswith("Z")


def test_the_wait_is_configurable_and_zero_removes_it() -> None:
    longer = run_stack("dev", config={"kms-aks:grantPropagationWaitSeconds": 90})
    assert longer.error is None, longer.error
    assert longer.one(SLEEP).inputs["createDuration"] == "90s"
    none = run_stack("dev", config={"kms-aks:grantPropagationWaitSeconds": 0})
    assert none.error is None, none.error
    assert none.by_type(SLEEP) == []
    # Without the wait the cluster still waits for the grant to exist.
    assert none.one(ACCESS_POLICY).urn in none.one(CLUSTER).dependencies


# ---------------------------------------------------------------------------------------------- config refusals


@pytest.mark.parametrize(
    ("edit", "key", "explanation"),
    [
        (
            lambda c: c["cluster"]["systemNodePool"].update(vmSize="Standard_D2ds_v5", osDiskType="Ephemeral"),
            "kms-aks:cluster.systemNodePool.osDiskType",
            "Ephemeral does not fit Standard_D2ds_v5: its cache or temporary disk holds 75 GiB",
        ),
        (
            lambda c: c["cluster"]["systemNodePool"].update(osDiskType="Local"),
            "kms-aks:cluster.systemNodePool.osDiskType",
            "'Ephemeral' or 'Managed'",
        ),
        (
            lambda c: c["cluster"].update(secretsProvider={"rotationPollIntervalMinutes": 0}),
            "kms-aks:cluster.secretsProvider.rotationPollIntervalMinutes",
            "greater than or equal to 1",
        ),
        (
            lambda c: c["cluster"].update(secretsProvider={"rotationPollIntervalMinutes": 1441}),
            "kms-aks:cluster.secretsProvider.rotationPollIntervalMinutes",
            "less than or equal to 1440",
        ),
        (lambda c: c["cluster"].update(defender="yes"), "kms-aks:cluster.defender", "valid boolean"),
        (lambda c: c.update(grantPropagationWaitSeconds="30s"), "kms-aks:grantPropagationWaitSeconds", "integer"),
        (lambda c: c.update(grantPropagationWaitSeconds=601), "kms-aks:grantPropagationWaitSeconds", "600"),
        (lambda c: c.update(grantPropagationWaitSeconds=-1), "kms-aks:grantPropagationWaitSeconds", "0"),
        (lambda c: c.update(monitoring={"retentionDays": 7}), "kms-aks:monitoring.retentionDays", "30"),
        (lambda c: c.update(monitoring={"retentionDays": 731}), "kms-aks:monitoring.retentionDays", "730"),
        (lambda c: c.update(monitoring={"alertEmails": ["on-call"]}), "kms-aks:monitoring.alertEmails.0", "email"),
        (
            lambda c: c.update(monitoring={"alertWebhooks": ["http://hooks.contoso.com/x"]}),
            "kms-aks:monitoring.alertWebhooks.0",
            "https://",
        ),
        (
            lambda c: c.update(monitoring={"alertEmails": [f"a{i}@contoso.com" for i in range(21)]}),
            "kms-aks:monitoring.alertEmails",
            "at most 20",
        ),
        (
            lambda c: c.update(monitoring={"workspaceResourceId": "log-platform"}),
            "kms-aks:monitoring.workspaceResourceId",
            "Log Analytics workspace resource id",
        ),
        (lambda c: c.update(monitoring={"alertEmail": ["a@contoso.com"]}), "kms-aks:monitoring.alertEmail", "unknown"),
        (
            lambda c: c.update(monitoring={"keyNewVersionAlert": "true"}),
            "kms-aks:monitoring.keyNewVersionAlert",
            "bool",
        ),
    ],
)
def test_new_keys_are_refused_naming_the_key(edit, key: str, explanation: str) -> None:
    raw = _raw()
    raw["cluster"] = {**raw["cluster"], "systemNodePool": dict(raw["cluster"]["systemNodePool"])}
    edit(raw)
    with pytest.raises(ConfigError) as refused:
        parse_stack_config(raw)
    problem = next((p for p in refused.value.problems if p.startswith(f"{key}:")), None)
    assert problem is not None, refused.value.problems
    assert explanation in problem


def test_a_top_level_number_given_as_text_is_read_as_a_number() -> None:
    # Pulumi hands top-level scalars to the program as text.
    assert parse_stack_config({**_raw(), "grantPropagationWaitSeconds": "45"}).grant_propagation_wait_seconds == 45


def test_the_shipped_stacks_parse_with_their_new_keys() -> None:
    prod = parse_stack_config(_raw("prod"))
    assert prod.cluster.system_node_pool.encryption_at_host is True
    assert prod.cluster.defender is True
    assert prod.monitoring.key_new_version_alert is True
    dev = parse_stack_config(_raw("dev"))
    assert dev.monitoring.alert_emails == [] and dev.cluster.system_node_pool.resolved_os_disk_type == "Ephemeral"
    assert dev.cluster.system_node_pool.encryption_at_host is True
    assert [str(r) for r in dev.cluster.api_server_authorized_ip_ranges] == ["198.51.100.0/24"]


def test_a_refused_webhook_url_is_not_echoed() -> None:
    # A webhook URL may carry its token: a config error must name the key without showing the value.
    with pytest.raises(ConfigError) as refused:
        parse_stack_config({**_raw(), "monitoring": {"alertWebhooks": ["http://hooks.contoso.com/x?token=hunter2"]}})
    [problem] = refused.value.problems
    assert problem.startswith("kms-aks:monitoring.alertWebhooks.0: must be an https:// URL")
    assert "hunter2" not in str(refused.value)
