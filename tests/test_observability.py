"""The recorded dev and prod graphs hold the KMS observability: workspace, diagnostics, action group and alerts.

Every assertion reads the recorded registrations (inputs as the engine received them, ids as the mock provider
answered) and ties resources to each other by those ids, never to constants of the program under test.
"""

from __future__ import annotations

from pathlib import Path

import pytest

from kms_aks_tools.offline.recording import SECRET_SIG, SECRET_SIG_KEY, RecordedResource, RecordedStack
from tests.engine import run_stack
from tests.graph import CLUSTER, IDENTITY, VAULT

WORKSPACE = "azure-native:operationalinsights:Workspace"
ACTION_GROUP = "azure-native:monitor:ActionGroup"
DIAGNOSTIC_SETTING = "azure-native:monitor:DiagnosticSetting"
SYSTEM_TOPIC = "azure-native:eventgrid:SystemTopic"
EVENT_SUBSCRIPTION = "azure-native:eventgrid:SystemTopicEventSubscription"
QUERY_ALERT = "azure-native:monitor:ScheduledQueryRule"
MONITORING = "kms-aks:index:KmsMonitoring"

STACKS = Path(__file__).parent / "stacks"
EXISTING_WORKSPACE = (
    "/subscriptions/0b1c2d3e-4f5a-4b6c-8d7e-9f0a1b2c3d4e/resourceGroups/rg-shared-logs"
    "/providers/Microsoft.OperationalInsights/workspaces/log-platform"
)
WEBHOOK = "https://hooks.contoso.example/alerts?token=s3cr3t-t0ken"


@pytest.fixture(scope="module")
def receivers_stack() -> RecordedStack:
    """dev with receivers (one a webhook carrying a token) and an existing workspace."""
    recorded = run_stack(
        "dev",
        config={
            "kms-aks:monitoring": {
                "workspaceResourceId": EXISTING_WORKSPACE,
                "alertEmails": ["sre@contoso.com", "kms-owner@contoso.com"],
                "alertWebhooks": [WEBHOOK],
            }
        },
    )
    assert recorded.error is None, recorded.error
    return recorded


@pytest.fixture(scope="module")
def byok_stack() -> RecordedStack:
    recorded = run_stack(str(STACKS / "Pulumi.private-byok.yaml"))
    assert recorded.error is None, recorded.error
    return recorded


def _diagnostics_on(stack: RecordedStack, resource: RecordedResource) -> RecordedResource:
    found = [d for d in stack.by_type(DIAGNOSTIC_SETTING) if d.inputs["resourceUri"] == resource.id]
    assert len(found) == 1, f"expected one diagnostic setting on {resource.name}, found {len(found)}"
    return found[0]


def _alert_for(stack: RecordedStack, event_type: str) -> RecordedResource:
    found = [s for s in stack.by_type(EVENT_SUBSCRIPTION) if s.inputs["filter"]["includedEventTypes"] == [event_type]]
    assert len(found) == 1, f"expected one event subscription for {event_type}, found {len(found)}"
    return found[0]


def _parent_type(stack: RecordedStack, resource: RecordedResource) -> str:
    return stack.by_urn()[resource.parent].type


# ---------------------------------------------------------------------------------------------- workspace


@pytest.mark.parametrize(("stack_name", "retention"), [("dev", 30), ("prod", 90)])
def test_a_workspace_is_created_under_the_monitoring_component(stack_name: str, retention: int, request) -> None:
    stack: RecordedStack = request.getfixturevalue(f"{stack_name}_stack")
    workspace = stack.one(WORKSPACE)
    assert workspace.inputs["sku"] == {"name": "PerGB2018"}
    assert workspace.inputs["retentionInDays"] == retention
    assert workspace.inputs["location"] == "westeurope"
    assert _parent_type(stack, workspace) == MONITORING
    assert workspace.id.endswith(f"/providers/Microsoft.OperationalInsights/workspaces/{workspace.outputs['name']}")
    assert workspace.outputs["customerId"] and workspace.outputs["customerId"] != workspace.id
    assert stack.outputs["logAnalyticsWorkspaceId"] == workspace.id


def test_an_existing_workspace_is_used_and_none_created(receivers_stack: RecordedStack) -> None:
    assert receivers_stack.by_type(WORKSPACE) == []
    for setting in receivers_stack.by_type(DIAGNOSTIC_SETTING):
        assert setting.inputs["workspaceId"] == EXISTING_WORKSPACE
    omsagent = receivers_stack.one(CLUSTER).inputs["addonProfiles"]["omsagent"]
    assert omsagent["config"]["logAnalyticsWorkspaceResourceID"] == EXISTING_WORKSPACE
    assert receivers_stack.one(QUERY_ALERT).inputs["scopes"] == [EXISTING_WORKSPACE]


# ---------------------------------------------------------------------------------------------- diagnostics


@pytest.mark.parametrize("stack_name", ["dev", "prod"])
def test_the_kms_vault_sends_audit_events_and_metrics_to_the_workspace(stack_name: str, request) -> None:
    stack: RecordedStack = request.getfixturevalue(f"{stack_name}_stack")
    vault, workspace = stack.one(VAULT), stack.one(WORKSPACE)
    setting = _diagnostics_on(stack, vault)
    assert setting.inputs["workspaceId"] == workspace.id
    assert setting.inputs["logs"] == [{"category": "AuditEvent", "enabled": True}]
    assert setting.inputs["metrics"] == [{"category": "AllMetrics", "enabled": True}]
    # The setting hangs under the vault: ARM gives it an id below the vault's.
    assert setting.id.startswith(f"{vault.id}/providers/Microsoft.Insights/diagnosticSettings/")
    assert vault.urn in setting.property_dependencies["resourceUri"]
    assert _parent_type(stack, setting) == MONITORING


@pytest.mark.parametrize("stack_name", ["dev", "prod"])
def test_the_cluster_sends_its_audit_and_api_server_logs_to_the_workspace(stack_name: str, request) -> None:
    stack: RecordedStack = request.getfixturevalue(f"{stack_name}_stack")
    cluster, workspace = stack.one(CLUSTER), stack.one(WORKSPACE)
    setting = _diagnostics_on(stack, cluster)
    assert setting.inputs["workspaceId"] == workspace.id
    assert {entry["category"] for entry in setting.inputs["logs"]} == {"kube-audit-admin", "kube-apiserver", "guard"}
    assert all(entry["enabled"] is True for entry in setting.inputs["logs"])
    # Not the full audit log: its reads are most of its volume and none of the KMS questions.
    assert "kube-audit" not in {entry["category"] for entry in setting.inputs["logs"]}
    assert setting.inputs["logAnalyticsDestinationType"] == "Dedicated"
    assert cluster.urn in setting.property_dependencies["resourceUri"]


@pytest.mark.parametrize("stack_name", ["dev", "prod"])
def test_container_insights_reports_to_the_workspace(stack_name: str, request) -> None:
    stack: RecordedStack = request.getfixturevalue(f"{stack_name}_stack")
    omsagent = stack.one(CLUSTER).inputs["addonProfiles"]["omsagent"]
    assert omsagent["enabled"] is True
    assert omsagent["config"] == {"logAnalyticsWorkspaceResourceID": stack.one(WORKSPACE).id, "useAADAuth": "true"}


@pytest.mark.parametrize("stack_name", ["dev", "prod"])
def test_container_insights_collects_through_a_rule_associated_with_the_cluster(stack_name: str, request) -> None:
    stack: RecordedStack = request.getfixturevalue(f"{stack_name}_stack")
    cluster, workspace = stack.one(CLUSTER), stack.one(WORKSPACE)
    rule = stack.one("azure-native:monitor:DataCollectionRule")
    [destination] = rule.inputs["destinations"]["logAnalytics"]
    assert destination["workspaceResourceId"] == workspace.id
    [flow] = rule.inputs["dataFlows"]
    assert flow["destinations"] == [destination["name"]]
    [extension] = rule.inputs["dataSources"]["extensions"]
    assert extension["extensionName"] == "ContainerInsights"
    assert extension["streams"] == flow["streams"]
    assert "Microsoft-ContainerLogV2" in flow["streams"] and "Microsoft-ContainerLog" not in flow["streams"]
    association = stack.one("azure-native:monitor:DataCollectionRuleAssociation")
    assert association.inputs["resourceUri"] == cluster.id
    assert association.inputs["dataCollectionRuleId"] == rule.id
    assert association.id.startswith(f"{cluster.id}/providers/Microsoft.Insights/dataCollectionRuleAssociations/")


# ---------------------------------------------------------------------------------------------- action group


def test_prod_pages_the_receivers_its_config_names(prod_stack: RecordedStack) -> None:
    group = prod_stack.one(ACTION_GROUP)
    assert [r["emailAddress"] for r in group.inputs["emailReceivers"]] == ["kms-aks-oncall@example.com"]
    assert group.inputs["enabled"] is True
    assert len(group.inputs["groupShortName"]) <= 12
    assert prod_stack.outputs["alertActionGroupId"] == group.id
    # The shipped address is a placeholder: the program says so before anyone deploys it.
    assert any("placeholder domain" in w and "kms-aks-oncall@example.com" in w for w in prod_stack.warnings)


def test_dev_without_receivers_is_told_that_alerts_page_no_one(dev_stack: RecordedStack) -> None:
    group = dev_stack.one(ACTION_GROUP)
    assert group.inputs.get("emailReceivers", []) == [] and group.inputs.get("webhookReceivers", []) == []
    assert any("page no one" in w for w in dev_stack.warnings)


def test_receivers_come_from_config_and_webhook_urls_are_secrets(receivers_stack: RecordedStack) -> None:
    group = receivers_stack.one(ACTION_GROUP)
    assert [r["emailAddress"] for r in group.inputs["emailReceivers"]] == ["sre@contoso.com", "kms-owner@contoso.com"]
    [webhook] = group.inputs["webhookReceivers"]
    assert webhook["serviceUri"] == {SECRET_SIG_KEY: SECRET_SIG, "value": WEBHOOK}
    assert webhook["useCommonAlertSchema"] is True
    assert not any("page no one" in w for w in receivers_stack.warnings)


# ---------------------------------------------------------------------------------------------- key alerts


@pytest.mark.parametrize("stack_name", ["dev", "prod"])
def test_key_near_expiry_and_expired_alert_through_the_action_group(stack_name: str, request) -> None:
    stack: RecordedStack = request.getfixturevalue(f"{stack_name}_stack")
    vault, group = stack.one(VAULT), stack.one(ACTION_GROUP)
    topic = stack.one(SYSTEM_TOPIC)
    assert topic.inputs["source"] == vault.id
    assert topic.inputs["topicType"] == "Microsoft.KeyVault.vaults"
    for event_type, severity in (
        ("Microsoft.KeyVault.KeyNearExpiry", "Sev1"),
        ("Microsoft.KeyVault.KeyExpired", "Sev0"),
    ):
        alert = _alert_for(stack, event_type)
        assert alert.inputs["systemTopicName"] == topic.outputs["name"]
        assert topic.urn in alert.dependencies
        # Azure Monitor alert destination: documented for Key Vault system topics with CloudEvents 1.0 only.
        assert alert.inputs["eventDeliverySchema"] == "CloudEventSchemaV1_0"
        destination = alert.inputs["destination"]
        assert destination["endpointType"] == "MonitorAlert"
        assert destination["actionGroups"] == [group.id]
        assert destination["severity"] == severity
        assert group.urn in alert.property_dependencies["destination"]


def test_new_key_version_alert_follows_its_config_flag(dev_stack: RecordedStack, prod_stack: RecordedStack) -> None:
    new_version = "Microsoft.KeyVault.KeyNewVersionCreated"
    alert = _alert_for(prod_stack, new_version)
    assert alert.inputs["destination"]["actionGroups"] == [prod_stack.one(ACTION_GROUP).id]
    assert not any(
        s.inputs["filter"]["includedEventTypes"] == [new_version] for s in dev_stack.by_type(EVENT_SUBSCRIPTION)
    )


# ---------------------------------------------------------------------------------------------- KMS access


@pytest.mark.parametrize("stack_name", ["dev", "prod"])
def test_failed_kms_access_alert_queries_the_kms_identitys_calls(stack_name: str, request) -> None:
    stack: RecordedStack = request.getfixturevalue(f"{stack_name}_stack")
    identity, workspace, group = stack.one(IDENTITY), stack.one(WORKSPACE), stack.one(ACTION_GROUP)
    principal = identity.outputs["principalId"]
    alert = stack.one(QUERY_ALERT)
    [condition] = alert.inputs["criteria"]["allOf"]
    query = condition["query"]
    assert f'callerObjectId =~ "{principal}"' in query
    assert 'Category == "AuditEvent"' in query
    assert 'OperationName in ("KeyEncrypt", "KeyDecrypt")' in query
    assert "httpStatusCode_d) >= 400" in query
    assert (condition["timeAggregation"], condition["operator"], condition["threshold"]) == ("Count", "GreaterThan", 0)
    assert alert.inputs["scopes"] == [workspace.id]
    assert alert.inputs["actions"]["actionGroups"] == [group.id]
    assert alert.inputs["severity"] == 0
    # The principal id is an output of the identity: the query is built from it, not from a copy.
    assert identity.urn in alert.property_dependencies["criteria"]


# ---------------------------------------------------------------------------------------------- bring your own key


def test_a_vault_this_stack_does_not_own_gets_no_diagnostics_or_system_topic(byok_stack: RecordedStack) -> None:
    cluster = byok_stack.one(CLUSTER)
    # Only the cluster's own diagnostic setting: the vault belongs to its owner.
    assert [d.inputs["resourceUri"] for d in byok_stack.by_type(DIAGNOSTIC_SETTING)] == [cluster.id]
    assert byok_stack.by_type(SYSTEM_TOPIC) == [] and byok_stack.by_type(EVENT_SUBSCRIPTION) == []
    assert any("does not own the vault" in w and "AuditEvent" in w for w in byok_stack.warnings)
    # The query alert still watches the workspace the owner is asked to send AuditEvent to.
    assert byok_stack.one(QUERY_ALERT).inputs["scopes"] == [byok_stack.one(WORKSPACE).id]
