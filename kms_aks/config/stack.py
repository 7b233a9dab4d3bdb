"""The stack configuration: read once from `Pulumi.<stack>.yaml`, validated in one place, typed everywhere after.

Every problem is collected and reported together, each naming its config key and what is allowed, before a
single resource is registered. Numbers and booleans are strict: `"banana"`, `true` or `2048.5` are refused,
never coerced.
"""

from __future__ import annotations

import contextlib
import json
import math
import re
from datetime import date
from ipaddress import IPv4Network
from typing import Annotated, Any, Literal

from pydantic import (
    AfterValidator,
    Field,
    StrictBool,
    StrictInt,
    StringConstraints,
    ValidationError,
    ValidationInfo,
    field_validator,
    model_validator,
)

# The Azure facts (id patterns, DNS suffixes, the KMS v2 threshold) live in one place, shared with the pack.
from azure_facts import (
    EXISTING_KEY_TYPE_TAG,
    EXISTING_VAULT_AUDIT_LOGGING_TAG,
    EXISTING_VAULT_PURGE_PROTECTION_TAG,
    EXISTING_VAULT_SOFT_DELETE_DAYS_TAG,
    KEY_NAME_PATTERN,
    KEY_VERSION_PATTERN,
    VAULT_NAME_PATTERN,
    VAULT_RESOURCE_ID,
    VERSIONED_KEY_ID,
)
from azure_facts import KMS_V2_MIN_KUBERNETES_VERSION as KMS_V2_MIN_VERSION
from kms_aks.config.base import ConfigError, StrictModel, decode_value, describe, matching
from kms_aks.vm_sizes import OS_DISK_SIZE_GB, OsDiskType, default_os_disk_type, ephemeral_capacity

PROJECT = "kms-aks"

# Private key vault mode. AKS needs a delegated API server subnet of at least a /28 for VNet integration.
API_SERVER_SUBNET_MAX_PREFIX_LENGTH = 28
# Azure keeps the first four addresses and the last address of every subnet.
AZURE_RESERVED_ADDRESSES_PER_SUBNET = 5
# The system pool's upgrade surge (`maxSurge`): extra nodes that need addresses during an upgrade.
NODE_UPGRADE_MAX_SURGE_PERCENT = 33
# What AKS uses for Azure CNI Overlay when the cluster sets no podCidr / serviceCidr (this project sets
# neither): a VNet overlapping them makes cluster creation fail, so the config refuses it up front.
AKS_DEFAULT_POD_CIDR = IPv4Network("10.244.0.0/16")
AKS_DEFAULT_SERVICE_CIDR = IPv4Network("10.0.0.0/16")

# The longest a KMS key version may live (about five years): every day count in the config is bounded by it.
MAX_KEY_LIFETIME_DAYS = 1826

VaultName = matching(
    rf"^{VAULT_NAME_PATTERN}$",
    "3-24 characters, letters, digits and hyphens, starting with a letter and not ending with a hyphen",
)
KeyName = matching(rf"^{KEY_NAME_PATTERN}$", "1-127 characters, letters, digits and hyphens")
KeyVersion = matching(rf"^{KEY_VERSION_PATTERN}$", "a key version: 32 hexadecimal characters")
ResourceGroupName = matching(
    r"^[-\w._()]{1,89}[-\w_()]$",
    "1-90 characters, letters, digits, '-', '_', '.', '(' and ')', not ending with '.'",
    unbounded=r"^[-\w._()]+[-\w_()]$",
    within_bounds=lambda name: len(name) <= 90,
)
ClusterName = matching(
    r"^[a-zA-Z0-9][a-zA-Z0-9_-]{0,61}[a-zA-Z0-9]$",
    "2-63 characters, letters, digits, '-' and '_', starting and ending with a letter or digit",
)
DnsPrefix = matching(
    r"^[a-zA-Z0-9][a-zA-Z0-9-]{0,52}[a-zA-Z0-9]$",
    "2-54 characters, letters, digits and hyphens, starting and ending with a letter or digit",
)
AzureRegion = matching(r"^[a-z][a-z0-9]{2,39}$", "an Azure region name such as westeurope or eastus2")
KubernetesVersion = matching(r"^1\.\d{1,2}(\.\d{1,3})?$", "a Kubernetes version such as 1.33 or 1.33.2")
ObjectId = matching(
    r"^[0-9a-fA-F]{8}-[0-9a-fA-F]{4}-[0-9a-fA-F]{4}-[0-9a-fA-F]{4}-[0-9a-fA-F]{12}$",
    "an Entra ID object id (a GUID)",
)
VmSize = matching(r"^Standard_[A-Za-z0-9_]+$", "an Azure VM size such as Standard_D4ds_v5")

PermissionModel = Literal["accessPolicy", "rbac"]
# How AKS reaches the KMS vault: over its public endpoint, or through a private endpoint AKS creates itself.
KeyVaultNetworkAccess = Literal["Public", "Private"]


class KeyVaultConfig(StrictModel):
    """`kms-aks:keyVault`: the vault this project creates for the KMS key."""

    name: VaultName
    sku: Literal["standard", "premium"] = "standard"
    permission_model: PermissionModel = "rbac"
    soft_delete_retention_days: Annotated[StrictInt, Field(ge=7, le=90)] = 90


class RotationPolicyConfig(StrictModel):
    """`kms-aks:kmsKey.rotation`: Key Vault's automatic rotation, with every version's expiry planned with it."""

    # Key Vault's floors (rotate >= 7 days after creation, expiry >= 28 days); the ceilings are this project's:
    # a KMS key version meant to live longer than MAX_KEY_LIFETIME_DAYS is not being rotated.
    rotate_after_days: Annotated[StrictInt, Field(ge=7, le=MAX_KEY_LIFETIME_DAYS)]
    expire_after_days: Annotated[StrictInt, Field(ge=28, le=MAX_KEY_LIFETIME_DAYS)]
    notify_before_expiry_days: Annotated[StrictInt, Field(ge=7, le=MAX_KEY_LIFETIME_DAYS)] = 30

    @model_validator(mode="after")
    def _rotation_before_expiry(self) -> RotationPolicyConfig:
        # Key Vault itself requires the rotate trigger at least 7 days before expiry; a version that
        # expires before it is replaced takes the cluster's secrets with it.
        if self.rotate_after_days > self.expire_after_days - 7:
            raise ValueError(
                f"rotateAfterDays ({self.rotate_after_days}) must be at least 7 days shorter than "
                f"expireAfterDays ({self.expire_after_days}); a key version must be replaced before it expires"
            )
        if self.notify_before_expiry_days >= self.expire_after_days:
            raise ValueError(
                f"notifyBeforeExpiryDays ({self.notify_before_expiry_days}) must be shorter than "
                f"expireAfterDays ({self.expire_after_days})"
            )
        return self


class KmsKeyConfig(StrictModel):
    """`kms-aks:kmsKey`: the key encryption key that AKS KMS uses for etcd."""

    name: KeyName = "aks-kms"
    type: Literal["RSA", "RSA-HSM"] = "RSA"
    size: Literal[2048, 3072, 4096] = 2048
    expires_on: date | None = Field(default=None, description="an absolute expiry of the first version")
    rotation: RotationPolicyConfig | None = None
    version: KeyVersion | None = Field(
        default=None,
        description="pins the key version the cluster uses; set it to move the cluster to a new version",
    )

    @model_validator(mode="before")
    @classmethod
    def _parse_date(cls, data: Any) -> Any:
        # YAML gives ISO dates as strings; strict mode would otherwise refuse them.
        # A bad date stays a string, so strict validation reports it with its key.
        if isinstance(data, dict) and isinstance(data.get("expiresOn"), str):
            with contextlib.suppress(ValueError):
                data = {**data, "expiresOn": date.fromisoformat(data["expiresOn"])}
        return data


class ExistingKeyConfig(StrictModel):
    """`kms-aks:existingKey`: bring your own key. No vault and no key are created."""

    key_id: str = Field(description="versioned key id: https://<vault>.vault.azure.net/keys/<name>/<version>")
    key_vault_resource_id: str
    permission_model: PermissionModel
    # What the key and its vault are, declared by the stack (the key exists before it): the policy pack checks
    # them against the stack's requirements (requireHsm, purge protection). Required where the stack requires an
    # HSM key (docs/configuration.md, "Bring your own key").
    key_type: Literal["RSA", "RSA-HSM"] | None = Field(default=None, description="the key's kty: RSA or RSA-HSM")
    purge_protection: StrictBool | None = Field(
        default=None, description="whether the key's vault has purge protection (KMS needs it: true)"
    )
    soft_delete_retention_days: Annotated[StrictInt, Field(ge=7, le=90)] | None = None
    # The vault is its owner's, and so are its diagnostic settings: where the stack makes audit logging mandatory
    # (prod), the owner's AuditEvent setting is declared here, as the policy pack cannot see it.
    audit_logging: StrictBool | None = Field(
        default=None, description="whether the key's vault sends its AuditEvent log to a destination"
    )

    @field_validator("purge_protection")
    @classmethod
    def _purge_protected(cls, value: bool | None) -> bool | None:
        if value is False:
            raise ValueError(
                "false: a KMS key's vault must have purge protection (deleting the key would otherwise destroy "
                "etcd's data for good); enable it on the vault (`az keyvault update --enable-purge-protection "
                "true`), then declare purgeProtection: true"
            )
        return value

    @model_validator(mode="after")
    def _declared_together(self) -> ExistingKeyConfig:
        declared = {"keyType": self.key_type, "purgeProtection": self.purge_protection}
        missing = [key for key, value in declared.items() if value is None]
        if len(missing) == 1:
            raise ValueError(
                f"{missing[0]} is not declared beside {'purgeProtection' if missing[0] == 'keyType' else 'keyType'}: "
                "declare both (keyType RSA or RSA-HSM, purgeProtection true), or neither"
            )
        return self

    @property
    def declared_properties(self) -> dict[str, str]:
        """The declared properties as the cluster's tags (azure_facts' names), for the policy pack."""
        tags = {}
        if self.key_type is not None:
            tags[EXISTING_KEY_TYPE_TAG] = self.key_type
        if self.purge_protection is not None:
            tags[EXISTING_VAULT_PURGE_PROTECTION_TAG] = str(self.purge_protection).lower()
        if self.soft_delete_retention_days is not None:
            tags[EXISTING_VAULT_SOFT_DELETE_DAYS_TAG] = str(self.soft_delete_retention_days)
        if self.audit_logging is not None:
            tags[EXISTING_VAULT_AUDIT_LOGGING_TAG] = str(self.audit_logging).lower()
        return tags

    @model_validator(mode="after")
    def _ids_agree(self) -> ExistingKeyConfig:
        key = VERSIONED_KEY_ID.match(self.key_id)
        if key is None:
            raise ValueError(
                f"keyId {self.key_id!r} is not a versioned Key Vault key id; expected "
                "https://<vault>.vault.azure.net/keys/<name>/<32-hex-version> (the key's `kid`)"
            )
        vault = VAULT_RESOURCE_ID.match(self.key_vault_resource_id)
        if vault is None:
            raise ValueError(
                f"keyVaultResourceId {self.key_vault_resource_id!r} is not a Key Vault resource id; expected "
                "/subscriptions/<id>/resourceGroups/<rg>/providers/Microsoft.KeyVault/vaults/<name>"
            )
        if key["vault"].lower() != vault["vault"].lower():
            raise ValueError(
                f"keyId names vault {key['vault']!r} but keyVaultResourceId names vault {vault['vault']!r}; "
                "they must be the same vault"
            )
        return self

    @property
    def vault_name(self) -> str:
        return VAULT_RESOURCE_ID.match(self.key_vault_resource_id)["vault"]  # type: ignore[index]

    @property
    def vault_resource_group(self) -> str:
        return VAULT_RESOURCE_ID.match(self.key_vault_resource_id)["resource_group"]  # type: ignore[index]

    @property
    def key_name(self) -> str:
        return VERSIONED_KEY_ID.match(self.key_id)["name"]  # type: ignore[index]

    @property
    def vault_uri(self) -> str:
        match = VERSIONED_KEY_ID.match(self.key_id)
        return f"https://{match['vault']}.{match['suffix']}/"  # type: ignore[index]


class SystemNodePoolConfig(StrictModel):
    """`kms-aks:cluster.systemNodePool`."""

    vm_size: VmSize = "Standard_D4ds_v5"
    count: Annotated[StrictInt, Field(ge=1, le=100)] = 3
    zones: list[Literal["1", "2", "3"]] = Field(default_factory=list)
    max_pods: Annotated[StrictInt, Field(ge=30, le=250)] = 110
    os_sku: Literal["AzureLinux", "Ubuntu"] = "AzureLinux"
    # On by default (hardening on where the design allows, issue 10); it needs the subscription feature
    # Microsoft.Compute/EncryptionAtHost registered first (docs/observability.md#encryption-at-host).
    encryption_at_host: StrictBool = Field(
        default=True, description="needs the EncryptionAtHost feature registered on the subscription"
    )
    only_critical_addons: StrictBool = False
    os_disk_type: OsDiskType | None = Field(
        default=None,
        description="Ephemeral or Managed; unset: Ephemeral where the VM size's local disk holds the OS disk",
    )

    @field_validator("os_disk_type")
    @classmethod
    def _ephemeral_fits(cls, value: OsDiskType | None, info: ValidationInfo) -> OsDiskType | None:
        # vmSize is validated first (it is declared first); a bad vmSize is reported on its own key.
        vm_size = info.data.get("vm_size")
        capacity = ephemeral_capacity(vm_size) if vm_size else None
        if value == "Ephemeral" and capacity is not None and capacity < OS_DISK_SIZE_GB:
            raise ValueError(
                f"Ephemeral does not fit {vm_size}: its cache or temporary disk holds {capacity} GiB and the OS disk "
                f"is {OS_DISK_SIZE_GB} GiB; choose a VM size with a local disk of at least {OS_DISK_SIZE_GB} GiB "
                "(e.g. Standard_D4ds_v5) or set osDiskType: Managed"
            )
        return value

    @property
    def resolved_os_disk_type(self) -> OsDiskType:
        """What the pool gets: the configured type, else Ephemeral where the VM size allows it."""
        return self.os_disk_type or default_os_disk_type(self.vm_size)


class SecretsProviderConfig(StrictModel):
    """`kms-aks:cluster.secretsProvider`: the Azure Key Vault Secrets Provider add-on (Secrets Store CSI driver)."""

    enabled: StrictBool = True
    # The driver re-reads mounted secrets this often, so a rotated secret reaches pods without a restart.
    rotation_poll_interval_minutes: Annotated[StrictInt, Field(ge=1, le=1440)] = 2


class ClusterConfig(StrictModel):
    """`kms-aks:cluster`: the AKS cluster. Its identity is always user-assigned: KMS cannot use any other."""

    name: ClusterName
    kubernetes_version: KubernetesVersion
    dns_prefix: DnsPrefix | None = None
    sku_tier: Literal["Free", "Standard", "Premium"] = "Standard"
    system_node_pool: SystemNodePoolConfig = Field(default_factory=SystemNodePoolConfig)
    admin_group_object_ids: list[ObjectId] = Field(
        default_factory=list, description="Entra ID groups with cluster-admin; empty creates one"
    )
    admin_group_name: str | None = None
    api_server_authorized_ip_ranges: list[IPv4Network] = Field(default_factory=list)
    upgrade_channel: Literal["patch", "stable", "rapid", "node-image"] = "patch"
    node_os_upgrade_channel: Literal["NodeImage", "SecurityPatch", "Unmanaged"] = "NodeImage"
    azure_policy_addon: StrictBool = True
    secrets_provider: SecretsProviderConfig = Field(default_factory=SecretsProviderConfig)
    defender: StrictBool = Field(
        default=False,
        description="Microsoft Defender for Containers sensor, reporting to the monitoring workspace",
    )

    @model_validator(mode="before")
    @classmethod
    def _parse_ip_ranges(cls, data: Any) -> Any:
        # Strict mode takes no strings for IPv4Network; parse here and let a bad range be named.
        if isinstance(data, dict) and isinstance(data.get("apiServerAuthorizedIpRanges"), list):
            parsed: list[Any] = []
            for item in data["apiServerAuthorizedIpRanges"]:
                try:
                    parsed.append(IPv4Network(item) if isinstance(item, str) else item)
                except ValueError:
                    parsed.append(item)
            data = {**data, "apiServerAuthorizedIpRanges": parsed}
        return data

    @property
    def version_tuple(self) -> tuple[int, int]:
        major, minor = self.kubernetes_version.split(".")[:2]
        return int(major), int(minor)

    @property
    def uses_kms_v2(self) -> bool:
        return self.version_tuple >= KMS_V2_MIN_VERSION


def _parse_networks(data: Any, keys: tuple[str, ...]) -> Any:
    """Strict mode takes no strings for IPv4Network: parse the given keys, and leave a bad value as it is so
    that validation names it with its key."""
    if not isinstance(data, dict):
        return data
    parsed = dict(data)
    for key in keys:
        if isinstance(parsed.get(key), str):
            with contextlib.suppress(ValueError):
                parsed[key] = IPv4Network(parsed[key])
    return parsed


class NetworkConfig(StrictModel):
    """`kms-aks:network`: the VNet this project creates for API server VNet integration.

    Only a private KMS key vault (`keyVaultNetworkAccess: Private`) uses it: AKS reaches a private vault from
    the API server's own subnet, so the API server must be projected into a VNet.
    """

    vnet_address_space: IPv4Network = Field(description="the VNet's address space, e.g. 10.20.0.0/22")
    api_server_subnet_prefix: IPv4Network = Field(
        description="the API server subnet, delegated to AKS; at least a /28, e.g. 10.20.0.0/28"
    )
    node_subnet_prefix: IPv4Network = Field(description="the system node pool's subnet, e.g. 10.20.1.0/24")

    @model_validator(mode="before")
    @classmethod
    def _parse(cls, data: Any) -> Any:
        return _parse_networks(data, ("vnetAddressSpace", "apiServerSubnetPrefix", "nodeSubnetPrefix"))

    @model_validator(mode="after")
    def _fits(self) -> NetworkConfig:
        problems = []
        vnet, api, nodes = self.vnet_address_space, self.api_server_subnet_prefix, self.node_subnet_prefix
        for key, subnet in (("apiServerSubnetPrefix", api), ("nodeSubnetPrefix", nodes)):
            if not subnet.subnet_of(vnet):
                problems.append(f"{key} {subnet} is not inside vnetAddressSpace {vnet}")
        if api.overlaps(nodes):
            problems.append(f"apiServerSubnetPrefix {api} and nodeSubnetPrefix {nodes} overlap")
        if api.prefixlen > API_SERVER_SUBNET_MAX_PREFIX_LENGTH:
            problems.append(
                f"apiServerSubnetPrefix {api} is too small: API server VNet integration needs at least a "
                f"/{API_SERVER_SUBNET_MAX_PREFIX_LENGTH}"
            )
        clashes = [
            f"{what} {cidr}"
            for what, cidr in (("pod CIDR", AKS_DEFAULT_POD_CIDR), ("service CIDR", AKS_DEFAULT_SERVICE_CIDR))
            if vnet.overlaps(cidr)
        ]
        if clashes:
            problems.append(
                f"vnetAddressSpace {vnet} overlaps the cluster's {' and '.join(clashes)} (AKS's defaults, which "
                f"this project uses); choose a range outside {AKS_DEFAULT_SERVICE_CIDR} and {AKS_DEFAULT_POD_CIDR}, "
                "e.g. 10.20.0.0/22"
            )
        if problems:
            raise ValueError("; ".join(problems))
        return self


# An email receiver of the action group; deliberately loose (Azure Monitor validates the address itself).
EmailAddress = matching(
    r"^[^@\s]{1,64}@[^@\s]{1,255}\.[A-Za-z]{2,}$",
    "an email address such as sre@contoso.com",
    unbounded=r"^[^@\s]+@[^@\s]+\.[A-Za-z]{2,}$",
    # One "@"; the top-level domain has no ".", so the domain's part before it ends at the last ".".
    within_bounds=lambda address: (
        len(address.split("@")[0]) <= 64 and len(address.split("@")[1].rsplit(".", 1)[0]) <= 255
    ),
)
# A webhook receiver; HTTPS only, since the URL (and any token in it) crosses the internet.
_WEBHOOK_URL = re.compile(r"^https://[^\s]{1,2040}$")


def _webhook_url(value: str) -> str:
    # Checked here rather than by a pattern: a refused URL is not echoed, since it may carry a token.
    if not _WEBHOOK_URL.match(value):
        raise ValueError("must be an https:// URL without spaces (the value is not shown: it may carry a token)")
    return value


WebhookUrl = Annotated[str, StringConstraints(strict=True), AfterValidator(_webhook_url)]
WorkspaceResourceId = matching(
    r"^/subscriptions/[0-9a-fA-F-]{36}/resourceGroups/[-\w._()]{1,90}/providers/"
    r"Microsoft\.OperationalInsights/workspaces/[A-Za-z0-9][A-Za-z0-9-]{2,61}[A-Za-z0-9]$",
    "a Log Analytics workspace resource id: "
    "/subscriptions/<id>/resourceGroups/<rg>/providers/Microsoft.OperationalInsights/workspaces/<name>",
    unbounded=r"^/subscriptions/[0-9a-fA-F-]{36}/resourceGroups/[-\w._()]+/providers/"
    r"Microsoft\.OperationalInsights/workspaces/[A-Za-z0-9][A-Za-z0-9-]{2,61}[A-Za-z0-9]$",
    # The resource group is the fifth "/"-separated segment ("", "subscriptions", <id>, "resourceGroups", <rg>).
    within_bounds=lambda resource_id: len(resource_id.split("/")[4]) <= 90,
)


class MonitoringConfig(StrictModel):
    """`kms-aks:monitoring`: the Log Analytics workspace, diagnostics and the alerts that page someone."""

    workspace_resource_id: WorkspaceResourceId | None = Field(
        default=None, description="use this existing workspace instead of creating one"
    )
    retention_days: Annotated[StrictInt, Field(ge=30, le=730)] = 30
    alert_emails: Annotated[list[EmailAddress], Field(max_length=20)] = Field(default_factory=list)
    # Set them with `pulumi config set --secret --path 'monitoring.alertWebhooks[0]' <url>`: they may carry tokens.
    alert_webhooks: Annotated[list[WebhookUrl], Field(max_length=10)] = Field(default_factory=list)
    key_new_version_alert: StrictBool = Field(
        default=False, description="page on every new key version, so the team pins it and re-encrypts"
    )


class StackConfig(StrictModel):
    """Everything one stack says, validated. Built once by `load_stack_config`; components get parts of it."""

    location: AzureRegion
    resource_group_name: ResourceGroupName | None = None
    protect_kms_resources: StrictBool = Field(
        default=True,
        description="protect the key, vault and identity from deletion; lift only for throwaway stacks",
    )
    key_vault: KeyVaultConfig | None = None
    kms_key: KmsKeyConfig | None = None
    existing_key: ExistingKeyConfig | None = None
    key_vault_network_access: KeyVaultNetworkAccess = Field(
        default="Public",
        description="Private: the vault refuses public traffic and AKS reaches it through a private endpoint "
        "(needs kms-aks:network for API server VNet integration)",
    )
    network: NetworkConfig | None = None
    cluster: ClusterConfig
    monitoring: MonitoringConfig = Field(default_factory=MonitoringConfig)
    grant_propagation_wait_seconds: Annotated[StrictInt, Field(ge=0, le=600)] = Field(
        default=30,
        description="how long the cluster waits after the identity's grants exist, for them to take effect; "
        "0 waits for nothing",
    )
    tags: dict[str, str] = Field(default_factory=dict)
    key_serves_external_cluster: StrictBool | None = Field(
        default=None,
        description="read by the plan guard: whether a cluster in another stack uses this stack's key vault and "
        "key (default: assumed when the stack holds a vault or key but no cluster)",
    )

    @model_validator(mode="before")
    @classmethod
    def _top_level_integers(cls, data: Any) -> Any:
        # Pulumi hands a top-level scalar over as text ("30"); only whole decimal numbers become integers, so
        # "30s" or "banana" is still refused with its key.
        value = data.get("grantPropagationWaitSeconds") if isinstance(data, dict) else None
        if isinstance(value, str) and re.fullmatch(r"\d{1,6}", value.strip()):
            data = {**data, "grantPropagationWaitSeconds": int(value)}
        return data

    @model_validator(mode="after")
    def _key_source(self) -> StackConfig:
        raw = self.model_dump(by_alias=True, exclude_none=True, mode="json")
        # The first problem here; parse_stack_config adds the others from the raw config.
        problems = key_source_problems(raw) + private_mode_problems(raw)
        if problems:
            raise ValueError(problems[0])
        if self.existing_key is None and self.kms_key is None:
            return self.model_copy(update={"kms_key": KmsKeyConfig()})
        return self

    @property
    def permission_model(self) -> PermissionModel:
        source = self.existing_key or self.key_vault
        assert source is not None
        return source.permission_model

    @property
    def private_key_vault(self) -> bool:
        """AKS reaches the KMS vault through a private endpoint; the stack has a VNet for it."""
        return self.key_vault_network_access == "Private"

    @property
    def kms_key_version_pinned(self) -> bool:
        """Whether config names the exact key version the cluster uses, so that a config change moves it.

        A bring-your-own key id is always versioned, so it is always pinned: changing existingKey.keyId is how
        such a key is rotated. A created key is pinned by kmsKey.version.
        """
        if self.existing_key is not None:
            return True
        return bool(self.kms_key and self.kms_key.version)


def key_source_problems(config: dict[str, Any]) -> list[str]:
    """Where the KMS key comes from: checked on raw config too, so it is reported beside field errors."""
    existing, vault, key = config.get("existingKey"), config.get("keyVault"), config.get("kmsKey")
    if existing is not None:
        if vault is not None or key is not None:
            return [
                "existingKey (bring your own key) cannot be combined with keyVault or kmsKey; "
                "set either existingKey, or keyVault with kmsKey"
            ]
        return []
    if vault is None:
        return [f"{PROJECT}:keyVault: required, unless {PROJECT}:existingKey brings your own key"]
    key_type = key.get("type", "RSA") if isinstance(key, dict) else "RSA"
    sku = vault.get("sku", "standard") if isinstance(vault, dict) else None
    if key_type == "RSA-HSM" and sku == "standard":
        return [
            f"{PROJECT}:kmsKey.type: RSA-HSM needs {PROJECT}:keyVault.sku 'premium' (HSM-protected keys do "
            "not exist on 'standard'); set keyVault.sku: premium or kmsKey.type: RSA"
        ]
    return []


def private_mode_problems(config: dict[str, Any]) -> list[str]:
    """A private KMS vault and its network come together; checked on raw config too, beside field errors."""
    access, network = config.get("keyVaultNetworkAccess", "Public"), config.get("network")
    if access not in ("Public", "Private"):
        return []  # reported as a field error, naming what is allowed
    if access == "Private" and network is None:
        return [
            f"{PROJECT}:network: required when {PROJECT}:keyVaultNetworkAccess is Private: a private KMS key vault "
            "needs API server VNet integration, so set network.vnetAddressSpace, network.apiServerSubnetPrefix "
            "and network.nodeSubnetPrefix (or set keyVaultNetworkAccess: Public)"
        ]
    if access != "Private" and network is not None:
        return [
            f"{PROJECT}:network: set, but {PROJECT}:keyVaultNetworkAccess is {access!r}; the VNet exists only for a "
            f"private KMS key vault, so set {PROJECT}:keyVaultNetworkAccess: Private or remove {PROJECT}:network"
        ]
    if access == "Private" and isinstance(network, dict):
        return _node_subnet_problems(network, config.get("cluster"))
    return []


def _node_subnet_problems(network: dict[str, Any], cluster: Any) -> list[str]:
    """The node subnet holds every node plus the upgrade surge; Azure keeps five addresses of it."""
    try:
        subnet = IPv4Network(str(network["nodeSubnetPrefix"]))
    except (KeyError, ValueError):
        return []  # a missing or malformed prefix is reported with its own key
    pool = cluster.get("systemNodePool", {}) if isinstance(cluster, dict) else {}
    count = pool.get("count", SystemNodePoolConfig.model_fields["count"].default) if isinstance(pool, dict) else None
    if not isinstance(count, int) or isinstance(count, bool):
        return []
    needed = count + math.ceil(count * NODE_UPGRADE_MAX_SURGE_PERCENT / 100)
    usable = subnet.num_addresses - AZURE_RESERVED_ADDRESSES_PER_SUBNET
    if usable >= needed:
        return []
    return [
        f"{PROJECT}:network.nodeSubnetPrefix: {subnet} has {max(usable, 0)} usable addresses, but "
        f"{PROJECT}:cluster.systemNodePool.count {count} needs {needed} (the nodes plus the "
        f"{NODE_UPGRADE_MAX_SURGE_PERCENT}% upgrade surge); choose a larger subnet"
    ]


SYSTEM_ASSIGNED_MESSAGE = (
    "KMS requires a user-assigned identity: AKS KMS etcd encryption cannot use a system-assigned identity, so "
    "this project always creates a user-assigned one and grants it the key; remove this key "
    "(there is no identity setting to choose)"
)


def _asks_for_system_assigned(key: str, value: Any) -> bool:
    """An unknown key that tries to choose the cluster's identity (`identity`, `identityType: SystemAssigned`)."""
    text = json.dumps(value) if not isinstance(value, str) else value
    return "identity" in key.lower() or "systemassigned" in text.replace("-", "").replace(" ", "").lower()


def _unquoted_version_hint(value: Any) -> str | None:
    """YAML reads `kubernetesVersion: 1.30` as the number 1.3: say so, and how to quote it."""
    if isinstance(value, bool) or not isinstance(value, int | float | str):
        return None
    text = str(value)
    lost_zero = re.fullmatch(r"1\.\d", text) is not None
    if isinstance(value, str) and not lost_zero:
        return None
    written = f"{text}0" if lost_zero else text
    return (
        f'must be a quoted string such as "1.33" (got {text}: YAML reads an unquoted version as a number, '
        f'so 1.30 becomes 1.3); write kubernetesVersion: "{written}"'
    )


# Go's `time.Time.String()`: what the Pulumi CLI makes of an unquoted YAML date or timestamp (yaml.v3 decodes it as
# a time, and the config value keeps its text), e.g. `expiresOn: 2027-06-01` -> "2027-06-01 00:00:00 +0000 UTC".
_GO_TIME_TEXT = re.compile(r"^(\d{4}-\d{2}-\d{2}) \d{2}:\d{2}:\d{2}(?:\.\d+)? [+-]\d{4} \S+$")
# YAML 1.1 booleans that the Pulumi CLI (Go's yaml.v3, YAML 1.2) keeps as strings.
_YAML11_BOOLEANS = {"y", "yes", "n", "no", "on", "off"}


def _yaml_hint(key: str, value: Any) -> str | None:
    """What to write instead, when a value is what the CLI's YAML made of a date or a yes/no."""
    if not isinstance(value, str):
        return None
    if match := _GO_TIME_TEXT.match(value):
        return (
            f"an unquoted date: the Pulumi CLI reads it as the timestamp {value!r}, not a date; "
            f'quote it: {key}: "{match[1]}"'
        )
    if value.lower() in _YAML11_BOOLEANS:
        meant = "true" if value.lower() in ("y", "yes", "on") else "false"
        reads = "the Pulumi CLI reads yes/no/on/off as text"
        return f"must be a valid boolean, true or false (got {value!r}: {reads}); write {key}: {meant}"
    return None


def _value_hint(key: str, error: dict[str, Any]) -> str | None:
    """How to write a value that YAML turned into something else: an unquoted version, date or yes/no."""
    if key == "kubernetesVersion":
        return _unquoted_version_hint(error.get("input"))
    if error["type"] in ("date_type", "date_from_datetime_parsing", "date_parsing", "bool_type"):
        return _yaml_hint(key, error.get("input"))
    return None


def _hint(loc: list[str], error: dict[str, Any]) -> str | None:
    """The stack config's own wording: a key that tries to choose the identity, a value YAML turned into another."""
    if error["type"] == "extra_forbidden":
        return SYSTEM_ASSIGNED_MESSAGE if loc and _asks_for_system_assigned(loc[-1], error.get("input")) else None
    if error["type"] == "missing" or not loc:
        return None
    return _value_hint(loc[-1], error)


def _version_problems(config: dict[str, Any]) -> list[str]:
    """A version string that passes the pattern but is an unquoted number in disguise (`"1.3"` from `1.30`)."""
    cluster = config.get("cluster")
    version = cluster.get("kubernetesVersion") if isinstance(cluster, dict) else None
    if isinstance(version, str) and re.fullmatch(r"1\.\d", version):
        return [f"{PROJECT}:cluster.kubernetesVersion: {_unquoted_version_hint(version)}"]
    return []


def location_problems(config: dict[str, Any], provider_location: str | None) -> list[str]:
    """`azure-native:location` is the provider's default region; a second region in one stack is a mistake."""
    location = config.get("location")
    if provider_location is None or not isinstance(location, str) or provider_location == location:
        return []
    return [
        f"{PROJECT}:location: {location!r}, but azure-native:location is {provider_location!r}; resources "
        f"would be split across two regions. Set both to the same region, or remove azure-native:location "
        f"(this project passes {PROJECT}:location to every resource)"
    ]


def parse_stack_config(raw: dict[str, Any], *, provider_location: str | None = None) -> StackConfig:
    """Validates raw project config (keys without the `kms-aks:` prefix, values as Pulumi gives them).

    `provider_location` is `azure-native:location` when the stack sets it; it must agree with `location`.
    """
    decoded = {key: decode_value(value) for key, value in raw.items()}
    early = _version_problems(decoded) + location_problems(decoded, provider_location)
    try:
        config = StackConfig.model_validate(decoded)
    except ValidationError as exc:
        problems = [describe(e, namespace=PROJECT, root=StackConfig, hint=_hint) for e in exc.errors()]
    else:
        if early:
            raise ConfigError(early)
        return config
    problems += [p for p in early if p not in problems]
    # Field errors stop the model's own cross-field checks; run them on the raw values so they are not lost.
    problems += [p for p in key_source_problems(decoded) + private_mode_problems(decoded) if p not in problems]
    raise ConfigError(problems)


def read_project_config(all_config: dict[str, Any]) -> dict[str, Any]:
    """Picks this project's keys out of the engine's whole config map (`<namespace>:<key>` -> value)."""
    prefix = f"{PROJECT}:"
    return {key[len(prefix) :]: value for key, value in all_config.items() if key.startswith(prefix)}


def load_stack_config() -> StackConfig:
    """Builds the typed config of the running stack; raises ConfigError naming every bad key."""
    from pulumi.runtime import config as runtime_config

    all_config = {**runtime_config.get_config_env(), **runtime_config.CONFIG.get()}
    return parse_stack_config(
        read_project_config(all_config), provider_location=all_config.get("azure-native:location")
    )
