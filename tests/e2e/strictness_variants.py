"""A test-only entry point: the real program, with one resource transform chosen by KMS_AKS_E2E_VARIANT.

The e2e copies it into a variant workspace (`main: strictness_variants.py`) to prove, under the real CLI, that the
Azure stand-in refuses what azure-native and Azure refuse:
- `no-grant-wait`: the cluster no longer depends on the grant-propagation wait (it still waits for the identity and
  the key through its inputs), so AKS sees the identity's grant before it has taken effect;
- `bad-vault-name`: the vault's name breaks keyvault.json's pattern, which azure-native's Check refuses.
"""

import os
import runpy

import pulumi

VARIANT = os.environ["KMS_AKS_E2E_VARIANT"]


def no_grant_wait(args: pulumi.ResourceTransformArgs) -> pulumi.ResourceTransformResult | None:
    if args.type_ != "azure-native:containerservice:ManagedCluster":
        return None
    opts = pulumi.ResourceOptions.merge(args.opts, pulumi.ResourceOptions())
    opts.depends_on = []
    return pulumi.ResourceTransformResult(args.props, opts)


def bad_vault_name(args: pulumi.ResourceTransformArgs) -> pulumi.ResourceTransformResult | None:
    if args.type_ != "azure-native:keyvault:Vault":
        return None
    # A transform sees the engine's property names (camelCase), not the SDK's keyword arguments.
    return pulumi.ResourceTransformResult({**args.props, "vaultName": "kv_not_allowed"}, args.opts)


TRANSFORMS = {"no-grant-wait": no_grant_wait, "bad-vault-name": bad_vault_name}
pulumi.runtime.register_resource_transform(TRANSFORMS[VARIANT])
runpy.run_path("__main__.py", run_name="__main__")
