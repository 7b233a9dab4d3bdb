"""What every config of this repository shares: the strict model base, constrained strings, and one way to describe
a validation error (its key, what is wrong and what is allowed).

The stack config (`kms_aks.config.stack`) and the fleet config (`kms_aks.config.fleet`) are built on it; each
collects every problem and raises `ConfigError` before a single resource is registered.
"""

from __future__ import annotations

import json
import types
import typing
from collections.abc import Callable
from typing import Annotated, Any

from pydantic import AfterValidator, BaseModel, ConfigDict, StringConstraints
from pydantic.alias_generators import to_camel
from pydantic_core import PydanticCustomError

# Each constrained string, with the rule an error message states when a value breaks it.
PATTERN_RULES: dict[str, str] = {}


def matching(
    pattern: str, rule: str, *, unbounded: str | None = None, within_bounds: Callable[[str], bool] | None = None
) -> Any:
    """A string matching `pattern`, or the error naming `rule`.

    A large Unicode class repeated a bounded number of times (`[-\\w._()]{1,89}`) costs pydantic's regex engine
    about a third of a second to compile, in every process that reads the config (each plan, each `pulumi up`).
    Such a pattern is given as the same pattern with unbounded repeats (`unbounded`, quick to compile) and
    `within_bounds`, which checks the bounds in Python on what `unbounded` matched: together they accept exactly
    what `pattern` accepts, and refuse with `pattern`'s error (tests/test_config.py compares them).
    """
    PATTERN_RULES[pattern] = rule
    if unbounded is None or within_bounds is None:
        return Annotated[str, StringConstraints(strict=True, pattern=pattern)]
    PATTERN_RULES[unbounded] = rule

    def bounded(value: str) -> str:
        if not within_bounds(value):
            raise PydanticCustomError(
                "string_pattern_mismatch", "String should match pattern '{pattern}'", {"pattern": pattern}
            )
        return value

    return Annotated[str, StringConstraints(strict=True, pattern=unbounded), AfterValidator(bounded)]


class StrictModel(BaseModel):
    """camelCase keys as in the YAML, unknown keys refused, no silent coercion."""

    model_config = ConfigDict(alias_generator=to_camel, populate_by_name=True, extra="forbid", frozen=True, strict=True)


class ConfigError(Exception):
    """A config is invalid; `problems` lists each as `<key>: <what is wrong and what is allowed>`."""

    def __init__(self, problems: list[str]) -> None:
        self.problems = problems
        super().__init__(
            f"invalid stack config ({len(problems)} problem{'s' if len(problems) != 1 else ''}):\n"
            + "\n".join(f"  - {p}" for p in problems)
        )


def decode_value(value: Any) -> Any:
    """Pulumi hands every config value over as a string; objects arrive as JSON text."""
    if not isinstance(value, str):
        return value
    text = value.strip()
    if text in ("true", "false"):
        return text == "true"
    if text[:1] in "{[":
        try:
            return json.loads(text)
        except json.JSONDecodeError:
            return value
    return value


def model_of(annotation: Any) -> type[BaseModel] | None:
    """The config model inside a field's annotation (`X | None`, `list[X]`, `Annotated[X, ...]`), if any."""
    if isinstance(annotation, type) and issubclass(annotation, BaseModel):
        return annotation
    if typing.get_origin(annotation) in (typing.Union, types.UnionType, Annotated, list):
        for arg in typing.get_args(annotation):
            found = model_of(arg)
            if found is not None:
                return found
    return None


def model_at(path: list[str], model: type[BaseModel]) -> type[BaseModel] | None:
    """The config model at a key path (`["kmsKey", "rotation"]`) below `model`, walking the models by their YAML
    keys."""
    current: type[BaseModel] | None = model
    for part in path:
        if current is None:
            return None
        fields = {field.alias or name: field for name, field in current.model_fields.items()}
        if part not in fields:
            return None
        current = model_of(fields[part].annotation)
    return current


def allowed_keys(model: type[BaseModel]) -> list[str]:
    """The YAML keys a config block accepts, in the order the model declares them."""
    return [field.alias or name for name, field in model.model_fields.items()]


# A config's own wording for an error, or None for the shared one: (the error's key path, the pydantic error).
Hint = Callable[[list[str], dict[str, Any]], "str | None"]


def describe(error: dict[str, Any], *, namespace: str, root: type[BaseModel], hint: Hint | None = None) -> str:
    """One pydantic error as `<namespace>:<key path>: <what is wrong and what is allowed>`.

    `root` is the config's top model (to list the keys a block allows); `hint` gives a config's own wording for
    an error (e.g. how to quote a YAML value), tried first.
    """
    loc = [str(part) for part in error["loc"] if not str(part).startswith("function-")]
    key = f"{namespace}:" + ".".join(loc) if loc else ""
    message = error["msg"].removeprefix("Value error, ")
    special = hint(loc, error) if hint is not None else None
    if special is not None:
        message = special
    elif error["type"] == "extra_forbidden":
        block = model_at(loc[:-1], root)
        if len(loc) == 1:
            message = f"unknown config key; allowed keys: {', '.join(sorted(allowed_keys(root)))}"
        elif block is not None:
            parent = f"{namespace}:" + ".".join(loc[:-1])
            message = f"unknown setting in {parent}; allowed: {', '.join(allowed_keys(block))}"
        else:
            message = "unknown setting"
    elif error["type"] == "missing":
        message = "required but not set"
    elif error["type"] == "string_pattern_mismatch":
        message = f"must be {PATTERN_RULES.get(error['ctx']['pattern'], 'of the documented form')}"
        message += f" (got {error['input']!r})"
    elif error["type"] == "is_instance_of" and error["ctx"].get("class") == "IPv4Network":
        message = f"must be an IPv4 CIDR range such as 203.0.113.0/24 (got {error['input']!r})"
    elif "input" in error and error["type"] not in ("value_error", "assertion_error") and error["loc"]:
        message = f"{message} (got {error['input']!r})"
    return f"{key}: {message}" if key else message
