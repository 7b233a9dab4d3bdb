"""Re-encryption records: `rotations/<stack>.yaml`, written by `kms-aks reencrypt`, reviewed and committed.

A record says: on this date, every Secret of the cluster was rewritten while the API server used this key, so
no Secret is still stored under an older one. The guard's rotation gate reads the records: a key change is
allowed only away from a key that has a complete record, because AKS keeps just two key slots (current and
previous) and a second rotation drops the previous key, with every Secret still under it.

The file is small, append-only and meant for humans as much as for the gate::

    # kms-aks re-encryption records for stack dev. Written by `kms-aks reencrypt`; commit this file.
    stack: dev
    records:
    - keyId: https://kms-aks-dev.vault.azure.net/keys/kms-key/0123456789abcdef0123456789abcdef
      pluginKeyId: 5d0b...            # sha256 hex of keyId: the key id the Azure KMS plugin reports
      complete: true                  # every Secret rewritten, none failed
      finishedAt: "2026-11-30T12:00:00Z"
      durationSeconds: 12.5
      cluster: {context: dev-admin, server: https://dev-dns.hcp.westeurope.azmk8s.io:443}
      secrets: {listed: 1200, rewritten: 1190, unchanged: 8, deleted: 2, failed: 0}
      apiServer: {metricsServed: true, currentKeyMatches: true, currentKeyIdHash: "sha256:...",
                  reportedKeyIdHashes: [...]}
"""

from __future__ import annotations

from datetime import datetime
from pathlib import Path
from typing import Any

import yaml
from pydantic import BaseModel, ConfigDict, Field, ValidationError

from azure_facts.key_ids import normalize_key_id
from kms_aks_tools.cli.exits import UserError

RECORDS_DIR = "rotations"


class RecordError(UserError, ValueError):
    """A records file that cannot be read: one message naming the file and what is wrong."""


class SecretCounts(BaseModel):
    model_config = ConfigDict(extra="forbid")

    listed: int = Field(ge=0)
    rewritten: int = Field(ge=0, description="written again by the API server, under the current key")
    unchanged: int = Field(
        default=0, ge=0, description="replaced, but already under the current key: the API server wrote nothing"
    )
    deleted: int = Field(ge=0, description="gone (404) between the list and the rewrite: nothing left to rewrite")
    failed: int = Field(ge=0)


class ClusterRef(BaseModel):
    model_config = ConfigDict(extra="forbid")

    context: str
    server: str


class ApiServerReport(BaseModel):
    """What the API server's envelope-encryption metrics said at the end of the pass, where it serves them."""

    model_config = ConfigDict(extra="forbid")

    metricsServed: bool
    currentKeyMatches: bool | None = None
    currentKeyIdHash: str | None = Field(default=None, description="key_id_hash of the newest KMS Status call")
    reportedKeyIdHashes: list[str] = Field(
        default_factory=list, description="every key_id_hash the metrics named: Status ones newest first, then reads"
    )


class ReencryptionRecord(BaseModel):
    model_config = ConfigDict(extra="forbid")

    keyId: str
    pluginKeyId: str
    complete: bool
    finishedAt: datetime
    durationSeconds: float = Field(ge=0)
    cluster: ClusterRef
    secrets: SecretCounts
    apiServer: ApiServerReport


class RecordFile(BaseModel):
    model_config = ConfigDict(extra="forbid")

    stack: str
    records: list[ReencryptionRecord] = Field(default_factory=list)

    def complete_record_for(self, key_id: str) -> ReencryptionRecord | None:
        """The newest complete record for `key_id` (compared as `azure_facts.key_ids.normalize_key_id` says)."""
        wanted = normalize_key_id(key_id)
        matching = [r for r in self.records if r.complete and normalize_key_id(r.keyId) == wanted]
        return max(matching, key=lambda r: r.finishedAt, default=None)


def records_path(project_root: Path, stack: str) -> Path:
    return project_root / RECORDS_DIR / f"{stack}.yaml"


def load_records(path: Path, stack: str) -> RecordFile:
    """The stack's records; an absent file is an empty record list (no key has been re-encrypted yet)."""
    if not path.is_file():
        return RecordFile(stack=stack)
    try:
        data: Any = yaml.safe_load(path.read_text(encoding="utf-8"))
    except (OSError, UnicodeDecodeError, yaml.YAMLError) as error:
        raise RecordError(f"{path}: cannot be read as YAML: {error}") from None
    try:
        records = RecordFile.model_validate(data or {"stack": stack})
    except ValidationError as error:
        first = error.errors()[0]
        where = ".".join(str(p) for p in first["loc"]) or "(top level)"
        raise RecordError(f"{path}: {where}: {first['msg']} (the file is written by `kms-aks reencrypt`)") from None
    if records.stack != stack:
        raise RecordError(f"{path}: holds records of stack {records.stack!r}, not {stack!r}")
    return records


def append_record(path: Path, stack: str, record: ReencryptionRecord) -> None:
    """Adds a record, writing the whole file anew through a temporary file so a crash never leaves half a file."""
    records = load_records(path, stack)
    records.records.append(record)
    header = f"# kms-aks re-encryption records for stack {stack}. Written by `kms-aks reencrypt`; commit this file.\n"
    body = yaml.safe_dump(records.model_dump(mode="json"), sort_keys=False)
    path.parent.mkdir(parents=True, exist_ok=True)
    partial = path.with_suffix(path.suffix + ".partial")
    partial.write_text(header + body, encoding="utf-8")
    partial.replace(path)
