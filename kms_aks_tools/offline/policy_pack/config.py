"""The pack's config, as the CLI's `--policy-pack-config` reads it and reconciles it before `Configure`."""

from __future__ import annotations

import json
import os
import re
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from kms_aks_tools.cli.exits import UserError
from kms_aks_tools.offline.policy_pack.results import ENFORCEMENT_LEVELS, AnalyzerInfo
from kms_aks_tools.project.stack_file import PACKAGE_ROOT

POLICY_PACK_DIR = PACKAGE_ROOT / "policies"


class PolicyConfigError(UserError, ValueError):
    """A policy config file or mapping is missing, not JSON, or does not fit the pack's policies."""


@dataclass(frozen=True)
class PolicyConfigEntry:
    """One policy's reconciled config: its enforcement level and its options (defaults filled in)."""

    enforcement_level: str
    properties: Mapping[str, Any] = field(default_factory=dict)


# --------------------------------------------------------------------------------------- policy config


def policy_config_path(stack: str, pack_dir: Path = POLICY_PACK_DIR) -> Path:
    """Where the policy config of `stack` lives: `policies/config/<stack>.json`."""
    return Path(pack_dir) / "config" / f"{stack}.json"


def load_policy_config(stack: str | os.PathLike[str], pack_dir: Path = POLICY_PACK_DIR) -> dict[str, Any]:
    """The policy-pack config JSON of a stack (`dev`), or of a path to a `.json` file, parsed and checked
    like the CLI's `--policy-pack-config`: each value is an enforcement level or an object."""
    path = Path(stack) if str(stack).endswith(".json") else policy_config_path(str(stack), pack_dir)
    if not path.is_file():
        known = sorted(p.stem for p in (Path(pack_dir) / "config").glob("*.json"))
        raise PolicyConfigError(
            f"no policy config for {stack}: {path} does not exist (configs: {', '.join(known) or 'none'})"
        )
    text = path.read_text()
    if not text.strip():
        return {}  # the CLI accepts an empty file as "no config"
    try:
        config = json.loads(text)
    except json.JSONDecodeError as error:
        raise PolicyConfigError(
            f"{path}: not valid JSON: {error.msg} at line {error.lineno}, column {error.colno}"
        ) from None
    try:
        return _checked_config(config)
    except PolicyConfigError as error:
        raise PolicyConfigError(f"{path}: {error}") from None


def _checked_config(config: Any) -> dict[str, Any]:
    if not isinstance(config, dict):
        raise PolicyConfigError(f"expected an object of policy names, got {type(config).__name__}")
    for name, value in config.items():
        if isinstance(value, str):
            level = value
        elif isinstance(value, dict):
            level = value.get("enforcementLevel")
        else:
            raise PolicyConfigError(f"{name!r}: {value!r} is not valid; must be an enforcement level or an object")
        if level is not None and level not in ENFORCEMENT_LEVELS:
            raise PolicyConfigError(
                f"{name!r}: {level!r} is not a valid enforcement level ({', '.join(ENFORCEMENT_LEVELS)})"
            )
    return config


def reconcile_policy_config(info: AnalyzerInfo, config: Mapping[str, Any] | None) -> dict[str, PolicyConfigEntry]:
    """Every policy's enforcement level and options, as the CLI computes them before `Configure`:
    the policy's default level and schema defaults, then `"all"`, then each policy's own entry; validated
    against the policy's config schema.

    Stricter than the CLI: an unknown policy name or option is an error, since a typo would silently drop
    a requirement (say, `requireHSM` for `requireHsm`)."""
    config = _checked_config(dict(config or {}))
    result: dict[str, PolicyConfigEntry] = {}
    for policy in info.policies:
        defaults = {k: v["default"] for k, v in policy.config_schema.items() if "default" in v}
        result[policy.name] = PolicyConfigEntry(policy.enforcement_level, defaults)

    all_level = config.get("all")
    if isinstance(all_level, dict):
        if set(all_level) - {"enforcementLevel"}:
            raise PolicyConfigError('"all" takes only an enforcement level')
        all_level = all_level.get("enforcementLevel")
    if all_level is not None:
        result = {name: PolicyConfigEntry(all_level, entry.properties) for name, entry in result.items()}

    errors: list[str] = []
    for name, value in config.items():
        if name == "all":
            continue
        if name not in result:
            errors.append(f"{name}: the pack has no such policy (policies: {', '.join(info.policy_names)})")
            continue
        entry = result[name]
        if isinstance(value, str):
            result[name] = PolicyConfigEntry(value, entry.properties)
            continue
        options = {k: v for k, v in value.items() if k != "enforcementLevel"}
        result[name] = PolicyConfigEntry(
            value.get("enforcementLevel", entry.enforcement_level), {**entry.properties, **options}
        )

    for policy in info.policies:
        properties = result[policy.name].properties
        for option in policy.required:
            if option not in properties:
                errors.append(f"{policy.name}: {option} is required")
        for option, value in properties.items():
            schema = policy.config_schema.get(option)
            if schema is None:
                known = ", ".join(policy.config_schema) or "none"
                errors.append(f"{policy.name}: unknown option {option!r} (options: {known})")
                continue
            errors.extend(f"{policy.name}: {problem}" for problem in _schema_problems(value, schema, option))
    if errors:
        raise PolicyConfigError("invalid policy config:\n  " + "\n  ".join(errors))
    return result


def _schema_problems(value: Any, schema: Mapping[str, Any], path: str) -> list[str]:
    """The JSON Schema keywords the pack's config schemas use: type, enum, minimum, maximum, pattern, items."""
    expected = schema.get("type")
    checks: dict[str, Callable[[Any], bool]] = {
        "boolean": lambda v: isinstance(v, bool),
        "integer": lambda v: isinstance(v, int | float) and not isinstance(v, bool) and float(v).is_integer(),
        "number": lambda v: isinstance(v, int | float) and not isinstance(v, bool),
        "string": lambda v: isinstance(v, str),
        "array": lambda v: isinstance(v, list | tuple),
        "object": lambda v: isinstance(v, dict),
    }
    if expected in checks and not checks[expected](value):
        return [f"{path}: expected {expected}, got {value!r}"]
    problems = []
    if "enum" in schema and value not in schema["enum"]:
        problems.append(f"{path}: {value!r} is not one of {schema['enum']}")
    if "minimum" in schema and isinstance(value, int | float) and value < schema["minimum"]:
        problems.append(f"{path}: {value!r} is less than the minimum {schema['minimum']}")
    if "maximum" in schema and isinstance(value, int | float) and value > schema["maximum"]:
        problems.append(f"{path}: {value!r} is more than the maximum {schema['maximum']}")
    if "pattern" in schema and isinstance(value, str) and not re.search(schema["pattern"], value):
        problems.append(f"{path}: {value!r} does not match {schema['pattern']}")
    if "items" in schema and isinstance(value, list | tuple):
        for position, item in enumerate(value):
            problems.extend(_schema_problems(item, schema["items"], f"{path}[{position}]"))
    return problems
