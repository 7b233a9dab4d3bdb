"""The plan guard's verdict as data: what `kms-aks guard --json FILE` writes and the PR comment reads.

The comment is built from these fields, never from the guard's terminal text (which wraps, colours and
changes wording freely). The contract is small on purpose:

- `status`: `passed`, `refused` or `bad-input` (the guard could not judge the preview: nothing was judged);
- per finding: `rule`, `urn`, `path`, `message` (the guard's why), `proceed` (one line: the exact command, or
  which override to add, or that none exists) and `override` (the overrides-file entry that would excuse it,
  as a mapping `{section: [entry]}`, or null when no override can);
- the changes allowed by an override, the stale overrides, and `error` for `bad-input`.

Only this module knows the file's shape; `kms_aks_tools.guard` fills it, `kms_aks_tools.change_summary` reads it.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any, Literal

from pydantic import BaseModel, ConfigDict, Field, ValidationError

VERDICT_VERSION = 1


class VerdictFinding(BaseModel):
    """One refusal: the rule, the resource and property path, why, and how to proceed."""

    model_config = ConfigDict(extra="forbid")

    rule: str = Field(min_length=1)
    urn: str = Field(min_length=1)
    path: str
    message: str = Field(min_length=1)
    proceed: str = Field(min_length=1)
    override: dict[str, list[dict[str, Any]]] | None = None


class AllowedChange(BaseModel):
    """A finding an override excused, with the override's reason."""

    model_config = ConfigDict(extra="forbid")

    rule: str
    urn: str
    path: str
    reason: str


class StaleOverride(BaseModel):
    """An override that matched nothing in this preview."""

    model_config = ConfigDict(extra="forbid")

    urn: str
    names: str
    why: str


class GuardVerdict(BaseModel):
    """The guard's whole verdict on one preview."""

    model_config = ConfigDict(extra="forbid")

    version: int = VERDICT_VERSION
    status: Literal["passed", "refused", "bad-input"]
    steps: int = 0
    findings: list[VerdictFinding] = Field(default_factory=list)
    allowed: list[AllowedChange] = Field(default_factory=list)
    stale: list[StaleOverride] = Field(default_factory=list)
    error: str | None = None


class VerdictError(Exception):
    """A verdict file that is missing or not in this shape."""


def dump_verdict(verdict: GuardVerdict, target: str | Path) -> None:
    Path(target).write_text(verdict.model_dump_json(indent=2) + "\n", encoding="utf-8")


def load_verdict(source: str | Path) -> GuardVerdict:
    """Read a verdict file; `VerdictError` names what is wrong with it."""
    try:
        data = json.loads(Path(source).read_text(encoding="utf-8"))
    except FileNotFoundError:
        raise VerdictError(f"the guard wrote no verdict ({source} does not exist): it did not run to the end") from None
    except (OSError, UnicodeDecodeError, json.JSONDecodeError) as error:
        raise VerdictError(f"the guard's verdict {source} cannot be read: {error}") from None
    try:
        return GuardVerdict.model_validate(data)
    except ValidationError as error:
        first = error.errors()[0]
        where = ".".join(str(part) for part in first["loc"]) or "(top level)"
        raise VerdictError(
            f"the guard's verdict {source} is not in the verdict shape: {where}: {first['msg']}"
        ) from None
