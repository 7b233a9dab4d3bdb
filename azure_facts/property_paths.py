"""Property paths: how the pack, the guard, the KMS closure and `kms-aks changes` read a value inside a resource's
properties. Standard library only, so the policy pack and the tools share it.

One reading for every gate: a secret in its wire form is unwrapped to its value; a value unknown until apply (any
of the engine's sentinels) or masked (`[secret]` in `pulumi preview --json` without --show-secrets) hides
everything below it, so the hidden parent is returned and never read as absent. A `detailedDiff` key
(`identity.userAssignedIdentities[0]`, `tags["a.b"]`) splits into the same segments a path is read by.
"""

from __future__ import annotations

import re
from collections.abc import Iterator, Mapping, Sequence
from typing import Any

from azure_facts.engine import SECRET_SIG, SECRET_SIG_KEY

# The engine's sentinels for values not known until a resource is created, one per kind (pulumi_policy/proxy.py;
# sdk/go/common/resource/plugin). `pulumi preview --json` prints the string one for all of them.
UNKNOWN_SENTINELS = frozenset(
    {
        "1c4a061d-8072-4f0a-a4cb-0ff528b18fe7",  # boolean
        "3eeb2bf0-c639-47a8-9e75-3b44932eb421",  # number
        "04da6b54-80e4-46f7-96ec-b56ff0331ba9",  # string
        "6a19a0b0-7e62-4c92-b797-7f8e31da9cc2",  # array
        "030794c1-ac77-496b-92df-f27374a8bd58",  # asset
        "e48ece36-62e2-4504-bad9-02848725956a",  # archive
        "dd056dcd-154b-4c76-9bd3-c8f88648b5ff",  # object
    }
)
# How `pulumi preview --json` prints a secret without --show-secrets.
MASKED = "[secret]"


class _Missing:
    """The value at a path that is not there (distinct from an explicit null)."""

    def __repr__(self) -> str:
        return "MISSING"


MISSING: Any = _Missing()

Path = tuple[str, ...]


def is_unknown(value: Any) -> bool:
    """Whether `value` is an engine sentinel for a value not known until the resource is created."""
    return isinstance(value, str) and value in UNKNOWN_SENTINELS


def unseen(value: Any) -> bool:
    """True for a value a gate cannot read: unknown until apply, or masked."""
    return isinstance(value, str) and (value in UNKNOWN_SENTINELS or value == MASKED)


def unwrap(value: Any) -> Any:
    """A secret shown with --show-secrets (or sent to a policy) is a signature object: keep only its value."""
    if isinstance(value, Mapping) and value.get(SECRET_SIG_KEY) == SECRET_SIG:
        return value.get("value", value.get("plaintext", MASKED))
    return value


def lookup(properties: Any, path: Sequence[str], *, absent: Any = MISSING) -> Any:
    """The value at `path`; `absent` (default `MISSING`) when it is not there; the unknown or masked value itself
    when it or any parent cannot be seen."""
    current = unwrap(properties)
    for segment in path:
        if unseen(current):
            return current  # a hidden parent hides the value: never read it as absent
        if not isinstance(current, Mapping) or segment not in current:
            return absent
        current = unwrap(current[segment])
    return current


def dig(properties: Any, *path: str) -> Any:
    """`lookup` with None for an absent value: `dig(props, "securityProfile", "azureKeyVaultKms", "keyId")`."""
    return lookup(properties, path, absent=None)


_PATH_TOKEN = re.compile(r'\["((?:[^"\\]|\\.)*)"\]|\[(\d+)\]|([^.\[\]]+)')


def split_property_path(path: str) -> Path:
    """Split a detailedDiff key (`identity.userAssignedIdentities[0]`, `tags["a.b"]`) into segments."""
    return tuple(quoted or index or plain for quoted, index, plain in _PATH_TOKEN.findall(path))


def covers(path: Path, other: Path) -> bool:
    """True when one path is at, below or above the other (a parent replaced wholesale changes its leaves)."""
    shortest = min(len(path), len(other))
    return path[:shortest] == other[:shortest]


def leaves(value: Any, path: Path = ()) -> Iterator[Path]:
    """The path of every leaf under `value` (an empty mapping or list is a leaf)."""
    value = unwrap(value)
    if isinstance(value, Mapping) and value:
        for key, item in value.items():
            yield from leaves(item, (*path, str(key)))
    elif isinstance(value, list) and value:
        for index, item in enumerate(value):
            yield from leaves(item, (*path, str(index)))
    else:
        yield path


def changed_leaves(old: Any, new: Any, path: Path = ()) -> Iterator[Path]:
    """The deepest paths at which `old` and `new` differ (a value added or removed counts at each of its leaves;
    `MISSING` stands for a value that is not there)."""
    old, new = unwrap(old), unwrap(new)
    if old == new:
        return
    if isinstance(old, Mapping) and isinstance(new, Mapping):
        for key in sorted(set(old) | set(new)):
            yield from changed_leaves(old.get(key, MISSING), new.get(key, MISSING), (*path, str(key)))
    elif isinstance(old, list) and isinstance(new, list) and len(old) == len(new):
        for index, (a, b) in enumerate(zip(old, new, strict=True)):
            yield from changed_leaves(a, b, (*path, str(index)))
    elif old is MISSING and isinstance(new, Mapping | list) and new:
        yield from leaves(new, path)
    elif new is MISSING and isinstance(old, Mapping | list) and old:
        yield from leaves(old, path)
    else:
        yield path


def hides(*values: Any) -> bool:
    """True when any value, or anything nested in it, is masked (`[secret]`)."""
    for value in values:
        if value == MASKED:
            return True
        if isinstance(value, dict) and hides(*value.values()):
            return True
        if isinstance(value, list) and hides(*value):
            return True
    return False
