"""A test-only entry point: the real program, with a transform that gives the cluster a system-assigned identity.

The e2e copies it into a variant workspace (`main: system_assigned.py`) to prove that the real CLI blocks it.
"""

import runpy

import pulumi


def system_assigned(args: pulumi.ResourceTransformArgs) -> pulumi.ResourceTransformResult | None:
    if args.type_ != "azure-native:containerservice:ManagedCluster":
        return None
    return pulumi.ResourceTransformResult({**args.props, "identity": {"type": "SystemAssigned"}}, args.opts)


pulumi.runtime.register_resource_transform(system_assigned)
runpy.run_path("__main__.py", run_name="__main__")
