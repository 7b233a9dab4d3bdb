"""What a change does, from the same `pulumi preview --json` the plan guard judged: the PR comment and the sandbox.

For every step that is not `same`: its op, the resource (type and name), the property paths that change (the
step's `detailedDiff`, else its `diffReasons`) with the old and new value where they are plain values, and
why it replaces (`replaceReasons`); for a grant created or deleted, its role, principal and scope.

The PR comment (`--markdown`) leads with the guard's verdict, read from its verdict as data (`--guard-json`, what
`kms-aks guard --json` writes: `kms_aks_tools.guard_verdict`): each finding with a "to proceed" line, the guard's
text (`--guard-output`) folded, then the change table. The terminal view prints the changes and the guard's text.

    kms-aks changes out/dev/preview.json --guard-output out/dev/guard.txt                  # rich text
    kms-aks changes out/dev/preview.json --guard-json out/dev/guard.json --guard-output out/dev/guard.txt \
        --markdown comment.md --stack dev

`.ci/pulumi-stack comment` writes the PR comment with it (.github/workflows/preview.yml); `kms-aks sandbox
preview` prints the terminal view. Secrets stay masked: a value the preview printed as `[secret]`, or a secret
object (`--show-secrets`), is shown as `[secret]`, never unwrapped.
Exit status: 0 rendered; 1 rendered, and the guard failed (a bad-input verdict, or none where --guard-json
names one): the comment says so; 2 an unreadable preview or guard output.
"""
from __future__ import annotations

import argparse
import html
import json
import re
import sys
import textwrap
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from rich.console import Console
from rich.text import Text

from azure_facts import ROLE_NAMES
from azure_facts.engine import SECRET_SIG, SECRET_SIG_KEY, UNKNOWN, type_from_urn
from azure_facts.property_paths import MASKED as MASKED_SECRET
from azure_facts.property_paths import split_property_path
from kms_aks_tools.cli.console import SUBSCRIPTION_ID, make_console, shorten_ids
from kms_aks_tools.cli.exits import EXIT_BAD_INPUT, EXIT_BLOCKED, EXIT_OK
from kms_aks_tools.cli.options import subcommand_parser
from kms_aks_tools.comment_marker import MARKER
from kms_aks_tools.guard_verdict import GuardVerdict, VerdictError, VerdictFinding, load_verdict
from kms_aks_tools.preview.model import BadInput, Preview, Step, load_preview
from kms_aks_tools.project.stack_file import ProjectNotFoundError, find_project

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
                properties=_property_changes(step) if step.op not in ("create", "delete") else _grant_summary(step),
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
#
# The PR comment, as GitHub renders it at a comment's width (about 100 characters of code): the verdict first,
# each finding as one line of rule, resource and why with a "to proceed" line under it, the guard's full text
# folded in <details>, then a narrow table of the changes. Long ids are shortened, with the whole value on hover
# (`<code title=...>`); nothing in a cell can split its row; no local path and no whole subscription id is shown.

# A value longer than this is cut in the table (the whole value on hover).
CELL_CHARS = 48

# An absolute local path (an ARM id starts with /subscriptions/ and is not one).
_LOCAL_PATH = re.compile(r"(?<![\w.:/~-])/(?!subscriptions/)(?:[\w.@+-]+/)+[\w.@+-]+")
_MD_SPECIAL = re.compile(r"([\\`*_{}\[\]<>|~])")
_SENTENCE_END = re.compile(r"\.\s+(?=[A-Z`])")


def _md(text: str) -> str:
    """Text safe in a Markdown table cell: punctuation escaped, so a value cannot format, link or split the table."""
    return _MD_SPECIAL.sub(r"\\\1", text)


def local_paths_removed(text: str, root: Path | None) -> str:
    """Paths under the project shown relative to it; any other absolute local path as its last two parts."""
    if root is not None:
        text = text.replace(f"{root.resolve()}/", "").replace(f"{root}/", "")
    return _LOCAL_PATH.sub(lambda m: "/".join(m[0].rsplit("/", 2)[-2:]), text)


def _one_line(text: str) -> str:
    return text.replace("\r", "").replace("\n", "\\n").replace("\t", "\\t")


def code(value: str, *, limit: int = CELL_CHARS) -> str:
    """A value as an inline code span that keeps a table row whole: newlines escaped, ids shortened, cut at
    `limit` characters, and the whole value on hover when anything was shortened."""
    whole = _one_line(value)
    shown = shorten_ids(whole)
    if len(shown) > limit and whole.startswith("/subscriptions/"):
        # An ARM id says what it is at its end: the resource type and name (and a key under a vault).
        tail = "/".join(shown.split("/")[-4:])
        shown = "…/" + tail if len(tail) < limit else shown
    if len(shown) > limit:
        shown = shown[: limit - 1] + "…"
    if shown == whole:
        longest = max((len(run) for run in re.findall(r"`+", whole)), default=0)
        fence = "`" * (longest + 1)
        pad = " " if whole.startswith("`") or whole.endswith("`") else ""
        return f"{fence}{pad}{whole.replace('|', chr(92) + '|')}{pad}{fence}"
    return f'<code title="{_attr(whole)}">{_attr(shown)}</code>'


def _attr(text: str) -> str:
    # `|` as an entity: GitHub splits a table row at every unescaped `|`, even inside HTML.
    return html.escape(text, quote=True).replace("|", "&#124;")


def _fenced(text: str, info: str = "text") -> str:
    longest = max((len(run) for run in re.findall(r"`+", text)), default=0)
    fence = "`" * max(3, longest + 1)
    return f"{fence}{info}\n{text.rstrip()}\n{fence}"


def _wrapped(text: str, width: int = 110) -> str:
    """Text wrapped by words at `width`, each line's indent kept (a comment does not wrap a code block)."""
    out = []
    for line in text.splitlines():
        indent = line[: len(line) - len(line.lstrip())]
        out.append(
            textwrap.fill(line, width, subsequent_indent=indent + "  ", break_long_words=False, break_on_hyphens=False)
            if line.strip()
            else line
        )
    return "\n".join(out)


def _details(summary: str, body: str) -> list[str]:
    return ["<details>", f"<summary>{summary}</summary>", "", body, "", "</details>"]


def _plural(count: int, word: str) -> str:
    return f"{count} {word}{'' if count == 1 else 's'}"


def _short_type(resource_type: str) -> str:
    return resource_type.rsplit(":", 1)[-1].rsplit("/", 1)[-1]


def _why(message: str, root: Path | None) -> str:
    """The finding's first sentence (the guard's whole text is in the details below)."""
    first = _SENTENCE_END.split(message.strip(), maxsplit=1)[0].rstrip(".")
    return _inline(local_paths_removed(first, root))


def _inline(text: str) -> str:
    """Prose with ids shortened and code spans kept: `...` stays code, the rest is escaped."""
    parts = re.split(r"(`[^`]+`)", shorten_ids(text))
    return "".join(
        part if part.startswith("`") and part.endswith("`") and len(part) > 1 else _md(part) for part in parts
    )


def _step_counts(preview: Preview) -> str:
    words = {"same": "unchanged", "create": "to create", "update": "to update", "delete": "to delete"}
    counts = op_counts(preview)
    order = ["replace", "create", "update", "delete"]
    shown = [op for op in order if counts.get(op)] + [op for op in counts if op not in order and op != "same"]
    text = ", ".join(f"{counts[op]} {words.get(op, op)}" for op in shown)
    if counts.get("same"):
        text = f"{text}, {counts['same']} unchanged" if text else f"{counts['same']} unchanged"
    return text or "no steps"


def verdict_line(stack: str, verdict: GuardVerdict | None, preview: Preview | None) -> str:
    """The comment's first line: what the reviewer must know."""
    changes = _step_counts(preview) if preview is not None else "no preview"
    if verdict is None or verdict.status == "bad-input":
        return f"{stack}: the plan guard failed, nothing judged, nothing applied"
    if verdict.status == "refused":
        return f"{stack}: refused by the plan guard, {_plural(len(verdict.findings), 'finding')}, nothing applied"
    allowed = f" with {_plural(len(verdict.allowed), 'override')}" if verdict.allowed else ""
    return f"{stack}: passed the plan guard{allowed} ({changes})"


def _finding_lines(finding: VerdictFinding, root: Path | None) -> list[str]:
    resource = f"`{_name(finding.urn)}` ({_short_type(type_from_urn(finding.urn) or 'no type')})"
    at = f" at {code(finding.path, limit=60)}" if finding.path and not finding.path.startswith("op=") else ""
    lines = [
        f"- **`{finding.rule}`** {resource}{at}: {_why(finding.message, root)}",
        f"  - **to proceed:** {_inline(local_paths_removed(finding.proceed, root))}",
    ]
    if finding.override is not None:
        import yaml  # PyYAML ships with the pulumi SDK

        entry = yaml.safe_dump(finding.override, sort_keys=False, width=1000).rstrip()
        block = _details("the entry to add to <code>guard-overrides.yaml</code>", _fenced(entry, "yaml"))
        lines += ["", *("  " + line if line else "" for line in "\n".join(block).splitlines())]
    return lines


def _grant_summary(step: Step) -> tuple[PropertyChange, ...]:
    """Role, principal and scope of a grant that is created or deleted: what a reviewer must see of it."""
    state = step.newState if step.op == "create" else step.oldState
    inputs = (state.inputs or state.outputs or {}) if state is not None else {}
    resource_type = type_from_urn(step.urn) or ""
    shown: list[tuple[str, Any]] = []
    if resource_type.endswith("RoleAssignment"):
        role = str(inputs.get("roleDefinitionId", "")).rsplit("/", 1)[-1]
        shown = [
            ("role", ROLE_NAMES.get(role, role)),
            ("principal", inputs.get("principalId")),
            ("scope", inputs.get("scope")),
        ]
    elif resource_type.endswith("AccessPolicy"):
        policy = inputs.get("policy") or {}
        permissions = (policy.get("permissions") or {}).get("keys")
        shown = [
            ("key permissions", ", ".join(permissions) if isinstance(permissions, list) else permissions),
            ("principal", policy.get("objectId")),
            ("vault", inputs.get("vaultName")),
        ]
    return tuple(
        PropertyChange(label, "grant", None, _shown(_masked(value))) for label, value in shown if value is not None
    )


def _change_cell(change: Change) -> str:
    lines = []
    for prop in change.properties:
        if prop.kind == "grant":
            lines.append(f"{_md(prop.path)}: {code(prop.new or '')}")
            continue
        kind = {"update": "", "add": " (added)", "delete": " (removed)"}.get(prop.kind, " (forces replacement)")
        values = f": {code(prop.old)} → {code(prop.new)}" if prop.old is not None and prop.new is not None else ""
        lines.append(f"{code(prop.path, limit=60)}{kind}{values}")
    return "<br>".join(lines)


def changes_table(changes: Sequence[Change]) -> list[str]:
    """The changes as a narrow table: op, resource, what changes, and why it is replaced only when any is."""
    rows = [
        [
            f"**{change.op}**" if change.op in ("replace", "delete") else change.op,
            f"{code(change.name)} {_md(_short_type(change.type))}",
            _change_cell(change),
            ", ".join(code(reason) for reason in change.replace_reasons),
        ]
        for change in changes
    ]
    header = ["op", "resource", "what changes", "replaced because of"]
    keep = [i for i in range(len(header)) if i < 2 or any(row[i] for row in rows)]
    lines = ["| " + " | ".join(header[i] for i in keep) + " |", "|" + " --- |" * len(keep)]
    lines += ["| " + " | ".join(row[i] for i in keep) + " |" for row in rows]
    return lines


def to_markdown(
    preview: Preview | None,
    *,
    stack: str,
    verdict: GuardVerdict | None = None,
    guard_output: str | None = None,
    verdict_error: str | None = None,
    root: Path | None = None,
) -> str:
    """The PR comment: the verdict, the findings with what to do, the guard's text folded, the change table.

    `verdict` is the guard's structured verdict (`kms-aks guard --json`); None, or `bad-input`, says the guard
    failed (`verdict_error` says why when there is no verdict at all). `root`: the project folder, so that paths
    in the guard's messages are shown relative to it.
    """
    lines = [f"### {_md(verdict_line(stack, verdict, preview))}", ""]
    if verdict is None or verdict.status == "bad-input":
        why = (
            verdict.error
            if verdict is not None and verdict.error
            else verdict_error or "no verdict was given (kms-aks changes --guard-json FILE)"
        )
        lines += [
            f"The guard could not judge this preview: {_inline(' '.join(local_paths_removed(why, root).split()))}",
            "",
            "- **to proceed:** fix what the message names (it says what is allowed) and push again; the job "
            "fails until the guard runs to the end.",
            "",
        ]
    else:
        for finding in verdict.findings:
            lines += _finding_lines(finding, root)
        if verdict.findings:
            lines.append("")
        if verdict.allowed:
            lines.append("Allowed by an override in `guard-overrides.yaml`:")
            lines += [
                f"- `{a.rule}` {code(_name(a.urn))} at {code(a.path, limit=60)}: {_inline(a.reason)}"
                for a in verdict.allowed
            ]
            lines.append("")
        if verdict.stale:
            lines.append("Overrides that matched nothing (remove them):")
            lines += [f"- {code(_name(s.urn))}: {_inline(s.names)}: {_inline(s.why)}" for s in verdict.stale]
            lines.append("")
    if guard_output and guard_output.strip():
        full = SUBSCRIPTION_ID.sub(lambda m: f"{m[1]}{m[2]}…", local_paths_removed(guard_output, root))
        lines += _details("the plan guard's full text", _fenced(_wrapped(full)))
        lines.append("")
    if preview is not None:
        changes = summarize(preview)
        lines += [f"#### What this change does: {_md(_step_counts(preview))}", ""]
        lines += changes_table(changes) if changes else ["No changes: every resource is unchanged."]
    # The marker last (the first line is the verdict); raw HTML: nothing to escape in a stack name.
    lines += ["", MARKER.format(stack=stack)]
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
    parser.add_argument("--guard-output", metavar="FILE", help="the guard's text on that preview (guard.txt)")
    parser.add_argument(
        "--guard-json",
        metavar="FILE",
        help="the guard's verdict as data (`kms-aks guard --json FILE`): the comment's verdict and findings; "
        "missing or bad-input: the comment says the guard failed and the exit status is 1",
    )
    parser.add_argument("--markdown", metavar="FILE", help="write the PR comment as Markdown to FILE (`-`: stdout)")
    parser.add_argument("--stack", default="stack", help="the stack's name, for the headings (default: stack)")
    parser.set_defaults(run=run)
    return parser


def build_parser() -> argparse.ArgumentParser:
    return configure_parser(subcommand_parser("changes", "What a `pulumi preview --json` changes, beside the guard."))


def run(args: argparse.Namespace) -> int:
    err = make_console(stderr=True)
    verdict: GuardVerdict | None = None
    verdict_error: str | None = None
    preview: Preview | None = None
    try:
        try:
            preview = load_preview(args.preview)
        except BadInput as error:
            if not (args.markdown and args.guard_json):
                raise
            # The PR comment still says what happened: the guard read the same file and failed on it too.
            verdict_error = f"the preview cannot be read: {error}"
        guard_output = None
        if args.guard_output:
            try:
                guard_output = Path(args.guard_output).read_text(encoding="utf-8")
            except (OSError, UnicodeDecodeError) as error:
                raise BadInput(f"cannot read the guard's output {args.guard_output}: {error}") from None
        if args.guard_json and preview is not None:
            try:
                verdict = load_verdict(args.guard_json)
            except VerdictError as error:
                verdict_error = str(error)
        if not args.markdown and preview is not None:  # without --markdown an unreadable preview raised above
            render(preview, make_console(), stack=args.stack, guard_output=guard_output)
            return EXIT_OK
        try:
            root: Path | None = find_project(Path.cwd())
        except ProjectNotFoundError:
            root = None
        text = to_markdown(
            preview,
            stack=args.stack,
            verdict=verdict,
            guard_output=guard_output,
            verdict_error=verdict_error,
            root=root,
        )
    except BadInput as error:
        err.print(Text.assemble(("changes: bad input: ", "bold red"), str(error)))
        return EXIT_BAD_INPUT
    if args.markdown == "-":
        sys.stdout.write(text)
    else:
        try:
            Path(args.markdown).write_text(text, encoding="utf-8")
        except OSError as error:
            err.print(Text.assemble(("changes: cannot write ", "bold red"), f"{args.markdown}: {error}"))
            return EXIT_BAD_INPUT
    if preview is None:
        err.print(Text.assemble(("changes: bad input: ", "bold red"), verdict_error or "", " (the comment says so)"))
        return EXIT_BAD_INPUT
    guard_failed = args.guard_json and (verdict is None or verdict.status == "bad-input")
    if guard_failed:
        err.print(Text("changes: the plan guard failed (the comment says why): exit 1", style="bold red"))
        return EXIT_BLOCKED
    return EXIT_OK


def main(argv: Sequence[str] | None = None) -> int:
    return run(build_parser().parse_args(argv))


if __name__ == "__main__":
    sys.exit(main())
