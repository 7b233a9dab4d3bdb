"""KmsMonitoring: the workspace, the KMS vault's audit trail and the alerts that page someone before KMS breaks.

KMS takes a cluster down one way: the API server loses the key (expired, disabled, deleted, grant revoked, vault
unreachable). The alerts here cover what Azure reports about that: the key nearing expiry or expired (Key Vault
Event Grid events), failed encrypt/decrypt calls by the KMS identity (the vault's audit log), and optionally a new
key version (after an automatic rotation the team must pin it and re-encrypt). docs/observability.md says what each
alert means for the person paged and what to do.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, field

import pulumi
from pulumi_azure_native import eventgrid, monitor, operationalinsights

# Key Vault's Event Grid event types (https://learn.microsoft.com/azure/event-grid/event-schema-key-vault).
KEY_NEAR_EXPIRY = "Microsoft.KeyVault.KeyNearExpiry"
KEY_EXPIRED = "Microsoft.KeyVault.KeyExpired"
KEY_NEW_VERSION = "Microsoft.KeyVault.KeyNewVersionCreated"

# The vault's diagnostic log category holding every data-plane call (encrypt, decrypt, get, ...).
VAULT_LOG_CATEGORIES = ("AuditEvent",)
# AKS control-plane categories sent to the workspace, chosen for value per GB:
# - kube-audit-admin: the audit log without get/list/watch, i.e. every change, at a fraction of kube-audit's volume
#   (full kube-audit is the largest AKS log by far and mostly reads);
# - kube-apiserver: the API server's own log, where a KMS plugin failure ("failed to decrypt", unreachable key)
#   shows first;
# - guard: Entra ID authentication and Azure RBAC decisions; this cluster uses both and has no local accounts.
# Left out: kube-audit, kube-controller-manager, kube-scheduler, cluster-autoscaler, cloud-controller-manager and
# the CSI categories: cost without a KMS or access question they answer.
CLUSTER_LOG_CATEGORIES = ("kube-audit-admin", "kube-apiserver", "guard")

# Container Insights with Entra ID (managed identity) auth collects what a data collection rule names, and the
# rule reaches the cluster through an association: the add-on alone collects nothing. Streams and settings follow
# Microsoft's own onboarding template (microsoft/Docker-Provider, scripts/onboarding/aks/onboarding-msi-terraform),
# without the legacy ContainerLog stream (ContainerLogV2 replaces it; both would ingest every log line twice).
CONTAINER_INSIGHTS_STREAMS = (
    "Microsoft-ContainerLogV2",
    "Microsoft-KubeEvents",
    "Microsoft-KubePodInventory",
    "Microsoft-KubeNodeInventory",
    "Microsoft-KubePVInventory",
    "Microsoft-KubeServices",
    "Microsoft-KubeMonAgentEvents",
    "Microsoft-InsightsMetrics",
    "Microsoft-ContainerInventory",
    "Microsoft-ContainerNodeInventory",
    "Microsoft-Perf",
)

# Key Vault audit OperationName of the two operations AKS KMS performs.
KMS_OPERATIONS = ("KeyEncrypt", "KeyDecrypt")


@dataclass(frozen=True)
class AlertReceivers:
    """Who an alert reaches. Webhook URLs may carry tokens: they are stored as Pulumi secrets."""

    emails: Sequence[str] = ()
    webhooks: Sequence[str] = ()


@dataclass
class KmsMonitoringArgs:
    """Where the workspace lives, which vault is watched and who is paged.

    `workspace_resource_id` uses an existing Log Analytics workspace instead of creating one.
    `vault_resource_id` None (a bring-your-own-key vault this stack does not own) skips the vault's diagnostic
    setting and its Event Grid system topic: a vault has one system topic and a handful of diagnostic settings,
    both its owner's to manage.
    """

    name_prefix: str
    resource_group_name: pulumi.Input[str]
    location: str
    kms_principal_id: pulumi.Input[str]
    receivers: AlertReceivers
    vault_resource_id: pulumi.Input[str] | None = None
    workspace_resource_id: str | None = None
    retention_days: int = 30
    key_new_version_alert: bool = False
    tags: dict[str, str] = field(default_factory=dict)


class KmsMonitoring(pulumi.ComponentResource):
    """A Log Analytics workspace, an action group, the KMS vault's diagnostics and the KMS alerts.

    `watch_cluster` adds the cluster's diagnostic setting once the cluster exists (the cluster itself needs the
    workspace id first, for Container Insights and Defender).
    Outputs: `workspace_resource_id`, `workspace_customer_id`, `action_group_id`.
    """

    workspace: operationalinsights.Workspace | None
    workspace_resource_id: pulumi.Output[str]
    action_group: monitor.ActionGroup
    action_group_id: pulumi.Output[str]
    vault_diagnostics: monitor.DiagnosticSetting | None
    system_topic: eventgrid.SystemTopic | None
    key_alerts: list[eventgrid.SystemTopicEventSubscription]
    kms_access_alert: monitor.ScheduledQueryRule
    container_insights_rule: monitor.DataCollectionRule
    container_insights_association: monitor.DataCollectionRuleAssociation | None
    cluster_diagnostics: monitor.DiagnosticSetting | None

    def __init__(self, name: str, args: KmsMonitoringArgs, opts: pulumi.ResourceOptions | None = None) -> None:
        super().__init__("kms-aks:index:KmsMonitoring", name, None, opts)
        self._name = name
        child = pulumi.ResourceOptions(parent=self)
        if args.workspace_resource_id:
            self.workspace = None
            self.workspace_resource_id = pulumi.Output.from_input(args.workspace_resource_id)
        else:
            self.workspace = operationalinsights.Workspace(
                f"{name}-workspace",
                workspace_name=f"log-{args.name_prefix}",
                resource_group_name=args.resource_group_name,
                location=args.location,
                sku=operationalinsights.WorkspaceSkuArgs(name="PerGB2018"),
                retention_in_days=args.retention_days,
                tags=args.tags,
                opts=child,
            )
            self.workspace_resource_id = self.workspace.id

        self.action_group = self._action_group(name, args)
        self.action_group_id = self.action_group.id

        self.vault_diagnostics = None
        self.system_topic = None
        self.key_alerts = []
        if args.vault_resource_id is not None:
            # Every encrypt and decrypt by the KMS identity lands in AuditEvent; AllMetrics adds availability and
            # latency. Without the log the failed-access alert below has nothing to read.
            self.vault_diagnostics = monitor.DiagnosticSetting(
                f"{name}-vault-diagnostics",
                name="kms-audit",
                resource_uri=args.vault_resource_id,
                workspace_id=self.workspace_resource_id,
                logs=[monitor.DiagnosticsLogSettingsArgs(category=c, enabled=True) for c in VAULT_LOG_CATEGORIES],
                metrics=[monitor.DiagnosticsMetricSettingsArgs(category="AllMetrics", enabled=True)],
                opts=child,
            )
            self._key_event_alerts(name, args, args.vault_resource_id)

        self.kms_access_alert = self._kms_access_alert(name, args)
        self.container_insights_rule = self._container_insights_rule(name, args)
        self.container_insights_association = None
        self.cluster_diagnostics = None

        self.register_outputs(
            {
                "workspaceResourceId": self.workspace_resource_id,
                "actionGroupId": self.action_group_id,
            }
        )

    def watch_cluster(self, cluster_resource_id: pulumi.Input[str]) -> monitor.DiagnosticSetting:
        """The cluster's control-plane logs (CLUSTER_LOG_CATEGORIES) to the workspace, and Container Insights' data
        collection rule associated with the cluster."""
        self.container_insights_association = monitor.DataCollectionRuleAssociation(
            f"{self._name}-container-insights-association",
            association_name="ContainerInsightsExtension",
            resource_uri=cluster_resource_id,
            data_collection_rule_id=self.container_insights_rule.id,
            description="Container Insights data collection; deleting it stops collection for this cluster.",
            opts=pulumi.ResourceOptions(parent=self),
        )
        self.cluster_diagnostics = monitor.DiagnosticSetting(
            f"{self._name}-cluster-diagnostics",
            name="aks-control-plane",
            resource_uri=cluster_resource_id,
            workspace_id=self.workspace_resource_id,
            # Resource-specific tables (AKSAuditAdmin, AKSControlPlane) instead of AzureDiagnostics: cheaper to
            # query, and they can be moved to a cheaper table plan.
            log_analytics_destination_type="Dedicated",
            logs=[monitor.DiagnosticsLogSettingsArgs(category=c, enabled=True) for c in CLUSTER_LOG_CATEGORIES],
            opts=pulumi.ResourceOptions(parent=self),
        )
        return self.cluster_diagnostics

    def _container_insights_rule(self, name: str, args: KmsMonitoringArgs) -> monitor.DataCollectionRule:
        streams = list(CONTAINER_INSIGHTS_STREAMS)
        return monitor.DataCollectionRule(
            f"{name}-container-insights",
            # The name Container Insights gives the rule it creates itself (MSCI-<region>-<cluster>).
            data_collection_rule_name=f"MSCI-{args.location}-{args.name_prefix}",
            resource_group_name=args.resource_group_name,
            # A rule sends to workspaces in its own region: an existing workspace belongs in the stack's region.
            location=args.location,
            description="Container Insights for the KMS-encrypted AKS cluster",
            destinations=monitor.DataCollectionRuleDestinationsArgs(
                log_analytics=[
                    monitor.LogAnalyticsDestinationArgs(
                        name="ciworkspace", workspace_resource_id=self.workspace_resource_id
                    )
                ]
            ),
            data_flows=[monitor.DataFlowArgs(streams=streams, destinations=["ciworkspace"])],
            data_sources=monitor.DataCollectionRuleDataSourcesArgs(
                extensions=[
                    monitor.ExtensionDataSourceArgs(
                        name="ContainerInsightsExtension",
                        extension_name="ContainerInsights",
                        streams=streams,
                        extension_settings={
                            "dataCollectionSettings": {
                                "interval": "1m",
                                "namespaceFilteringMode": "Off",
                                "enableContainerLogV2": True,
                            }
                        },
                    )
                ]
            ),
            tags=args.tags,
            opts=pulumi.ResourceOptions(parent=self),
        )

    def _action_group(self, name: str, args: KmsMonitoringArgs) -> monitor.ActionGroup:
        return monitor.ActionGroup(
            f"{name}-action-group",
            action_group_name=f"ag-{args.name_prefix}-kms",
            # At most 12 characters: it is the sender name of SMS and email.
            group_short_name="kms-aks"[:12],
            resource_group_name=args.resource_group_name,
            location="Global",
            enabled=True,
            email_receivers=[
                monitor.MicrosoftCommonEmailReceiverArgs(
                    name=f"email-{i}", email_address=address, use_common_alert_schema=True
                )
                for i, address in enumerate(args.receivers.emails, start=1)
            ],
            webhook_receivers=[
                monitor.WebhookReceiverArgs(
                    name=f"webhook-{i}",
                    # A webhook URL often carries its token in the query string: never in plain text in state.
                    service_uri=pulumi.Output.secret(url),
                    use_common_alert_schema=True,
                )
                for i, url in enumerate(args.receivers.webhooks, start=1)
            ],
            tags=args.tags,
            opts=pulumi.ResourceOptions(parent=self),
        )

    def _key_event_alerts(self, name: str, args: KmsMonitoringArgs, vault_resource_id: pulumi.Input[str]) -> None:
        # Key Vault publishes KeyNearExpiry (30 days ahead) and KeyExpired through an Event Grid system topic.
        # The Azure Monitor alert destination (MonitorAlert) turns each event into a fired alert that goes to the
        # action group: no function, queue or webhook to run. Microsoft documents it (preview) for Key Vault system
        # topics only, with the CloudEvents 1.0 schema:
        # https://learn.microsoft.com/azure/event-grid/handler-azure-monitor-alerts
        self.system_topic = eventgrid.SystemTopic(
            f"{name}-vault-events",
            system_topic_name=f"evgt-{args.name_prefix}-kms-vault",
            resource_group_name=args.resource_group_name,
            location=args.location,
            source=vault_resource_id,
            topic_type="Microsoft.KeyVault.vaults",
            tags=args.tags,
            opts=pulumi.ResourceOptions(parent=self),
        )
        alerts = [
            (
                "key-near-expiry",
                KEY_NEAR_EXPIRY,
                1,
                "The KMS key expires within 30 days: rotate and pin a new version.",
            ),
            ("key-expired", KEY_EXPIRED, 0, "The KMS key has expired: the cluster cannot encrypt or decrypt secrets."),
        ]
        if args.key_new_version_alert:
            alerts.append(
                ("key-new-version", KEY_NEW_VERSION, 3, "A new KMS key version exists: pin it and re-encrypt secrets.")
            )
        for suffix, event_type, severity, description in alerts:
            self.key_alerts.append(
                eventgrid.SystemTopicEventSubscription(
                    f"{name}-{suffix}",
                    event_subscription_name=suffix,
                    system_topic_name=self.system_topic.name,
                    resource_group_name=args.resource_group_name,
                    event_delivery_schema="CloudEventSchemaV1_0",
                    filter=eventgrid.EventSubscriptionFilterArgs(included_event_types=[event_type]),
                    destination=eventgrid.MonitorAlertEventSubscriptionDestinationArgs(
                        endpoint_type="MonitorAlert",
                        severity=f"Sev{severity}",
                        description=description,
                        action_groups=[self.action_group_id],
                    ),
                    opts=pulumi.ResourceOptions(parent=self),
                )
            )

    def _kms_access_alert(self, name: str, args: KmsMonitoringArgs) -> monitor.ScheduledQueryRule:
        query = pulumi.Output.from_input(args.kms_principal_id).apply(kms_access_failure_query)
        return monitor.ScheduledQueryRule(
            f"{name}-kms-access-failing",
            rule_name=f"{args.name_prefix}-kms-access-failing",
            resource_group_name=args.resource_group_name,
            location=args.location,
            description="Encrypt or decrypt calls by the cluster's KMS identity fail: etcd secrets may become "
            "unreadable. See docs/observability.md.",
            severity=0,
            enabled=True,
            scopes=[self.workspace_resource_id],
            evaluation_frequency="PT5M",
            window_size="PT5M",
            criteria=monitor.ScheduledQueryRuleCriteriaArgs(
                all_of=[
                    monitor.ConditionArgs(
                        query=query,
                        time_aggregation="Count",
                        operator="GreaterThan",
                        threshold=0,
                        failing_periods=monitor.ConditionFailingPeriodsArgs(
                            number_of_evaluation_periods=1, min_failing_periods_to_alert=1
                        ),
                    )
                ]
            ),
            actions=monitor.ActionsArgs(action_groups=[self.action_group_id]),
            auto_mitigate=True,
            tags=args.tags,
            opts=pulumi.ResourceOptions(parent=self),
        )


def kms_access_failure_query(principal_id: str) -> str:
    """KQL over the vault's AuditEvent log (AzureDiagnostics): failed KMS operations by this principal.

    The caller's object id is `identity_claim_oid_g` (older rows: the long claim-URI column); column_ifexists keeps
    the query valid before the first row of either kind arrives.
    """
    operations = ", ".join(f'"{op}"' for op in KMS_OPERATIONS)
    return (
        "AzureDiagnostics\n"
        '| where ResourceProvider == "MICROSOFT.KEYVAULT" and Category == "AuditEvent"\n'
        f"| where OperationName in ({operations})\n"
        "| where toint(httpStatusCode_d) >= 400\n"
        '| extend callerObjectId = tostring(column_ifexists("identity_claim_oid_g", '
        'column_ifexists("identity_claim_http_schemas_microsoft_com_identity_claims_objectidentifier_g", "")))\n'
        f'| where callerObjectId =~ "{principal_id}"\n'
        "| project TimeGenerated, Resource, OperationName, httpStatusCode_d, ResultSignature, ResultDescription"
    )
