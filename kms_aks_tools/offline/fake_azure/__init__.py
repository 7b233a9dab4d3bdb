"""The fake Azure the mock engine and the Azure stand-in share: how each provider answers a create, by plain type.

One table (`BUILDERS`), written out, not registered by import side effects: the program's types
(`resources`), Azure Kubernetes Fleet Manager's and the engine's StackReference (`fleet`), and the invokes
answered from outside the mocks (`CALLS`). `ids` is who the fake Azure deploys as, `base` what every builder
shares.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

from pulumi.runtime import mocks as pulumi_mocks

from kms_aks_tools.offline.fake_azure import fleet, resources
from kms_aks_tools.offline.fake_azure.base import Mocks, answered_as

# (mocks, the registration, its inputs) -> (ARM id, outputs in camelCase)
Builder = Callable[[Mocks, pulumi_mocks.MockResourceArgs, dict[str, Any]], tuple[str, dict[str, Any]]]

BUILDERS: dict[str, Builder] = {**resources.BUILDERS, **fleet.BUILDERS}
CALLS: dict[str, Callable[[Mocks, pulumi_mocks.MockCallArgs], Any]] = dict(fleet.CALLS)
generic_arm = resources.generic_arm

__all__ = ["BUILDERS", "CALLS", "Builder", "Mocks", "answered_as", "generic_arm"]
