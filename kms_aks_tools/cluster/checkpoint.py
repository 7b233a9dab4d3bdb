"""The checkpoint of a `kms-aks reencrypt` pass: where it is, saved after each page, so that a rerun continues
there (the pages done, the Secrets to retry, the counts so far). It holds no Secret data."""

from __future__ import annotations

import os
from datetime import UTC, datetime
from pathlib import Path
from typing import Literal

from pydantic import BaseModel, ConfigDict, Field, ValidationError
from rich.console import Console

from azure_facts.key_ids import plugin_key_id
from kms_aks_tools.cluster.connection import Cluster
from kms_aks_tools.cluster.keys import StackKey

CHECKPOINT_FORMAT = 1


class Failure(BaseModel):
    model_config = ConfigDict(extra="forbid")

    namespace: str
    name: str
    reason: str


class Counts(BaseModel):
    """What the pass did so far. `unchanged`: replaced, but the API server wrote nothing (already current)."""

    model_config = ConfigDict(extra="forbid")

    listed: int = 0
    rewritten: int = 0
    unchanged: int = 0
    deleted: int = 0
    conflicts: int = 0
    throttled: int = 0  # 429s absorbed (each retried after its Retry-After)
    tokensExpired: int = 0  # continue tokens that expired (410, etcd compacted): listed on from a fresh one


class Checkpoint(BaseModel):
    """Where a pass is: saved after each page, so that a rerun continues there. Holds no Secret data."""

    model_config = ConfigDict(extra="forbid")

    format: Literal[1] = CHECKPOINT_FORMAT
    stack: str
    keyId: str
    context: str
    server: str
    startedAt: datetime
    elapsedSeconds: float = Field(ge=0, default=0.0)
    continueToken: str | None = None
    listingDone: bool = False
    pagesDone: int = 0
    estimatedTotal: int | None = None
    counts: Counts = Field(default_factory=Counts)
    failures: list[Failure] = Field(default_factory=list)


class CheckpointError(ValueError):
    """A checkpoint file that cannot be used: one message (exit 2)."""


def load_checkpoint(path: Path) -> Checkpoint | None:
    if not path.exists():
        return None
    try:
        return Checkpoint.model_validate_json(path.read_text(encoding="utf-8"))
    except (OSError, UnicodeDecodeError) as error:
        raise CheckpointError(f"checkpoint {path} cannot be read: {error}") from None
    except ValidationError as error:
        first = error.errors()[0]
        where = ".".join(str(p) for p in first["loc"]) or "(top level)"
        raise CheckpointError(
            f"checkpoint {path} is not a kms-aks reencrypt checkpoint ({where}: {first['msg']}); "
            "delete it to start a new pass"
        ) from None


def save_checkpoint(path: Path, checkpoint: Checkpoint) -> None:
    """Through a temporary file and a rename, so a kill never leaves half a checkpoint."""
    path.parent.mkdir(parents=True, exist_ok=True)
    partial = path.with_name(path.name + ".partial")
    with partial.open("w", encoding="utf-8") as handle:
        handle.write(checkpoint.model_dump_json(indent=1))
        handle.flush()
        os.fsync(handle.fileno())
    partial.replace(path)


def default_checkpoint_path(stack_key: StackKey) -> Path:
    return stack_key.records_file.with_name(f"{stack_key.stack}.reencrypt-checkpoint.json")


def resume_or_start(
    existing: Checkpoint | None, path: Path, stack_key: StackKey, cluster: Cluster, console: Console
) -> Checkpoint:
    """The checkpoint at `path` when it is for this stack, cluster and key (said on `console`), else a new one;
    one for another stack or cluster is refused (CheckpointError)."""
    assert stack_key.key_id is not None
    if existing is not None:
        if existing.server != cluster.server or existing.stack != stack_key.stack:
            raise CheckpointError(
                f"checkpoint {path} belongs to stack {existing.stack} on {existing.server}, not stack "
                f"{stack_key.stack} on {cluster.server}: pass another --checkpoint, or delete it"
            )
        if plugin_key_id(existing.keyId) == stack_key.plugin_key_id:
            done = existing.counts.listed
            console.print(
                f"reencrypt: continuing the pass started {existing.startedAt:%Y-%m-%d %H:%M:%SZ} ({done} Secrets "
                f"listed in {existing.pagesDone} pages, {len(existing.failures)} to retry) from {path}"
            )
            return existing
        console.print(f"reencrypt: {path} is for key {existing.keyId}; starting a new pass for {stack_key.key_id}")
    return Checkpoint(
        stack=stack_key.stack,
        keyId=stack_key.key_id,
        context=cluster.context,
        server=cluster.server,
        startedAt=datetime.now(tz=UTC).replace(microsecond=0),
    )


def summary(state: Checkpoint) -> str:
    """What the pass did, in one line."""
    c = state.counts
    seconds = state.elapsedSeconds
    rate = (c.rewritten + c.unchanged) / seconds if seconds > 0 else 0.0
    return (
        f"{c.listed} Secrets listed: {c.rewritten} rewritten, {c.unchanged} already under the current key, "
        f"{c.deleted} deleted meanwhile (skipped), {len(state.failures)} failed, in {seconds:.1f} s ({rate:.1f}/s); "
        f"{c.conflicts} conflicts resolved by a fresh read; {c.throttled} 429s absorbed (each retried after its "
        f"Retry-After); {c.tokensExpired} expired continue tokens (410) listed on from a fresh one"
    )
