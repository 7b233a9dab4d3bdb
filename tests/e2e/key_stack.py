"""A test-only entry point: a key stack without the cluster. It holds the vault and key (the project's own
KeyVaultWithKey), the KMS identity and its access policy on the key; a cluster in another stack uses them. With
`kms-aks:kmsGrant: false` in the stack config the program no longer declares the grant, as a user's PR that drops
it would.

The e2e copies it into a workspace (`main: key_stack.py`): nothing in such a preview ties the grant to a cluster,
so the guard must assume one elsewhere uses it (`kms-aks:keyServesExternalCluster`, docs/ci-and-state.md).
"""

import pulumi
from pulumi_azure_native import authorization, keyvault, managedidentity, resources

from components import KeyVaultWithKey, KeyVaultWithKeyArgs, KmsKeySpec, VaultSpec

LOCATION = "westeurope"
config = pulumi.Config("kms-aks")
client = authorization.get_client_config_output()
# ARM tags on the group: the harmless change the e2e makes. (Tagging the identity instead, the stand-in's preview
# showed its principal unknown, so the grant's objectId was unknown and the grant a replacement: refused.)
tags = {"team": config.get("team") or "platform"}
group = resources.ResourceGroup("rg", resource_group_name="rg-kms-aks-keys", location=LOCATION, tags=tags)
kms_key = KeyVaultWithKey(
    "kms",
    KeyVaultWithKeyArgs(
        resource_group_name=group.name,
        location=LOCATION,
        tenant_id=client.tenant_id,
        vault=VaultSpec(name="kv-kmsaks-keys-01", permission_model="accessPolicy", soft_delete_retention_days=7),
        key=KmsKeySpec(name="aks-kms-shared"),
        protect=False,
    ),
)
identity = managedidentity.UserAssignedIdentity(
    "kms-identity", resource_name_="id-aks-kms-shared", resource_group_name=group.name, location=LOCATION
)
if config.get_bool("kmsGrant") is not False:
    keyvault.AccessPolicy(
        "kms-access-policy",
        resource_group_name=kms_key.vault_resource_group_name,
        vault_name=kms_key.vault_name,
        policy=keyvault.AccessPolicyEntryArgs(
            tenant_id=client.tenant_id,
            object_id=identity.principal_id,
            permissions=keyvault.PermissionsArgs(keys=["encrypt", "decrypt"]),
        ),
    )
pulumi.export("kmsKeyId", kms_key.key_id_with_version)
pulumi.export("kmsIdentityResourceId", identity.id)
