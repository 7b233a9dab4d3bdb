"""KmsIdentity: the cluster's user-assigned identity, granted exactly encrypt + decrypt on the KMS key."""

from __future__ import annotations

from dataclasses import dataclass, field

import pulumi
from pulumi_azure_native import authorization, keyvault, managedidentity

from kms_aks.config import PermissionModel

KEY_VAULT_CRYPTO_USER_ROLE = "12338af0-0e69-4776-bea7-57ae8d297424"
KMS_KEY_PERMISSIONS = ["encrypt", "decrypt"]


@dataclass
class KmsIdentityArgs:
    """Where the identity lives and which key it may use.

    Access-policy mode grants on the vault (`key_vault_name` in `key_vault_resource_group_name`);
    RBAC mode grants "Key Vault Crypto User" at `key_resource_id`, the least privilege scope.
    """

    identity_name: str
    resource_group_name: pulumi.Input[str]
    location: str
    tenant_id: pulumi.Input[str]
    subscription_id: pulumi.Input[str]
    permission_model: PermissionModel
    key_vault_name: pulumi.Input[str]
    key_vault_resource_group_name: pulumi.Input[str]
    key_resource_id: pulumi.Input[str]
    protect: bool = True
    tags: dict[str, str] = field(default_factory=dict)


class KmsIdentity(pulumi.ComponentResource):
    """A user-assigned managed identity and its KMS grant.

    KMS cannot use a system-assigned identity: it would not exist before the cluster that needs the key.
    `grants` are what the cluster must wait for: AKS checks the identity's key permission at create time.
    """

    identity: managedidentity.UserAssignedIdentity
    identity_resource_id: pulumi.Output[str]
    principal_id: pulumi.Output[str]
    client_id: pulumi.Output[str]
    grants: list[pulumi.CustomResource]

    def __init__(self, name: str, args: KmsIdentityArgs, opts: pulumi.ResourceOptions | None = None) -> None:
        super().__init__("kms-aks:index:KmsIdentity", name, None, opts)
        # Deleting the identity cuts the cluster off from its key, like deleting the key itself.
        self.identity = managedidentity.UserAssignedIdentity(
            f"{name}-identity",
            resource_name_=args.identity_name,
            resource_group_name=args.resource_group_name,
            location=args.location,
            tags=args.tags,
            opts=pulumi.ResourceOptions(parent=self, protect=args.protect),
        )
        self.identity_resource_id = self.identity.id
        self.principal_id = self.identity.principal_id
        self.client_id = self.identity.client_id
        self.grants = [self._kms_grant(name, args)]

        self.register_outputs(
            {
                "identityResourceId": self.identity_resource_id,
                "principalId": self.principal_id,
                "clientId": self.client_id,
            }
        )

    def _kms_grant(self, name: str, args: KmsIdentityArgs) -> pulumi.CustomResource:
        child = pulumi.ResourceOptions(parent=self)
        if args.permission_model == "accessPolicy":
            return keyvault.AccessPolicy(
                f"{name}-access-policy",
                resource_group_name=args.key_vault_resource_group_name,
                vault_name=args.key_vault_name,
                policy=keyvault.AccessPolicyEntryArgs(
                    tenant_id=args.tenant_id,
                    object_id=self.principal_id,
                    permissions=keyvault.PermissionsArgs(keys=KMS_KEY_PERMISSIONS),
                ),
                opts=child,
            )
        return authorization.RoleAssignment(
            f"{name}-crypto-user",
            principal_id=self.principal_id,
            principal_type="ServicePrincipal",
            role_definition_id=role_definition_id(args.subscription_id, KEY_VAULT_CRYPTO_USER_ROLE),
            scope=args.key_resource_id,
            opts=child,
        )


def role_definition_id(subscription_id: pulumi.Input[str], role_guid: str) -> pulumi.Output[str]:
    return pulumi.Output.concat(
        "/subscriptions/", subscription_id, "/providers/Microsoft.Authorization/roleDefinitions/", role_guid
    )
