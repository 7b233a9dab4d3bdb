"""The Pulumi engine's values as they reach the pack, the guard and the tools: the wire markers for an unknown
value and a secret (and `Secret`, a secret decoded), and the parts of a URN. Standard library only.

The engine encodes a secret as `{"4dabf1...": "1b4706...", "value": v}` and an unknown (computed) value as the
string `04da6b54-...` (pulumi/pulumi `sdk/go/common/resource/plugin/rpc.go`; the Python SDK's
`pulumi/runtime/rpc.py`: `UNKNOWN`, `_special_sig_key`, `_special_secret_sig`). A URN is
`urn:pulumi:<stack>::<project>::<parent type$...$>type::<name>` (`sdk/go/common/resource/urn.go`).
"""

from __future__ import annotations

# The engine's wire sentinel for a value not known until the resource is created (preview).
UNKNOWN = "04da6b54-80e4-46f7-96ec-b56ff0331ba9"
# The engine's wire marker for a secret: {SECRET_SIG_KEY: SECRET_SIG, "value": ...}.
SECRET_SIG_KEY = "4dabf18193072939515e22adb298388d"
SECRET_SIG = "1b47061264138c4ac30d75fd1eb44270"

URN_PREFIX = "urn:pulumi:"


def type_from_urn(urn: str) -> str | None:
    """The resource type of `urn:pulumi:<stack>::<project>::<parent$>type::name`, or None if not a URN."""
    if not urn.startswith(URN_PREFIX):
        return None
    parts = urn.split("::", 3)
    if len(parts) != 4 or not parts[2]:
        return None
    return parts[2].split("$")[-1]


def name_from_urn(urn: str) -> str:
    """The resource's name: what follows the URN's last `::` (a name may itself hold `::`; the engine's own
    `URN.Name()` splits after the type the same way)."""
    parts = urn.split("::", 3)
    return parts[3] if len(parts) == 4 else urn.rsplit("::", 1)[-1]


def stack_from_urn(urn: str) -> str:
    """The stack of `urn:pulumi:<stack>::...`."""
    return urn.removeprefix(URN_PREFIX).split("::", 1)[0]



class Secret:
    """A secret value, decoded: the one marker code that works on plain values uses for what the engine marks secret
    on the wire (`{SECRET_SIG_KEY: SECRET_SIG, "value": v}`), so a secret is never mistaken for a mapping."""

    __slots__ = ("value",)

    def __init__(self, value: object) -> None:
        self.value = value

    def __eq__(self, other: object) -> bool:
        return isinstance(other, Secret) and other.value == self.value

    def __hash__(self) -> int:
        return hash(("secret", repr(self.value)))

    def __repr__(self) -> str:
        return "Secret([secret])"  # never the value: a repr may reach a log
