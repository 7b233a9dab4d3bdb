"""Property values at the stand-in's gRPC edge: decoded once from the engine's `google.protobuf.Struct`, encoded once
on the way back.

On the wire the engine marks a secret as `{"4dabf1...": "1b4706...", "value": v}` and an unknown (computed) value
as the string `04da6b54-...` (`azure_facts.engine`). `decode` turns a request's Struct into plain values in which a
secret is a `Secret` (the one marker the stand-in works with) and an unknown stays `UNKNOWN`; `plain` drops the
secret markers, for the builders; `mark_secrets` marks the outputs that carry a secret input's value; `encode` turns
the answer back into the engine's form. The stand-in keeps the markers where azure-native keeps them
(`KeepSecrets`/`KeepUnknowns`).

`from_struct`, `to_struct` and `secret` are the engine's side of the wire, for whoever stands in for the engine.
"""

from __future__ import annotations

from typing import Any

from google.protobuf import json_format, struct_pb2

from azure_facts.engine import SECRET_SIG, UNKNOWN, Secret
from azure_facts.engine import SECRET_SIG_KEY as SIG_KEY

__all__ = ["SECRET_SIG", "SIG_KEY", "UNKNOWN", "Secret"]


# ------------------------------------------------------------------------------------------------ the edge


def decode(message: struct_pb2.Struct | None, *, skip_nulls: bool = False) -> dict[str, Any]:
    """A request's properties as plain values, each secret a `Secret`; `skip_nulls` drops null properties
    (azure-native unmarshals its inputs with SkipNulls)."""
    if message is None:
        return {}
    values = _from_wire(json_format.MessageToDict(message))
    return without_nulls(values) if skip_nulls else values


def encode(values: dict[str, Any], *, skip_nulls: bool = False) -> struct_pb2.Struct:
    """Plain values (secrets as `Secret`) as the Struct the engine reads; `skip_nulls` as azure-native marshals its
    state: a null output is absent."""
    wire = _to_wire(values)
    return to_struct(without_nulls(wire) if skip_nulls else wire)


def _from_wire(value: Any) -> Any:
    if _is_wire_secret(value):
        return Secret(_from_wire(value.get("value")))
    if isinstance(value, dict):
        return {k: _from_wire(v) for k, v in value.items()}
    if isinstance(value, list):
        return [_from_wire(v) for v in value]
    return value


def _to_wire(value: Any) -> Any:
    if isinstance(value, Secret):
        return secret(_to_wire(value.value))
    if isinstance(value, dict):
        return {k: _to_wire(v) for k, v in value.items()}
    if isinstance(value, list):
        return [_to_wire(v) for v in value]
    return value


def without_nulls(value: Any) -> Any:
    """azure-native marshals with SkipNulls: a null property is absent (inside a secret too; a secret stays)."""
    if isinstance(value, Secret):
        return Secret(without_nulls(value.value))
    if isinstance(value, dict):
        return {k: without_nulls(v) for k, v in value.items() if v is not None}
    if isinstance(value, list):
        return [without_nulls(v) for v in value]
    return value


# ------------------------------------------------------------------------------------------------ plain values


def is_secret(value: Any) -> bool:
    return isinstance(value, Secret)


def plain(value: Any) -> Any:
    """`value` without its secret markers: what a builder or a rule sees."""
    if isinstance(value, Secret):
        return plain(value.value)
    if isinstance(value, dict):
        return {k: plain(v) for k, v in value.items()}
    if isinstance(value, list):
        return [plain(v) for v in value]
    return value


def _holds(value: Any, found: Any) -> bool:
    """Whether `found` holds for `value` or anything in it (inside a secret too)."""
    if found(value):
        return True
    if isinstance(value, Secret):
        return _holds(value.value, found)
    if isinstance(value, dict):
        return any(_holds(v, found) for v in value.values())
    if isinstance(value, list):
        return any(_holds(v, found) for v in value)
    return False


def contains_secret(value: Any) -> bool:
    return _holds(value, lambda v: isinstance(v, Secret))


def contains_unknown(value: Any) -> bool:
    return _holds(value, lambda v: v == UNKNOWN)


def secret_leaves(value: Any, inside: bool = False) -> set[str]:
    """The plain string values that sit under a secret marker (to find them again in outputs)."""
    if isinstance(value, Secret):
        return secret_leaves(value.value, True)
    if isinstance(value, dict):
        return set().union(*(secret_leaves(v, inside) for v in value.values())) if value else set()
    if isinstance(value, list):
        return set().union(*(secret_leaves(v, inside) for v in value)) if value else set()
    return {value} if inside and isinstance(value, str) and value else set()


def mark_secrets(outputs: dict[str, Any], inputs: dict[str, Any]) -> dict[str, Any]:
    """Outputs (plain) with every value that came from a secret input marked secret again.

    The engine does the same for top-level properties (`annotateSecrets` in pulumi/pulumi
    `pkg/resource/plugin/provider_plugin.go`); the stand-in also marks any nested output that carries a
    secret input's value (Key outputs are flat where its inputs nest under `properties`), so no secret
    ever reaches the state or a log in plain text.
    """
    leaves = secret_leaves(inputs)

    def wrap(value: Any) -> Any:
        if isinstance(value, Secret):
            return value
        if isinstance(value, dict):
            return {k: wrap(v) for k, v in value.items()}
        if isinstance(value, list):
            return [wrap(v) for v in value]
        if isinstance(value, str) and any(leaf in value for leaf in leaves):
            return Secret(value)
        return value

    marked = {}
    for key, value in outputs.items():
        if key in inputs and contains_secret(inputs[key]) and not isinstance(value, Secret):
            marked[key] = Secret(value)
        else:
            marked[key] = wrap(value) if leaves else value
    return marked


# ------------------------------------------------------------------------------------------------ the engine's side


def _is_wire_secret(value: Any) -> bool:
    return isinstance(value, dict) and value.get(SIG_KEY) == SECRET_SIG


def from_struct(message: struct_pb2.Struct | None) -> dict[str, Any]:
    """A Struct as the engine's dict (secrets as the engine's markers)."""
    return {} if message is None else json_format.MessageToDict(message)


def to_struct(value: dict[str, Any]) -> struct_pb2.Struct:
    """The engine's dict as a Struct."""
    message = struct_pb2.Struct()
    message.update(value)
    return message


def secret(value: Any) -> dict[str, Any]:
    """`value` marked secret as the engine marks it on the wire."""
    return value if _is_wire_secret(value) else {SIG_KEY: SECRET_SIG, "value": value}
