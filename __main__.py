"""kms-aks: an AKS cluster whose Kubernetes secrets in etcd are encrypted with a key the team owns.

Wiring, in dependency order:
    resource group
      -> KmsNetwork (VNet -> API server subnet -> node subnet)       [private key vault mode only]
      -> KeyVaultWithKey (vault -> key)          and  KmsIdentity (user-assigned identity)
      -> KmsIdentity's grants (encrypt + decrypt on that key; with a private vault also Key Vault
         Contributor on the vault and Network Contributor on both subnets)
      -> KmsAksCluster (waits for every grant; keyId from the key; in private mode VNet-integrated)
"""

import pulumi
from pulumi_azure_native import authorization, resources

from components import (
    KeyVaultWithKey,
    KeyVaultWithKeyArgs,
    KmsAksCluster,
    KmsAksClusterArgs,
    KmsIdentity,
    KmsIdentityArgs,
    KmsNetwork,
    KmsNetworkArgs,
    PrivateKmsArgs,
)
from kms_aks.config import ConfigError, load_stack_config
from kms_aks.warnings import config_warnings

try:
    config = load_stack_config()
except ConfigError as error:
    # RunError ends the program with this message alone: a config mistake is not a crash.
    raise pulumi.RunError(str(error)) from None

for warning in config_warnings(config):
    pulumi.log.warn(warning)

stack = pulumi.get_stack()
tags = {"project": "kms-aks", "stack": stack, **config.tags}
client = authorization.get_client_config_output()

resource_group = resources.ResourceGroup(
    "rg",
    resource_group_name=config.resource_group_name or f"rg-kms-aks-{stack}",
    location=config.location,
    tags=tags,
)

# A private KMS vault is reached from the API server, so the cluster gets a VNet for API server VNet integration.
kms_network = (
    KmsNetwork(
        "kms",
        KmsNetworkArgs(
            network=config.network,
            vnet_name=f"vnet-{config.cluster.name}",
            resource_group_name=resource_group.name,
            location=config.location,
            tags=tags,
        ),
    )
    if config.private_key_vault and config.network is not None
    else None
)

kms_key = KeyVaultWithKey(
    "kms",
    KeyVaultWithKeyArgs(
        resource_group_name=resource_group.name,
        location=config.location,
        tenant_id=client.tenant_id,
        vault=config.key_vault,
        key=config.kms_key,
        existing_key=config.existing_key,
        network_access=config.key_vault_network_access,
        protect=config.protect_kms_resources,
        tags=tags,
    ),
)

# With a private vault the identity needs more grants and the cluster joins the network: both see the same facts.
private_kms = (
    PrivateKmsArgs(
        key_vault_resource_id=kms_key.vault_resource_id,
        api_server_subnet_id=kms_network.api_server_subnet_id,
        node_subnet_id=kms_network.node_subnet_id,
    )
    if kms_network is not None
    else None
)

kms_identity = KmsIdentity(
    "kms",
    KmsIdentityArgs(
        identity_name=f"id-{config.cluster.name}-kms",
        resource_group_name=resource_group.name,
        location=config.location,
        tenant_id=client.tenant_id,
        subscription_id=client.subscription_id,
        permission_model=config.permission_model,
        # The grant's inputs carry their dependencies: on the vault (access policy) or the key (RBAC scope).
        key_vault_name=kms_key.vault_name,
        key_vault_resource_group_name=kms_key.vault_resource_group_name,
        key_resource_id=kms_key.key_resource_id,
        private_kms=private_kms,
        protect=config.protect_kms_resources,
        tags=tags,
    ),
)

aks = KmsAksCluster(
    "aks",
    KmsAksClusterArgs(
        cluster=config.cluster,
        resource_group_name=resource_group.name,
        location=config.location,
        tenant_id=client.tenant_id,
        identity_resource_id=kms_identity.identity_resource_id,
        kms_key_id=kms_key.key_id_with_version,
        kms_grants=kms_identity.grants,
        kms_key_version_pinned=config.kms_key_version_pinned,
        private_kms=private_kms,
        admin_group_owner_object_id=client.object_id,
        tags=tags,
    ),
    # The key must exist and the identity must hold every grant before AKS validates KMS at create time.
    opts=pulumi.ResourceOptions(depends_on=kms_identity.grants),
)

pulumi.export("resourceGroupName", resource_group.name)
pulumi.export("clusterName", aks.cluster_name)
pulumi.export("clusterResourceId", aks.cluster_resource_id)
pulumi.export("oidcIssuerUrl", aks.oidc_issuer_url)
pulumi.export("kmsKeyId", kms_key.key_id_with_version)
pulumi.export("kmsKeyResourceId", kms_key.key_resource_id)
pulumi.export("keyVaultResourceId", kms_key.vault_resource_id)
pulumi.export("keyVaultUri", kms_key.vault_uri)
pulumi.export("kmsIdentityResourceId", kms_identity.identity_resource_id)
pulumi.export("kmsIdentityPrincipalId", kms_identity.principal_id)
pulumi.export("kmsIdentityClientId", kms_identity.client_id)
pulumi.export("adminGroupObjectIds", aks.admin_group_object_ids)
if kms_network is not None:
    pulumi.export("vnetId", kms_network.vnet_id)
    pulumi.export("apiServerSubnetId", kms_network.api_server_subnet_id)
    pulumi.export("nodeSubnetId", kms_network.node_subnet_id)
