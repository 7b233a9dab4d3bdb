"""A test-only entry point: the real program after a user moved every resource to its group's literal name and
dropped the group from the program: the resource group is no longer declared, so the engine deletes it, while the
vault, key, identity and cluster (which name the same group) stay unchanged.

The e2e copies it into a workspace (`main: literal_group.py`) to show that the guard refuses the group's deletion:
Azure deletes everything in a deleted group, and `protect` on the resources in it does not stop that.
"""

import runpy
from typing import Any

import pulumi
from pulumi_azure_native import resources


class GroupByLiteralName:
    """What the program now passes instead of a declared group: only its name, as a plain string. `urn` is there
    because the program hands the group's name on through `known_at_preview` (the name once the group is
    registered); with no group, nothing is waited for."""

    def __init__(self, resource_name: str, *, resource_group_name: str, **_: Any) -> None:
        self.name = pulumi.Output.from_input(resource_group_name)
        self.urn = pulumi.Output.from_input(f"literal:{resource_group_name}")


resources.ResourceGroup = GroupByLiteralName  # type: ignore[misc,assignment]
runpy.run_path("__main__.py", run_name="__main__")
