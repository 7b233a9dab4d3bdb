"""KmsIdentity: the cluster's user-assigned identity, granted exactly encrypt + decrypt on the KMS key.

With a private KMS vault it also holds what AKS then does in the identity's name: Key Vault Contributor on the
vault (AKS creates the vault's private endpoint) and Network Contributor on the subnets it joins.
"""

from __future__ import annotations

from dataclasses import dataclass, field

import pulumi
import pulumiverse_time as time
from pulumi_azure_native import authorization, keyvault, managedidentity

# Role ids come from azure_facts (one place, checked against Microsoft's docs). Key Vault Contributor: AKS
# creates and approves the private endpoint to a private KMS vault with it. Network Contributor: AKS, acting as a
# user-assigned control-plane identity, joins the node subnet and places the API server's internal load balancer
# in the delegated subnet; in a VNet the cluster does not own, creation fails with LinkedAuthorizationFailed
# without it.
from azure_facts import KEY_VAULT_CONTRIBUTOR_ROLE, KEY_VAULT_CRYPTO_USER_ROLE, NETWORK_CONTRIBUTOR_ROLE
from components.key_vault_with_key import PermissionModel
from components.kms_network import PrivateKmsArgs

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
    private_kms: PrivateKmsArgs | None = None
    # A grant that exists is not yet effective: AKS's create-time check of the identity's key permission fails
    # intermittently (AzureKeyVaultKmsValidateIdentityPermissionCustomerError) while it propagates
    # (MicrosoftDocs/azure-docs#98954). Azure/AKS-Construction waits 30 s after its role assignments for the
    # same reason. 0 waits for nothing: the cluster then waits only for the grants to exist.
    propagation_wait_seconds: int = 30
    protect: bool = True
    tags: dict[str, str] = field(default_factory=dict)


class KmsIdentity(pulumi.ComponentResource):
    """A user-assigned managed identity and its KMS grant.

    KMS cannot use a system-assigned identity: it would not exist before the cluster that needs the key.
    `ready` is what the cluster must wait for: AKS checks the identity's key permission at create time, and
    with a private vault it acts on the vault and the subnets as this identity while creating the cluster; a
    propagation wait after every grant (`propagation_wait`) gives Azure RBAC time to make them effective.
    """

    identity: managedidentity.UserAssignedIdentity
    identity_resource_id: pulumi.Output[str]
    principal_id: pulumi.Output[str]
    client_id: pulumi.Output[str]
    grants: list[pulumi.CustomResource]
    propagation_wait: time.Sleep | None
    ready: list[pulumi.Resource]

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
        if args.private_kms is not None:
            self.grants.extend(self._private_vault_grants(name, args, args.private_kms))
        self.propagation_wait = None
        if args.propagation_wait_seconds > 0:
            self.propagation_wait = time.Sleep(
                f"{name}-grant-propagation",
                create_duration=f"{args.propagation_wait_seconds}s",
                # A new identity (new principal) has new grants to wait for.
                triggers={"principalId": self.principal_id},
                opts=pulumi.ResourceOptions(parent=self, depends_on=self.grants),
            )
        # What a consumer of the grants waits for: the wait (after every grant), or the grants themselves.
        self.ready = [self.propagation_wait] if self.propagation_wait is not None else list(self.grants)

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
        return self._role_assignment(f"{name}-crypto-user", args, KEY_VAULT_CRYPTO_USER_ROLE, args.key_resource_id)

    def _private_vault_grants(
        self, name: str, args: KmsIdentityArgs, private: PrivateKmsArgs
    ) -> list[pulumi.CustomResource]:
        # Network Contributor is scoped to each subnet AKS joins, not to the whole VNet.
        subnets = {"apiserver": private.api_server_subnet_id, "nodes": private.node_subnet_id}
        return [
            self._role_assignment(
                f"{name}-kv-contributor", args, KEY_VAULT_CONTRIBUTOR_ROLE, private.key_vault_resource_id
            ),
            *(
                self._role_assignment(f"{name}-network-contributor-{subnet}", args, NETWORK_CONTRIBUTOR_ROLE, subnet_id)
                for subnet, subnet_id in subnets.items()
            ),
        ]

    def _role_assignment(
        self, resource_name: str, args: KmsIdentityArgs, role_guid: str, scope: pulumi.Input[str]
    ) -> authorization.RoleAssignment:
        return authorization.RoleAssignment(
            resource_name,
            principal_id=self.principal_id,
            principal_type="ServicePrincipal",
            role_definition_id=role_definition_id(args.subscription_id, role_guid),
            scope=scope,
            opts=pulumi.ResourceOptions(parent=self),
        )


def role_definition_id(subscription_id: pulumi.Input[str], role_guid: str) -> pulumi.Output[str]:
    return pulumi.Output.concat(
        "/subscriptions/", subscription_id, "/providers/Microsoft.Authorization/roleDefinitions/", role_guid
    )
