"""Plan guard (`kms-aks guard`): refuses a `pulumi preview --json` plan that can cut a cluster off its KMS key.

The preview model lives in `kms_aks_tools.preview`; the KMS closure in `azure_facts.kms_closure` (shared with the
policy pack); the rules and overrides in `core.py`; the command (options, rendering, exit status) is
`kms_aks_tools.commands.guard`. This module names the public API.
"""

from kms_aks_tools.guard.core import *  # noqa: F403  (the package's public names, as before the split)
from kms_aks_tools.preview.model import BadInput, Preview, load_preview, split_property_path, type_from_urn

__all__ = ["BadInput", "Preview", "load_preview", "split_property_path", "type_from_urn"]
