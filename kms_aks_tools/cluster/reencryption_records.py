"""Re-encryption records: `rotations/<stack>.yaml`, written by `kms-aks reencrypt`, reviewed and committed.

A record says: on this date, every Secret of this cluster was rewritten while the API server used this key, and
the API server's own counters, read around a GET of every Secret, showed each one under this key and none under
another (kms_aks_tools.cluster.verify). The guard's rotation gate reads the records: a key change is allowed only
away from a key that has a record it trusts (`judge`), because AKS keeps just two key slots (current and
previous) and a second rotation drops the previous key, with every Secret still under it.

What binds a record to its key and its cluster is evidence the gate can recompute, not a claim: the metric label
of the key (`sha256:` of the plugin's key id, itself the sha256 of the key URL), which must match `keyId`; the
per-key read counts, which must name only that label; the cluster's name (the stack's `cluster.name`) and the
API server's host, which must be the cluster's the preview shows. A record whose key id was edited no longer
matches its evidence. It is not a signature: someone who recomputes every hash can forge one, which is why the
file is reviewed like code (docs/rotation.md, "What the evidence proves").

The file is small, append-only and meant for humans as much as for the gate::

    # kms-aks re-encryption records for stack dev. Written by `kms-aks reencrypt`; commit this file.
    stack: dev
    records:
    - keyId: https://kms-aks-dev.vault.azure.net/keys/kms-key/0123456789abcdef0123456789abcdef
      pluginKeyId: 5d0b...            # sha256 hex of keyId: the key id the Azure KMS plugin reports
      complete: true                  # every Secret rewritten, none failed
      finishedAt: "2026-11-30T12:00:00Z"
      durationSeconds: 12.5
      cluster: {name: aks-kms-dev, context: dev-admin, server: https://dev-dns.hcp.westeurope.azmk8s.io:443}
      secrets: {listed: 1200, rewritten: 1190, unchanged: 8, deleted: 2, failed: 0}
      apiServer: {metricsServed: true, currentKeyMatches: true, currentKeyIdHash: "sha256:...",
                  reportedKeyIdHashes: [...]}
      verification: {status: verified, keyIdHash: "sha256:...", apiServers: ["sha256:..."], secretsListed: 1198,
                     secretsRead: 1198, readsByKey: {"sha256:...": 1198}, ...}
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime
from pathlib import Path
from typing import Any, Literal
from urllib.parse import urlsplit

import yaml
from pydantic import BaseModel, ConfigDict, Field, ValidationError

from azure_facts.key_ids import NotAVersionedKeyId, metric_key_id_hash, normalize_key_id, plugin_key_id
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

    name: str | None = Field(default=None, description="the stack's cluster name (kms-aks:cluster.name)")
    context: str
    server: str

    @property
    def host(self) -> str:
        return server_host(self.server)


class Verification(BaseModel):
    """The verification pass's evidence: what the API server's counters showed around a GET of every Secret."""

    model_config = ConfigDict(extra="forbid")

    status: Literal["verified", "unverified"]
    reason: str | None = Field(default=None, description="why it is unverified")
    keyIdHash: str = Field(description="the metric label the counts were compared with: recomputable from keyId")
    apiServers: list[str] = Field(default_factory=list, description="apiserver_id_hash of every replica read")
    startedAt: datetime
    finishedAt: datetime
    secretsListed: int = Field(ge=0)
    secretsRead: int = Field(ge=0)
    deleted: int = Field(ge=0, default=0)
    readsByKey: dict[str, int] = Field(default_factory=dict, description="key_id_hash -> Secrets read under it")
    notKms: int = Field(ge=0, default=0, description="Secrets stored under no KMS v2 key")
    unreadable: int = Field(ge=0, default=0)
    exact: bool = Field(description="only our reads in every window: counts exact; else upper bounds")
    windows: int = Field(ge=0, default=0)
    retriedWindows: int = Field(ge=0, default=0)


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
    verification: Verification | None = None


class RecordFile(BaseModel):
    model_config = ConfigDict(extra="forbid")

    stack: str
    records: list[ReencryptionRecord] = Field(default_factory=list)


def server_host(server: str) -> str:
    """The API server's host name from its URL (`https://h:443` -> `h`), lower case."""
    return (urlsplit(server if "//" in server else f"https://{server}").hostname or server).lower()


@dataclass(frozen=True)
class ClusterIdentity:
    """The cluster a record must be about, as the one judging it sees it.

    `name`: the cluster's resource name (the preview's old state, or the stack's `cluster.name`); `hosts`: the
    API server host names it answers on (the preview's `fqdn`/`privateFQDN`, or the server `key-status` talks
    to). None where it cannot be seen: then the record is refused, never waved through, unless `offline`.
    """

    name: str | None
    hosts: frozenset[str] | None
    offline: bool = False  # key-status --offline only: the cluster is not compared, and says so


@dataclass(frozen=True)
class Verdict:
    trusted: bool
    reason: str  # why it is not trusted, or what it proves


def judge(record: ReencryptionRecord, key_id: str, cluster: ClusterIdentity) -> Verdict:
    """Whether `record` proves that every Secret of `cluster` is under `key_id` (the rotation gate's judgement).

    Refused: another key; incomplete; no evidence (records written before the verification pass); evidence that
    is `unverified`; evidence whose key label is not the hash of `keyId` or whose counts name another key, plain
    text or unreadable Secrets, or do not add up; another cluster's name or API server host.
    """
    def no(reason: str) -> Verdict:
        return Verdict(False, f"record of {record.finishedAt:%Y-%m-%dT%H:%M:%SZ}: {reason}")

    if normalize_key_id(record.keyId) != normalize_key_id(key_id):
        return no(f"it is for key {record.keyId}, not {key_id}")
    try:
        plugin = plugin_key_id(record.keyId)
    except NotAVersionedKeyId as error:
        return no(str(error))
    if record.pluginKeyId != plugin:
        return no(f"its pluginKeyId {record.pluginKeyId} is not the plugin key id of its keyId ({plugin}): edited")
    evidence = record.verification
    if evidence is None:
        return no(
            "it carries no evidence from the API server's counters (written before `kms-aks reencrypt` verified "
            "its passes): rerun `kms-aks reencrypt`"
        )
    if evidence.status != "verified":
        return no(f"unverified: {evidence.reason or 'no reason given'}")
    if not record.complete or record.secrets.failed:
        return no(f"incomplete: {record.secrets.failed} Secret(s) failed")
    label = metric_key_id_hash(plugin)
    if evidence.keyIdHash != label:
        return no(f"its evidence is for key label {evidence.keyIdHash}, not {label}, the label of its keyId: edited")
    others = {k: n for k, n in evidence.readsByKey.items() if n and k != label}
    if others:
        return no(f"its evidence counts {sum(others.values())} Secret(s) read under other keys")
    if evidence.notKms or evidence.unreadable:
        return no(f"its evidence counts {evidence.notKms} unencrypted and {evidence.unreadable} unreadable Secret(s)")
    if evidence.readsByKey.get(label, 0) != evidence.secretsRead:
        return no(
            f"its evidence does not add up: {evidence.readsByKey.get(label, 0)} reads under the key for "
            f"{evidence.secretsRead} Secrets read"
        )
    if evidence.secretsRead + evidence.deleted != evidence.secretsListed:
        return no(
            f"its evidence does not add up: {evidence.secretsRead} read and {evidence.deleted} deleted of "
            f"{evidence.secretsListed} listed"
        )
    if not evidence.apiServers:
        return no("its evidence names no API server replica")
    if not evidence.startedAt <= evidence.finishedAt <= record.finishedAt:
        return no("its evidence's time window does not end before the record")
    if cluster.offline:
        return Verdict(True, f"{evidence.secretsRead} Secrets read under the key (cluster not compared: offline)")
    if cluster.name is None:
        return no("the cluster's name cannot be seen, so the record cannot be matched to it")
    if record.cluster.name != cluster.name:
        return no(f"it is about cluster {record.cluster.name or '(unnamed)'}, not {cluster.name}")
    if not cluster.hosts:
        return no("the cluster's API server host cannot be seen, so the record cannot be matched to it")
    if record.cluster.host not in cluster.hosts:
        return no(f"it is about the API server {record.cluster.host}, not {' or '.join(sorted(cluster.hosts))}")
    return Verdict(
        True,
        f"{evidence.secretsRead} Secrets read under the key on {len(evidence.apiServers)} API server replica(s), "
        "none under another",
    )


def trusted_record(
    records: RecordFile, key_id: str, cluster: ClusterIdentity
) -> tuple[ReencryptionRecord | None, list[Verdict]]:
    """The newest record of `key_id` that `judge` trusts, and the verdicts on every record of that key."""
    wanted = normalize_key_id(key_id)
    mine = sorted(
        (r for r in records.records if normalize_key_id(r.keyId) == wanted), key=lambda r: r.finishedAt, reverse=True
    )
    verdicts = [judge(r, key_id, cluster) for r in mine]
    trusted = next((r for r, v in zip(mine, verdicts, strict=True) if v.trusted), None)
    return trusted, verdicts


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
