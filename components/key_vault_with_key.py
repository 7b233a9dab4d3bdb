"""KeyVaultWithKey: the Key Vault and the RSA key that encrypts the cluster's etcd, or an adopted key (BYOK)."""

from __future__ import annotations

import calendar
from dataclasses import dataclass, field
from datetime import date
from typing import Literal

import pulumi
from pulumi_azure_native import keyvault

from components.known_names import known_at_preview

# AKS KMS wraps and unwraps data encryption keys with exactly these two operations.
KMS_KEY_OPERATIONS = ["encrypt", "decrypt"]

# How the cluster's identity is granted the key: vault access policies, or Azure RBAC on the key.
PermissionModel = Literal["accessPolicy", "rbac"]
# How AKS reaches the KMS vault: over its public endpoint, or through a private endpoint AKS creates itself.
KeyVaultNetworkAccess = Literal["Public", "Private"]


@dataclass(frozen=True)
class VaultSpec:
    """The vault to create: its globally unique name, SKU, permission model and soft-delete retention."""

    name: str
    sku: Literal["standard", "premium"] = "standard"
    permission_model: PermissionModel = "rbac"
    soft_delete_retention_days: int = 90


@dataclass(frozen=True)
class RotationSpec:
    """Key Vault's automatic rotation: rotate after, expire after and notify before expiry, in days."""

    rotate_after_days: int
    expire_after_days: int
    notify_before_expiry_days: int = 30


@dataclass(frozen=True)
class KmsKeySpec:
    """The key to create. `version` pins the version the cluster uses (None: the version created first)."""

    name: str = "aks-kms"
    type: Literal["RSA", "RSA-HSM"] = "RSA"
    size: int = 2048
    expires_on: date | None = None
    rotation: RotationSpec | None = None
    version: str | None = None


@dataclass(frozen=True)
class ExistingKeySpec:
    """A key brought by its owner (BYOK): the versioned key id and where the key lives."""

    key_id: str
    key_name: str
    vault_resource_id: str
    vault_name: str
    vault_resource_group: str
    vault_uri: str
    permission_model: PermissionModel


@dataclass
class KeyVaultWithKeyArgs:
    """Either `vault` + `key` (a new vault and key) or `existing_key` (bring your own key).

    `network_access` Private closes a created vault to public traffic (AKS then reaches it through a private
    endpoint it creates); an adopted vault's network settings belong to its owner.
    """

    resource_group_name: pulumi.Input[str]
    location: str
    tenant_id: pulumi.Input[str]
    vault: VaultSpec | None = None
    key: KmsKeySpec | None = None
    existing_key: ExistingKeySpec | None = None
    network_access: KeyVaultNetworkAccess = "Public"
    protect: bool = True
    tags: dict[str, str] = field(default_factory=dict)


class KeyVaultWithKey(pulumi.ComponentResource):
    """A soft-delete, purge-protected vault and an RSA key fit for KMS; or an existing versioned key.

    Outputs for the next components: `key_id_with_version` (what AKS's `keyId` takes), `key_resource_id`
    (the RBAC scope of the grant), `vault_resource_id`, `vault_uri`, `vault_name`, `vault_resource_group_name`.
    `key` and `vault` are the created resources (None for BYOK) for anyone who must wait on them.
    """

    key_id_with_version: pulumi.Output[str]
    key_resource_id: pulumi.Output[str]
    vault_resource_id: pulumi.Output[str]
    vault_uri: pulumi.Output[str]
    vault_name: pulumi.Output[str]
    vault_resource_group_name: pulumi.Output[str]
    permission_model: PermissionModel
    vault: keyvault.Vault | None
    key: keyvault.Key | None

    def __init__(self, name: str, args: KeyVaultWithKeyArgs, opts: pulumi.ResourceOptions | None = None) -> None:
        super().__init__("kms-aks:index:KeyVaultWithKey", name, None, opts)
        if args.existing_key is not None:
            self._adopt(args.existing_key)
        elif args.vault is not None and args.key is not None:
            self._create(name, args, args.vault, args.key)
        else:
            raise ValueError("KeyVaultWithKeyArgs needs existing_key, or both vault and key")

        self.register_outputs(
            {
                "keyIdWithVersion": self.key_id_with_version,
                "keyResourceId": self.key_resource_id,
                "vaultResourceId": self.vault_resource_id,
                "vaultUri": self.vault_uri,
            }
        )

    def _adopt(self, existing: ExistingKeySpec) -> None:
        self.vault = None
        self.key = None
        self.permission_model = existing.permission_model
        self.key_id_with_version = pulumi.Output.from_input(existing.key_id)
        self.vault_resource_id = pulumi.Output.from_input(existing.vault_resource_id)
        self.key_resource_id = pulumi.Output.from_input(f"{existing.vault_resource_id}/keys/{existing.key_name}")
        self.vault_uri = pulumi.Output.from_input(existing.vault_uri)
        self.vault_name = pulumi.Output.from_input(existing.vault_name)
        self.vault_resource_group_name = pulumi.Output.from_input(existing.vault_resource_group)

    def _create(self, name: str, args: KeyVaultWithKeyArgs, vault: VaultSpec, key: KmsKeySpec) -> None:
        self.permission_model = vault.permission_model
        # Losing the vault or the key makes every secret in etcd unreadable: both are protected.
        protected = pulumi.ResourceOptions(parent=self, protect=args.protect)
        public_network_access, network_acls = _network_settings(args.network_access)
        self.vault = keyvault.Vault(
            f"{name}-vault",
            vault_name=vault.name,
            resource_group_name=args.resource_group_name,
            location=args.location,
            properties=keyvault.VaultPropertiesArgs(
                tenant_id=args.tenant_id,
                sku=keyvault.SkuArgs(family="A", name=vault.sku),
                enable_soft_delete=True,
                soft_delete_retention_in_days=vault.soft_delete_retention_days,
                enable_purge_protection=True,
                enable_rbac_authorization=vault.permission_model == "rbac",
                public_network_access=public_network_access,
                network_acls=network_acls,
                # No inline access policies: grants are separate AccessPolicy resources, and mixing the two
                # makes every vault update wipe them.
            ),
            tags=args.tags,
            opts=protected,
        )
        self.key = keyvault.Key(
            f"{name}-key",
            key_name=key.name,
            # The vault's literal name, known at preview (where the policy pack decides), created after the vault.
            vault_name=known_at_preview(self.vault, vault.name),
            resource_group_name=args.resource_group_name,
            properties=keyvault.KeyPropertiesArgs(
                kty=key.type,
                key_size=key.size,
                key_ops=KMS_KEY_OPERATIONS,
                attributes=keyvault.KeyAttributesArgs(enabled=True, expires=_unix_time(key)),
                rotation_policy=_rotation_policy(key),
            ),
            tags=args.tags,
            opts=protected,
        )
        self.vault_resource_id = self.vault.id
        self.vault_name = known_at_preview(self.vault, vault.name)
        self.vault_uri = self.vault.properties.apply(lambda p: p.vault_uri if p else None)
        self.vault_resource_group_name = pulumi.Output.from_input(args.resource_group_name)
        self.key_resource_id = self.key.id
        self.key_id_with_version = (
            # A pinned version never moves by itself: an automatic rotation or a refresh cannot switch
            # the cluster to a new key version behind the operator's back.
            pulumi.Output.concat(self.key.key_uri, "/", key.version) if key.version else self.key.key_uri_with_version
        )


def _network_settings(access: KeyVaultNetworkAccess) -> tuple[str, keyvault.NetworkRuleSetArgs]:
    """(publicNetworkAccess, networkAcls) of a created vault for how AKS reaches it."""
    if access == "Private":
        # Only the private endpoint AKS creates reaches the vault. Trusted Azure services keep their bypass:
        # the key and its rotation policy are still written through ARM by the Key Vault resource provider.
        return "Disabled", keyvault.NetworkRuleSetArgs(bypass="AzureServices", default_action="Deny")
    # KMS with a public vault: private link and the "selected networks" firewall are unsupported.
    return "Enabled", keyvault.NetworkRuleSetArgs(bypass="AzureServices", default_action="Allow")


def _unix_time(key: KmsKeySpec) -> int | None:
    if key.expires_on is None:
        return None
    return calendar.timegm(key.expires_on.timetuple())


def _rotation_policy(key: KmsKeySpec) -> keyvault.RotationPolicyArgs | None:
    if key.rotation is None:
        return None
    rotation = key.rotation
    return keyvault.RotationPolicyArgs(
        attributes=keyvault.KeyRotationPolicyAttributesArgs(expiry_time=f"P{rotation.expire_after_days}D"),
        lifetime_actions=[
            keyvault.LifetimeActionArgs(
                action=keyvault.ActionArgs(type="rotate"),
                trigger=keyvault.TriggerArgs(time_after_create=f"P{rotation.rotate_after_days}D"),
            ),
            keyvault.LifetimeActionArgs(
                action=keyvault.ActionArgs(type="notify"),
                trigger=keyvault.TriggerArgs(time_before_expiry=f"P{rotation.notify_before_expiry_days}D"),
            ),
        ],
    )
