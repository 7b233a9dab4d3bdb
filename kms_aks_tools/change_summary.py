"""What a change does, from the same `pulumi preview --json` the plan guard judged: the PR comment and the sandbox.

For every step that is not `same`: its op, the resource (type and name), the property paths that change (the
step's `detailedDiff`, else its `diffReasons`) with the old and new value where they are plain values, and
why it replaces (`replaceReasons`). Beside it, the guard's verdict as the guard printed it (`guard.txt`).

    kms-aks changes out/dev/preview.json --guard-output out/dev/guard.txt                  # rich text
    kms-aks changes out/dev/preview.json --guard-output out/dev/guard.txt --markdown comment.md --stack dev

`.ci/pulumi-stack comment` writes the PR comment with it (.github/workflows/preview.yml); `kms-aks sandbox
preview` prints the same content in the terminal. Secrets stay masked: a value the preview printed as
`[secret]`, or a secret object (`--show-secrets`), is shown as `[secret]`, never unwrapped.
Exit status: 0 rendered, 2 an unreadable preview or guard output (the guard's own reading of the preview).
"""

from __future__ import annotations

import argparse
import json
import re
import sys
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from rich.console import Console
from rich.text import Text

from azure_facts.engine import SECRET_SIG, SECRET_SIG_KEY, UNKNOWN, type_from_urn
from kms_aks_tools.cli.console import make_console
from kms_aks_tools.cli.exits import EXIT_BAD_INPUT, EXIT_OK
from kms_aks_tools.cli.options import subcommand_parser
from kms_aks_tools.guard import MASKED_SECRET, BadInput, Preview, Step, load_preview, split_property_path

# Steps of one replacement that the `replace` step of the same URN already stands for.
REPLACEMENT_PARTS = frozenset({"create-replacement", "delete-replaced"})
# A plain value longer than this is cut, and a map or list this long is left out: the summary points at the
# preview, it does not copy it. Long enough for a versioned key id (about 100 characters) to show whole.
MAX_VALUE_CHARS = 160
_ABSENT = object()


@dataclass(frozen=True)
class PropertyChange:
    """One changed property path of a step, with its diff kind and the values shown for it (None: not shown)."""

    path: str
    kind: str
    old: str | None = None
    new: str | None = None


@dataclass(frozen=True)
class Change:
    """One step that is not `same`."""

    op: str
    urn: str
    type: str
    name: str
    properties: tuple[PropertyChange, ...]
    replace_reasons: tuple[str, ...]


def _is_secret(value: Any) -> bool:
    return value == MASKED_SECRET or (isinstance(value, dict) and value.get(SECRET_SIG_KEY) == SECRET_SIG)


def _value_at(properties: Mapping[str, Any] | None, path: Sequence[str]) -> Any:
    """The value at `path`: `MASKED_SECRET` at or under a secret (never its plaintext), `_ABSENT` when not there."""
    current: Any = properties
    for segment in path:
        if _is_secret(current):
            return MASKED_SECRET
        if isinstance(current, list) and segment.isdigit() and int(segment) < len(current):
            current = current[int(segment)]
        elif isinstance(current, dict) and segment in current:
            current = current[segment]
        else:
            return _ABSENT
    return MASKED_SECRET if _is_secret(current) else current


def _masked(value: Any) -> Any:
    """The value with every secret inside it (a `--show-secrets` signature object) replaced by `[secret]`."""
    if _is_secret(value):
        return MASKED_SECRET
    if isinstance(value, dict):
        return {key: _masked(item) for key, item in value.items()}
    if isinstance(value, list):
        return [_masked(item) for item in value]
    return value


def _shown(value: Any) -> str | None:
    """A value as the summary shows it, secrets masked; None for a map or list too long to show (the path says
    what changed in it)."""
    if value is _ABSENT:
        return "(absent)"
    if value == UNKNOWN:
        return "(known after apply)"
    if isinstance(value, (dict, list)):
        text = json.dumps(_masked(value), separators=(", ", ": "))
        return text if len(text) <= MAX_VALUE_CHARS else None
    text = value if isinstance(value, str) else json.dumps(value)
    return text if len(text) <= MAX_VALUE_CHARS else text[: MAX_VALUE_CHARS - 1] + "…"


def _property_changes(step: Step) -> tuple[PropertyChange, ...]:
    old_state, new_state = step.oldState, step.newState
    if step.detailedDiff:
        paths = sorted(step.detailedDiff.items())
    else:
        paths = [(reason, None) for reason in sorted(step.diffReasons or [])]
    changes = []
    for path, diff in paths:
        segments = split_property_path(path)
        side = "inputs" if diff is None or diff.inputDiff else "outputs"
        old = _value_at(getattr(old_state, side, None) if old_state else None, segments)
        new = _value_at(getattr(new_state, side, None) if new_state else None, segments)
        old_shown, new_shown = _shown(old), _shown(new)
        shown = old_shown is not None and new_shown is not None
        kind = diff.kind if diff is not None else "update"
        changes.append(PropertyChange(path, kind, old_shown if shown else None, new_shown if shown else None))
    return tuple(changes)


def _name(urn: str) -> str:
    return urn.rsplit("::", 1)[-1]


def summarize(preview: Preview) -> list[Change]:
    """Every step that is not `same`, in the preview's order; one row per replacement."""
    replaced = {step.urn for step in preview.steps if step.op == "replace"}
    changes = []
    for step in preview.steps:
        if step.op == "same" or (step.op in REPLACEMENT_PARTS and step.urn in replaced):
            continue
        changes.append(
            Change(
                op=step.op,
                urn=step.urn,
                type=type_from_urn(step.urn) or "(no type in the URN)",
                name=_name(step.urn),
                properties=_property_changes(step) if step.op not in ("create", "delete") else (),
                replace_reasons=tuple(step.replaceReasons or ()),
            )
        )
    return changes


def op_counts(preview: Preview) -> dict[str, int]:
    """How many steps of each op: the preview's `changeSummary`, or counted from its steps."""
    if preview.changeSummary:
        return dict(sorted(preview.changeSummary.items()))
    counted: dict[str, int] = {}
    for step in preview.steps:
        counted[step.op] = counted.get(step.op, 0) + 1
    return dict(sorted(counted.items()))


def _counts_line(preview: Preview) -> str:
    return ", ".join(f"{op} {count}" for op, count in op_counts(preview).items())


def _property_line(change: PropertyChange) -> str:
    values = f": {change.old} → {change.new}" if change.old is not None else ""
    return f"{change.path} ({change.kind}){values}"


# ---------------------------------------------------------------------------------------------------- Markdown

_MD_SPECIAL = re.compile(r"([\\`*_{}\[\]<>()#+!|~])")


def _md(text: str) -> str:
    """Text safe in a Markdown table cell: punctuation escaped, so a value cannot format, link or split the table."""
    return _MD_SPECIAL.sub(r"\\\1", text)


def _code(text: str) -> str:
    """An inline code span that survives a table cell (GitHub splits cells at `|`, even inside code)."""
    escaped = text.replace("|", "\\|")
    return f"`{escaped}`"


def _fenced(text: str, info: str = "text") -> str:
    longest = max((len(run) for run in re.findall(r"`+", text)), default=0)
    fence = "`" * max(3, longest + 1)
    return f"{fence}{info}\n{text.rstrip()}\n{fence}"


def to_markdown(preview: Preview, *, stack: str, guard_output: str | None = None) -> str:
    """The PR comment: the change table, then the guard's verdict (its own text, fenced)."""
    changes = summarize(preview)
    lines = [f"### {_md(stack)}: what this change does", ""]
    if changes:
        lines += ["| op | resource | type | changed properties | replace reasons |", "| --- | --- | --- | --- | --- |"]
        for change in changes:
            properties = "<br>".join(
                f"{_code(p.path)} ({p.kind})" + (f": {_md(p.old)} → {_md(p.new)}" if p.old is not None else "")
                for p in change.properties
            )
            reasons = ", ".join(_code(r) for r in change.replace_reasons)
            lines.append(
                f"| {_md(change.op)} | {_code(change.name)} | {_code(change.type)} | {properties} | {reasons} |"
            )
    else:
        lines.append("No changes: every resource is `same`.")
    lines += ["", f"Steps: {_md(_counts_line(preview))}."]
    if guard_output is not None:
        lines += ["", f"### {_md(stack)}: plan guard", "", _fenced(guard_output)]
    return "\n".join(lines) + "\n"


# ---------------------------------------------------------------------------------------------------- terminal


def render(preview: Preview, console: Console, *, stack: str, guard_output: str | None = None) -> None:
    """The same content in the terminal: one block per change (a line each for the resource and its changed
    paths, so nothing is cut in a narrow terminal), then the guard's verdict as it printed it."""
    changes = summarize(preview)
    console.print(Text(f"{stack}: what this change does", style="bold"))
    if not changes:
        console.print(Text("  no changes: every resource is `same`"))
    for change in changes:
        style = "red" if change.op in ("replace", "delete") else "yellow" if change.op == "update" else "green"
        reasons = f"  (replace reasons: {', '.join(change.replace_reasons)})" if change.replace_reasons else ""
        console.print(Text.assemble("  ", (change.op, f"bold {style}"), f" {change.name}  {change.type}{reasons}"))
        for prop in change.properties:
            console.print(Text(f"      {_property_line(prop)}"))
    console.print(Text(f"steps: {_counts_line(preview)}"))
    if guard_output is not None:
        console.print(Text(guard_output.rstrip()))


# ---------------------------------------------------------------------------------------------------- command


def configure_parser(parser: argparse.ArgumentParser) -> argparse.ArgumentParser:
    """The options of `kms-aks changes`."""
    parser.add_argument("preview", help="file written by `pulumi preview --json` (`-` for stdin)")
    parser.add_argument("--guard-output", metavar="FILE", help="the guard's verdict on that preview (guard.txt)")
    parser.add_argument("--markdown", metavar="FILE", help="write the PR comment as Markdown to FILE (`-`: stdout)")
    parser.add_argument("--stack", default="stack", help="the stack's name, for the headings (default: stack)")
    parser.set_defaults(run=run)
    return parser


def build_parser() -> argparse.ArgumentParser:
    return configure_parser(subcommand_parser("changes", "What a `pulumi preview --json` changes, beside the guard."))


def run(args: argparse.Namespace) -> int:
    err = make_console(stderr=True)
    try:
        preview = load_preview(args.preview)
        guard_output = None
        if args.guard_output:
            try:
                guard_output = Path(args.guard_output).read_text(encoding="utf-8")
            except (OSError, UnicodeDecodeError) as error:
                raise BadInput(f"cannot read the guard's output {args.guard_output}: {error}") from None
        if not args.markdown:
            render(preview, make_console(), stack=args.stack, guard_output=guard_output)
            return EXIT_OK
        text = to_markdown(preview, stack=args.stack, guard_output=guard_output)
    except BadInput as error:
        err.print(Text.assemble(("changes: bad input: ", "bold red"), str(error)))
        return EXIT_BAD_INPUT
    if args.markdown == "-":
        sys.stdout.write(text)
        return EXIT_OK
    try:
        Path(args.markdown).write_text(text, encoding="utf-8")
    except OSError as error:
        err.print(Text.assemble(("changes: cannot write ", "bold red"), f"{args.markdown}: {error}"))
        return EXIT_BAD_INPUT
    return EXIT_OK


def main(argv: Sequence[str] | None = None) -> int:
    return run(build_parser().parse_args(argv))


if __name__ == "__main__":
    sys.exit(main())
