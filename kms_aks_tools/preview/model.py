"""The `pulumi preview --json` document, read one way by `kms-aks guard` and `kms-aks changes`.

The models accept every field the real CLI writes (extra fields are kept), and check only what the tools
rely on; `load_preview` turns unreadable input into `BadInput` (exit 2 in both commands), never a traceback.
Property paths inside a state are read through `azure_facts.property_paths` (an unknown or masked parent hides
the value, it is never read as absent). `check_change_summary` refuses a document whose change summary disagrees
with its steps.
"""

from __future__ import annotations

import json
import sys
from collections.abc import Mapping
from pathlib import Path
from typing import Any, Literal

from pydantic import BaseModel, ConfigDict, Field, ValidationError

from azure_facts.engine import stack_from_urn, type_from_urn
from kms_aks_tools.cli.exits import UserError


class ResourceState(BaseModel):
    """A resource's state in a step (`oldState` / `newState`): its URN, type, inputs and outputs."""

    model_config = ConfigDict(extra="allow")

    urn: str | None = None
    type: str | None = None
    id: str | None = None
    protect: bool | None = None
    aliases: list[str] | None = None
    inputs: dict[str, Any] | None = None
    outputs: dict[str, Any] | None = None

    def properties(self) -> dict[str, Any] | None:
        """The properties to compare: the inputs, or the outputs when the state has no inputs at all.

        Falling back per key would be wrong: during preview a new state's outputs can still hold the old
        values, so an input removed on purpose would look unchanged.
        """
        if self.inputs:
            return self.inputs
        if self.outputs:
            return self.outputs
        return None


class PropertyDiff(BaseModel):
    """One entry of a step's `detailedDiff`."""

    model_config = ConfigDict(extra="allow")

    kind: Literal["add", "delete", "update", "add-replace", "delete-replace", "update-replace"]
    inputDiff: bool = False


class Step(BaseModel):
    """One step of the plan: what the engine will do to one resource."""

    model_config = ConfigDict(extra="allow")

    op: str = Field(min_length=1)
    urn: str = Field(min_length=1)
    # The real CLI writes no step-level type (the URN and the states carry it); one in the input is read too,
    # and must agree with them.
    type: str | None = None
    provider: str | None = None
    oldState: ResourceState | None = None
    newState: ResourceState | None = None
    diffReasons: list[str] | None = None
    replaceReasons: list[str] | None = None
    detailedDiff: dict[str, PropertyDiff] | None = None


class Diagnostic(BaseModel):
    """A diagnostic the engine printed during preview."""

    model_config = ConfigDict(extra="allow")

    message: str = ""
    severity: str | None = None
    urn: str | None = None


class Preview(BaseModel):
    """The top-level object `pulumi preview --json` writes."""

    model_config = ConfigDict(extra="allow")

    steps: list[Step]
    changeSummary: dict[str, int] | None = None
    duration: float | None = None
    diagnostics: list[Diagnostic] | None = None


class BadInput(UserError):
    """Input the guard cannot judge: reported as a message with exit status 2, never as a traceback."""


def validation_message(error: ValidationError, limit: int = 5) -> str:
    lines = []
    for item in error.errors()[:limit]:
        where = ".".join(str(part) for part in item["loc"]) or "(top level)"
        lines.append(f"{where}: {item['msg']}")
    more = len(error.errors()) - limit
    if more > 0:
        lines.append(f"... and {more} more")
    return "; ".join(lines)


def read_text(source: str) -> str:
    try:
        if source == "-":
            return sys.stdin.read()
        return Path(source).read_text(encoding="utf-8")
    except (OSError, UnicodeDecodeError) as error:
        raise BadInput(f"cannot read {source}: {error}") from None


def load_preview(source: str) -> Preview:
    """Parse the file (or `-` for stdin) that `pulumi preview --json` wrote."""
    text = read_text(source)
    if not text.strip():
        raise BadInput(f"{source} is empty: not a `pulumi preview --json` output")
    try:
        data = json.loads(text)
    except json.JSONDecodeError as error:
        raise BadInput(f"{source} is not JSON ({error}); expected `pulumi preview --json` output") from None
    if not isinstance(data, dict):
        raise BadInput(f"{source} holds a JSON {type(data).__name__}, not the preview's top-level object")
    try:
        return Preview.model_validate(data)
    except ValidationError as error:
        raise BadInput(f"{source} is not in the `pulumi preview --json` shape: {validation_message(error)}") from None


# The ops a step can carry that the change summary folds into another count: a replacement's create and delete
# halves are counted as one `replace` (pulumi's display/json.go counts the step's op; the halves are shown only
# with --show-replacement-steps).
_FOLDED_OPS = {"create-replacement": "replace", "delete-replaced": "replace"}


def check_change_summary(preview: Preview) -> None:
    """Refuse a preview whose changeSummary announces changes its steps do not show, or the other way round.

    `same` is not compared: without --show-sames the steps omit unchanged resources while the summary counts
    them. Every other op must have as many steps as the summary says.
    """
    if preview.changeSummary is None:
        return
    counted: dict[str, int] = {}
    replaced = {step.urn for step in preview.steps if step.op == "replace"}
    for step in preview.steps:
        op = _FOLDED_OPS.get(step.op, step.op)
        if op == "same" or (step.op in _FOLDED_OPS and step.urn in replaced):
            continue
        counted[op] = counted.get(op, 0) + 1
    announced = {op: n for op, n in preview.changeSummary.items() if op != "same" and n}
    if counted != announced:
        raise BadInput(
            f"the preview's changeSummary ({_ops(announced)}) disagrees with its steps ({_ops(counted)}): a change "
            "announced without its step, or a step the summary does not count, cannot be judged. Use the file "
            "`pulumi preview --json --show-sames` wrote, unedited."
        )


def _ops(counts: Mapping[str, int]) -> str:
    return ", ".join(f"{op} {n}" for op, n in sorted(counts.items())) or "no changes"


# The URN parts are azure_facts.engine's; named here too, as the preview's readers use them.
__all__ = [
    "BadInput",
    "Diagnostic",
    "Preview",
    "PropertyDiff",
    "ResourceState",
    "Step",
    "check_change_summary",
    "load_preview",
    "read_text",
    "stack_from_urn",
    "type_from_urn",
    "validation_message",
]
