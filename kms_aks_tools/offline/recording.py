"""What the mock engine records of one program run: the resource graph as the Pulumi engine sees it."""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

from azure_facts.engine import SECRET_SIG, SECRET_SIG_KEY, UNKNOWN  # the engine's markers, as recorded


@dataclass(frozen=True)
class RecordedResource:
    """One `RegisterResource` call, with the inputs the engine received and the outputs the mock provider gave.

    `inputs` and `outputs` use the engine's camelCase property names (`securityProfile.azureKeyVaultKms`),
    exactly as a policy pack receives them. Unknown values (preview) are `UNKNOWN`.
    """

    urn: str
    type: str
    name: str
    custom: bool
    parent: str
    inputs: dict[str, Any]
    outputs: dict[str, Any]
    id: str = ""
    dependencies: tuple[str, ...] = ()
    property_dependencies: dict[str, tuple[str, ...]] = field(default_factory=dict)
    protect: bool = False
    retain_on_delete: bool = False
    ignore_changes: tuple[str, ...] = ()
    provider: str = ""
    # Where each unknown input value comes from: its dotted path (`securityProfile.azureKeyVaultKms.keyId`) ->
    # the URNs of the resources whose outputs it was computed from. The engine keeps dependencies only per
    # top-level property, which names every source of anything under it (the key and, through Defender, the
    # workspace under `securityProfile`); the mock engine records them per value.
    unknown_sources: dict[str, tuple[str, ...]] = field(default_factory=dict)


@dataclass
class RecordedStack:
    """A whole program run: every registration in order, the stack outputs, and the program's error if any."""

    project: str
    stack: str
    resources: list[RecordedResource] = field(default_factory=list)
    outputs: dict[str, Any] = field(default_factory=dict)
    secret_outputs: frozenset[str] = frozenset()
    warnings: list[str] = field(default_factory=list)
    error: str | None = None

    def by_type(self, type_token: str) -> list[RecordedResource]:
        return [r for r in self.resources if r.type == type_token]

    def one(self, type_token: str) -> RecordedResource:
        found = self.by_type(type_token)
        if len(found) != 1:
            raise LookupError(f"expected exactly one {type_token}, found {len(found)}")
        return found[0]

    def by_urn(self) -> dict[str, RecordedResource]:
        return {r.urn: r for r in self.resources}


__all__ = ["SECRET_SIG", "SECRET_SIG_KEY", "UNKNOWN", "RecordedResource", "RecordedStack", "redact_secrets"]


def redact_secrets(value: Any) -> Any:
    """A copy of `value` with every secret replaced by "[secret]", for anything printed or written."""
    if isinstance(value, dict):
        if value.get(SECRET_SIG_KEY) == SECRET_SIG:
            return "[secret]"
        return {key: redact_secrets(item) for key, item in value.items()}
    if isinstance(value, list):
        return [redact_secrets(item) for item in value]
    return value
