"""A stack file as the program reads it: `Pulumi.<stack>.yaml` -> `StackConfig`, in one place.

`stack_config_from_file` is what check-config, plan, rotate-check, `--all` and the cluster tools validate a stack with:
the file read as the Pulumi CLI reads it (`stack_file`), every secret replaced by a stand-in (the offline tools
never decrypt one), then the program's own validation (`kms_aks.config.stack`).
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

from kms_aks.config.stack import StackConfig, parse_stack_config, read_project_config
from kms_aks_tools.project.stack_file import PACKAGE_ROOT, load_stack_file, secret_paths


def stack_config_from_file(stack: str, root: Path = PACKAGE_ROOT) -> StackConfig:
    """The validated config of `stack` (a name or a `Pulumi.<stack>.yaml` path), as the program reads it.

    Raises FileNotFoundError or ValueError (StackFileError) for the file, `kms_aks.config.ConfigError` for what it
    says."""
    raw, _, _ = with_secret_stand_ins(load_stack_file(stack, root))
    return parse_stack_config(read_project_config(raw), provider_location=raw.get("azure-native:location"))


# The offline tools never decrypt a secret (`{secure: ...}`); the program gets a stand-in in its place, marked
# secret, and the plan says so. Where the project documents a secret, the stand-in is a value of its shape, so
# the rest of the config is still checked; elsewhere it is the text `pulumi config` shows, "[secret]".
SECRET_STAND_INS: dict[tuple[str, ...], str] = {("kms-aks:monitoring", "alertWebhooks"): "https://secret.invalid/"}


def with_secret_stand_ins(config: dict[str, Any]) -> tuple[dict[str, Any], list[str], list[str]]:
    """`config` with every secret replaced by its stand-in; the keys holding secrets; one note per secret."""
    replaced: dict[str, Any] = {}
    secret_keys: list[str] = []
    notes: list[str] = []
    for key, value in config.items():
        paths = list(secret_paths(value))
        if not paths:
            replaced[key] = value
            continue
        secret_keys.append(key)
        for path in paths:
            named = tuple(part for part in path if isinstance(part, str))
            stand_in = SECRET_STAND_INS.get((key, *named), "[secret]")
            value = _replace_at(value, path, stand_in)
            shown = key + "".join(f"[{p}]" if isinstance(p, int) else f".{p}" for p in path)
            notes.append(
                f"{shown} is a secret: the offline tools do not decrypt it and use {stand_in!r} in its place; "
                "`pulumi preview` checks the real value"
            )
        replaced[key] = value
    return replaced, secret_keys, notes


def _replace_at(value: Any, path: tuple[str | int, ...], new: Any) -> Any:
    if not path:
        return new
    head, rest = path[0], path[1:]
    if isinstance(value, dict):
        return {**value, head: _replace_at(value[head], rest, new)}
    copy = list(value)
    copy[head] = _replace_at(copy[head], rest, new)  # type: ignore[index]
    return copy
