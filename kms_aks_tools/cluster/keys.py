"""The stack's pinned key, and where its re-encryption records live.

The key id spellings (versioned key URL, plugin key id, metric label) and the rule for comparing key ids are
`azure_facts.key_ids`'; this module applies them to a stack's config.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

from azure_facts.key_ids import NotAVersionedKeyId, canonical_key_url, metric_key_id_hash, plugin_key_id
from kms_aks.config.base import ConfigError
from kms_aks.config.stack import StackConfig
from kms_aks_tools.cli.exits import UserError
from kms_aks_tools.cluster.reencryption_records import records_path
from kms_aks_tools.project.stack_config import stack_config_from_file
from kms_aks_tools.project.stack_file import (
    PACKAGE_ROOT,
    ProjectNotFoundError,
    StackFileError,
    find_project,
    stack_names,
)


class StackKeyError(UserError, ValueError):
    """A stack whose key cannot be known: one message naming what is wrong and what to do (exit 2)."""


__all__ = ["StackKey", "StackKeyError", "load_stack_key", "pinned_key_id"]


@dataclass(frozen=True)
class StackKey:
    """What the stack says about the key its cluster uses, and where its re-encryption records live."""

    stack: str
    key_id: str | None  # the versioned key URL the stack pins, or --key-id's; None when neither names one
    records_file: Path
    unpinned_reason: str | None = None
    cluster_name: str | None = None  # kms-aks:cluster.name: the name a re-encryption record carries
    given: bool = False  # key_id came from --key-id: the stack pins no version, or pins another one (pinned_next)
    pinned_next: str | None = None  # the version the stack pins when --key-id names another (a rotation not applied)

    @property
    def source(self) -> str:
        """Where key_id comes from, as the tools label it."""
        if not self.given:
            return "pinned by the stack"
        if self.pinned_next:
            return f"given by --key-id (the stack pins {self.pinned_next}, not applied yet)"
        return "given by --key-id (the stack pins no version)"

    @property
    def key_id_option(self) -> str:
        """The `--key-id URL` a command on this stack needs again (empty for a pinned stack)."""
        return f" --key-id {self.key_id}" if self.given and self.key_id else ""

    @property
    def plugin_key_id(self) -> str | None:
        return plugin_key_id(self.key_id) if self.key_id else None

    @property
    def metric_hash(self) -> str | None:
        return metric_key_id_hash(self.plugin_key_id) if self.key_id else None


def pinned_key_id(config: StackConfig) -> str | None:
    """The versioned key URL the cluster uses, where the stack's config pins it (docs/rotation.md's table).

    A bring-your-own key is its `existingKey.keyId`. A created key is pinned by `kmsKey.version`, in the stack's
    vault (`keyVault.name`) under `kmsKey.name`; its vault is in Azure's public cloud, as the program creates it.
    Without `kmsKey.version` the cluster keeps the version it was created with, which only Azure knows.
    """
    if config.existing_key is not None:
        return canonical_key_url(config.existing_key.key_id)
    if config.kms_key is not None and config.kms_key.version and config.key_vault is not None:
        return f"https://{config.key_vault.name}.vault.azure.net/keys/{config.kms_key.name}/{config.kms_key.version}"
    return None


def stack_project(stack: str, cwd: Path | None) -> Path:
    """The project a stack name belongs to: the nearest Pulumi.yaml from `cwd` (default: the working directory)
    upward, as `pulumi` finds it, so records go to that project's `rotations/`; a stack file's path needs none."""
    if stack.endswith((".yaml", ".yml")):
        return PACKAGE_ROOT
    try:
        return find_project(cwd or Path.cwd())
    except ProjectNotFoundError as error:
        raise StackKeyError(str(error)) from None


def load_stack_key(stack: str, *, key_id: str | None = None, root: Path = PACKAGE_ROOT) -> StackKey:
    """The stack's key (a stack name, or a path to a `Pulumi.<stack>.yaml`); `--key-id` names the key the cluster
    uses when the stack pins none, or pins the next one already (its rotation not applied yet).

    Records live in `rotations/<stack>.yaml` beside the stack file: the project's `rotations/` for a shipped stack.
    """
    is_path = stack.endswith((".yaml", ".yml"))
    if not is_path and stack not in stack_names(root):
        raise StackKeyError(f"unknown stack {stack!r}; stacks: {', '.join(stack_names(root)) or 'none'}")
    try:
        config = stack_config_from_file(stack, root)
    except (FileNotFoundError, StackFileError, ConfigError, ValueError) as error:
        raise StackKeyError(str(error)) from None
    path = Path(stack) if is_path else root / f"Pulumi.{stack}.yaml"
    name = path.name.removeprefix("Pulumi.").rsplit(".", 1)[0]
    records_file = records_path(path.resolve().parent, name)
    try:
        pinned = pinned_key_id(config)
    except NotAVersionedKeyId as error:
        raise StackKeyError(str(error)) from None
    if key_id is not None:
        try:
            given = canonical_key_url(key_id)
        except NotAVersionedKeyId as error:
            raise StackKeyError(str(error)) from None
        if pinned is not None and plugin_key_id(given) == plugin_key_id(pinned):
            return StackKey(stack=name, key_id=pinned, records_file=records_file, cluster_name=config.cluster.name)
        # The stack pins none, or already pins the next version (a rotation's pull request, not applied yet):
        # --key-id names the key the cluster uses now, which the tools then check against the API server's.
        return StackKey(
            stack=name,
            key_id=given,
            records_file=records_file,
            given=True,
            pinned_next=pinned,
            cluster_name=config.cluster.name,
        )
    if pinned is None:
        return StackKey(
            stack=name,
            key_id=None,
            records_file=records_file,
            cluster_name=config.cluster.name,
            unpinned_reason=(
                f"stack {name} pins no key version (kms-aks:kmsKey.version is not set), so the key its cluster "
                "uses is known only to Azure: pin it (docs/rotation.md, step 2) or pass --key-id with the value of "
                "`az aks show -g <group> -n <cluster> --query securityProfile.azureKeyVaultKms.keyId`"
            ),
        )
    return StackKey(stack=name, key_id=pinned, records_file=records_file, cluster_name=config.cluster.name)
