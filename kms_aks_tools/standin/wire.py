"""Property values as the engine sends them: `google.protobuf.Struct` with secret and unknown markers.

The engine encodes a secret as `{"4dabf1...": "1b4706...", "value": v}` and an unknown (computed) value
as the string `04da6b54-...` (`azure_facts.engine`). The stand-in keeps
those markers where azure-native keeps them (`KeepSecrets`/`KeepUnknowns`), and hands the mock
builders plain values.
"""

from __future__ import annotations

from typing import Any

from google.protobuf import json_format, struct_pb2

from azure_facts.engine import SECRET_SIG, UNKNOWN
from azure_facts.engine import SECRET_SIG_KEY as SIG_KEY

__all__ = ["SECRET_SIG", "SIG_KEY", "UNKNOWN"]


def from_struct(message: struct_pb2.Struct | None, *, keep_secrets: bool = True, skip_nulls: bool = False) -> dict:
    """A Struct as a dict. `keep_secrets=False` unwraps secret markers; `skip_nulls` drops null properties."""
    if message is None:
        return {}
    value = json_format.MessageToDict(message)
    if not keep_secrets:
        value = unwrap_secrets(value)
    if skip_nulls:
        value = without_nulls(value)
    return value


def to_struct(value: dict[str, Any], *, skip_nulls: bool = False) -> struct_pb2.Struct:
    message = struct_pb2.Struct()
    message.update(without_nulls(value) if skip_nulls else value)
    return message


def is_secret(value: Any) -> bool:
    return isinstance(value, dict) and value.get(SIG_KEY) == SECRET_SIG


def secret(value: Any) -> dict[str, Any]:
    return value if is_secret(value) else {SIG_KEY: SECRET_SIG, "value": value}


def unwrap_secrets(value: Any) -> Any:
    if is_secret(value):
        return unwrap_secrets(value.get("value"))
    if isinstance(value, dict):
        return {k: unwrap_secrets(v) for k, v in value.items()}
    if isinstance(value, list):
        return [unwrap_secrets(v) for v in value]
    return value


def contains_secret(value: Any) -> bool:
    if is_secret(value):
        return True
    if isinstance(value, dict):
        return any(contains_secret(v) for v in value.values())
    if isinstance(value, list):
        return any(contains_secret(v) for v in value)
    return False


def contains_unknown(value: Any) -> bool:
    if value == UNKNOWN:
        return True
    if isinstance(value, dict):
        return any(contains_unknown(v) for v in value.values())
    if isinstance(value, list):
        return any(contains_unknown(v) for v in value)
    return False


def secret_leaves(value: Any, inside: bool = False) -> set[str]:
    """The plain string values that sit under a secret marker (to find them again in outputs)."""
    if is_secret(value):
        return secret_leaves(value.get("value"), True)
    if isinstance(value, dict):
        return set().union(*(secret_leaves(v, inside) for v in value.values())) if value else set()
    if isinstance(value, list):
        return set().union(*(secret_leaves(v, inside) for v in value)) if value else set()
    return {value} if inside and isinstance(value, str) and value else set()


def mark_secrets(outputs: dict[str, Any], inputs: dict[str, Any]) -> dict[str, Any]:
    """Outputs with every value that came from a secret input wrapped as a secret again.

    The engine does the same for top-level properties (`annotateSecrets` in pulumi/pulumi
    `pkg/resource/plugin/provider_plugin.go`); the stand-in also wraps any nested output that carries a
    secret input's value (Key outputs are flat where its inputs nest under `properties`), so no secret
    ever reaches the state or a log in plain text.
    """
    leaves = secret_leaves(inputs)

    def wrap(value: Any) -> Any:
        if is_secret(value):
            return value
        if isinstance(value, dict):
            return {k: wrap(v) for k, v in value.items()}
        if isinstance(value, list):
            return [wrap(v) for v in value]
        if isinstance(value, str) and any(leaf in value for leaf in leaves):
            return secret(value)
        return value

    marked = {}
    for key, value in outputs.items():
        if key in inputs and contains_secret(inputs[key]) and not is_secret(value):
            marked[key] = secret(value)
        else:
            marked[key] = wrap(value) if leaves else value
    return marked


def without_nulls(value: Any) -> Any:
    """azure-native marshals its state with SkipNulls: a null output is absent."""
    if isinstance(value, dict):
        return {k: without_nulls(v) for k, v in value.items() if v is not None}
    if isinstance(value, list):
        return [without_nulls(v) for v in value]
    return value
