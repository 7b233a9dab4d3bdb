"""Key ids as the stack, the Azure KMS plugin and the API server's metrics write them, and the stack's pinned key.

Three spellings of one key version:

- the **versioned key URL** the stack pins (`https://<vault>.vault.azure.net/keys/<name>/<version>`), the
  `keyId` of `securityProfile.azureKeyVaultKms`;
- the **plugin key id**: what the Azure KMS plugin returns from its Status call and writes into every
  envelope in etcd (`EncryptedObject.keyID`). The plugin computes it as the sha256 (hex) of the vault URL
  resolved against `keys/<name>/<version>` (`getKeyIDHash` in Azure/kubernetes-kms, pkg/plugin/keyvault.go:
  `fmt.Sprintf("%x", sha256.Sum256(...))`);
- the **metric label**: the API server never exports a key id itself, only `sha256:<hex of sha256(key id)>`
  in the `key_id_hash` label of `apiserver_envelope_encryption_key_id_hash_*` (`getHash` in
  k8s.io/apiserver pkg/storage/value/encrypt/envelope/metrics/metrics.go, v0.34.4).
"""

from __future__ import annotations

import hashlib
from dataclasses import dataclass
from pathlib import Path

from azure_facts import VERSIONED_KEY_ID
from kms_aks.config import ConfigError, StackConfig, parse_stack_config, read_project_config
from kms_aks_tools.cluster.records import records_path
from kms_aks_tools.project.stack_file import (
    PACKAGE_ROOT,
    ProjectNotFoundError,
    StackFileError,
    find_project,
    load_stack_file,
    stack_names,
)


class StackKeyError(ValueError):
    """A stack whose key cannot be known: one message naming what is wrong and what to do (exit 2)."""


def canonical_key_url(versioned_key_url: str) -> str:
    """The URL as the Azure plugin rebuilds it: `https://<host>/keys/<name>/<version>`, no port 443, no slash."""
    match = VERSIONED_KEY_ID.match(versioned_key_url.strip())
    if match is None:
        raise StackKeyError(
            f"{versioned_key_url!r} is not a versioned Key Vault key id; expected "
            "https://<vault>.vault.azure.net/keys/<name>/<32-hex version>"
        )
    return f"https://{match['vault']}.{match['suffix']}/keys/{match['name']}/{match['version']}"


def plugin_key_id(versioned_key_url: str) -> str:
    """The key id the Azure KMS plugin reports for this key version (and that each envelope in etcd carries);
    `metric_key_id_hash` of it is the API server's metric label."""
    return hashlib.sha256(canonical_key_url(versioned_key_url).encode()).hexdigest()


def metric_key_id_hash(key_id: str) -> str:
    """The `key_id_hash` label kube-apiserver's envelope metrics give a key id: `sha256:<hex>`."""
    return "sha256:" + hashlib.sha256(key_id.encode()).hexdigest()


__all__ = ["StackKey", "StackKeyError", "canonical_key_url", "load_stack_key", "metric_key_id_hash", "plugin_key_id"]


@dataclass(frozen=True)
class StackKey:
    """What the stack says about the key its cluster uses, and where its re-encryption records live."""

    stack: str
    key_id: str | None  # the versioned key URL the stack pins, or --key-id's; None when neither names one
    records_file: Path
    unpinned_reason: str | None = None
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
        raw = load_stack_file(stack, root)
        config = parse_stack_config(read_project_config(raw), provider_location=raw.get("azure-native:location"))
    except (FileNotFoundError, StackFileError, ConfigError, ValueError) as error:
        raise StackKeyError(str(error)) from None
    path = Path(stack) if is_path else root / f"Pulumi.{stack}.yaml"
    name = path.name.removeprefix("Pulumi.").rsplit(".", 1)[0]
    records_file = records_path(path.resolve().parent, name)
    pinned = pinned_key_id(config)
    if key_id is not None:
        given = canonical_key_url(key_id)
        if pinned is not None and plugin_key_id(given) == plugin_key_id(pinned):
            return StackKey(stack=name, key_id=pinned, records_file=records_file)
        # The stack pins none, or already pins the next version (a rotation's pull request, not applied yet):
        # --key-id names the key the cluster uses now, which the tools then check against the API server's.
        return StackKey(stack=name, key_id=given, records_file=records_file, given=True, pinned_next=pinned)
    if pinned is None:
        return StackKey(
            stack=name,
            key_id=None,
            records_file=records_file,
            unpinned_reason=(
                f"stack {name} pins no key version (kms-aks:kmsKey.version is not set), so the key its cluster "
                "uses is known only to Azure: pin it (docs/rotation.md, step 2) or pass --key-id with the value of "
                "`az aks show -g <group> -n <cluster> --query securityProfile.azureKeyVaultKms.keyId`"
            ),
        )
    return StackKey(stack=name, key_id=pinned, records_file=records_file)
