"""The project and its stack files, read exactly as the Pulumi CLI (v3.274.1) reads them.

    root = find_project(Path.cwd())          # the nearest Pulumi.yaml, from here upward, as `pulumi` finds it
    stack_names(root)                        # ["dev", "prod"]: one Pulumi.<stack>.yaml each
    config = load_stack_file("dev", root)    # {"kms-aks:location": "westeurope", "kms-aks:cluster": {...}, ...}

`load_stack_file` gives the values the CLI gives the program (what `pulumi config --json` shows), not what a
YAML 1.1 parser such as `yaml.safe_load` makes of the file. The CLI's rules, from its source
(sdk/go/common/workspace/loaders.go `LoadProjectStackBytes`, sdk/go/common/resource/config/object.go and
value.go, with gopkg.in/yaml.v3 v3.0.1 resolve.go/decode.go/encode.go):

- The file is decoded with Go's yaml.v3: `yes`, `no`, `on`, `off`, `y`, `n` stay strings; only `true`/`false`
  (also `True`, `TRUE`, ...) are booleans; `null`, `~`, `Null`, `NULL` and nothing at all are null;
  `0777` and `0o777` are octal, `0x1F` hex, `0b101` binary, `1_000` is 1000; floats are decimal or
  exponent forms (`1.30` is the float 1.3), `.inf`/`.nan` included.
- An unnamespaced key is the project's: `protectKmsResources: false` is `kms-aks:protectKmsResources`.
- The config is then encoded as YAML again and decoded a second time (the namespacing step), so a float is
  written as Go's `strconv.FormatFloat(f, 'g', -1, 64)` and read back: `1000.0` comes back as the integer 1000.
- An unquoted date or timestamp is a Go `time.Time`, and a config value keeps its `String()`:
  `expiresOn: 2027-06-01` is the string `2027-06-01 00:00:00 +0000 UTC`.
- A top-level value is a string, as the program receives it: `false` is `"false"`, `1.30` is `"1.3"`, null is
  `""` (the CLI warns "No value for configuration key"). Objects and lists keep their JSON values.
- `{secure: <ciphertext>}` (a map with that single string key) is a secret: `Secure(ciphertext)` here; this
  module never decrypts.
- A map key that is not a string is named as Go's fmt prints it (`true: x` is `"true": x`; `1.30:` is "1.3").
- A duplicate key, or a config key with more than one `:`, is refused, as the CLI refuses it.

Timestamps with a numeric offset other than zero print as Go prints a fixed zone (`-0500 -0500`); this assumes
the CLI runs with a UTC local time zone, as CI runners and containers do.
"""

from __future__ import annotations

import copy
import functools
import json
import math
import re
from collections.abc import Iterator
from dataclasses import dataclass
from datetime import datetime, timedelta
from decimal import Decimal
from pathlib import Path
from typing import Any

import yaml

from kms_aks_tools.cli.exits import UserError

# The checkout this package was installed from (editable, as `make` installs it): the default root of the functions
# below when none is given, and the one definition of the repository root the tools use (policies/, e2e/, .venv).
PACKAGE_ROOT = Path(__file__).resolve().parents[2]

# `pulumi` looks for these, in this order, in the working directory and then in each parent
# (sdk/go/common/workspace/paths.go: ProjectFileNames / DetectProjectPathFrom).
PROJECT_FILE_NAMES = ("Pulumi.yaml", "Pulumi.yml", "Pulumi.json")


class StackFileError(UserError, ValueError):
    """`Pulumi.<stack>.yaml` cannot be read as the CLI reads it: one message naming the file, key or line."""


class ProjectNotFoundError(UserError, FileNotFoundError):
    """No Pulumi.yaml in a folder or any of its parents."""


@dataclass(frozen=True)
class Secure:
    """A secret config value (`{secure: <ciphertext>}`), kept encrypted: the offline tools never decrypt."""

    ciphertext: str

    def __repr__(self) -> str:  # never the ciphertext in a log either
        return "Secure([secret])"


# ------------------------------------------------------------------------------------------------ project


def find_project(cwd: Path | str) -> Path:
    """The project folder `pulumi` would use when run in `cwd`: the nearest folder, upward, with a Pulumi.yaml."""
    start = Path(cwd).resolve()
    for folder in (start, *start.parents):
        if any((folder / name).is_file() for name in PROJECT_FILE_NAMES):
            return folder
    raise ProjectNotFoundError(
        f"no Pulumi.yaml in {start} or any folder above it: run kms-aks inside the project, or pass --cwd <project>"
    )


def _project_file(root: Path) -> Path | None:
    return next((root / name for name in PROJECT_FILE_NAMES if (root / name).is_file()), None)


def project_settings(root: Path) -> dict[str, Any]:
    """Pulumi.yaml as a mapping (name, stackConfigDir, ...); empty when there is none."""
    path = _project_file(Path(root))
    if path is None:
        return {}
    try:
        document = yaml.safe_load(path.read_text())
    except yaml.YAMLError as error:
        raise StackFileError(f"{path}: not valid YAML: {error}") from None
    return document if isinstance(document, dict) else {}


def project_name(root: Path) -> str:
    """The project's name (Pulumi.yaml `name:`): the namespace of an unnamespaced config key."""
    name = project_settings(root).get("name")
    if not isinstance(name, str) or not name:
        raise StackFileError(f"{Path(root) / 'Pulumi.yaml'}: no `name:`; the CLI needs a project name")
    return name


def stack_config_dir(root: Path) -> Path:
    """Where the stack files live: the project folder, or Pulumi.yaml's `stackConfigDir`."""
    configured = project_settings(root).get("stackConfigDir")
    return Path(root) / configured if isinstance(configured, str) and configured else Path(root)


def stack_names(root: Path = PACKAGE_ROOT) -> list[str]:
    """The stacks this project has: one `Pulumi.<stack>.yaml` each."""
    folder = stack_config_dir(root)
    return sorted(p.name[len("Pulumi.") : -len(".yaml")] for p in folder.glob("Pulumi.*.yaml"))


def check_stack(stack: str, root: Path) -> str:
    """The stack's name; raises FileNotFoundError naming the stacks there are when `stack` is not one of them
    (a path to a .yaml file is taken as it is)."""
    if stack.endswith((".yaml", ".yml")):
        return Path(stack).stem.removeprefix("Pulumi.")
    known = stack_names(root)
    if stack not in known:
        raise FileNotFoundError(f"unknown stack {stack!r}; stacks: {', '.join(known) or 'none'} (in {root})")
    return stack


def stack_file_path(stack: str, root: Path = PACKAGE_ROOT) -> Path:
    """`Pulumi.<stack>.yaml` of the project, or `stack` itself when it is a path to a .yaml file."""
    return Path(stack) if stack.endswith((".yaml", ".yml")) else stack_config_dir(root) / f"Pulumi.{stack}.yaml"


def load_stack_file(stack: str, root: Path = PACKAGE_ROOT) -> dict[str, Any]:
    """The config of `Pulumi.<stack>.yaml` (or of a path to such a file) as the CLI gives it to the program.

    Keys are namespaced (`kms-aks:cluster`); values as the module docstring says. Raises FileNotFoundError
    for a missing file and StackFileError for anything the CLI would refuse.
    """
    path = stack_file_path(stack, root)
    if not path.is_file():
        known = ", ".join(stack_names(root)) or "none"
        raise FileNotFoundError(f"no stack {stack!r}: {path.name} does not exist (stacks: {known})")
    text = path.read_text(encoding="utf-8-sig")  # the CLI strips a UTF-8 byte order mark too
    return parse_stack_text(text, path.name, project=project_name(root))


def parse_stack_text(text: str, file_name: str, *, project: str) -> dict[str, Any]:
    """`load_stack_file` on text: `file_name` names it in messages, `project` namespaces bare keys."""
    # A process that plans many stacks, or one stack many times, reads the same few files again and again: each
    # text is parsed once (the parser is pure Python), and every caller gets its own copy to change.
    return copy.deepcopy(_parsed_stack_text(text, file_name, project))


@functools.lru_cache(maxsize=64)
def _parsed_stack_text(text: str, file_name: str, project: str) -> dict[str, Any]:
    try:
        node = yaml.compose(text, Loader=_GoYamlLoader)
    except yaml.MarkedYAMLError as error:
        raise StackFileError(_yaml_problem(file_name, text, error)) from None
    except yaml.YAMLError as error:
        raise StackFileError(f"{file_name}: not valid YAML: {error}") from None
    if node is None:
        return {}
    decoder = _GoDecoder(file_name)
    _check_config_keys(node, decoder)
    document = decoder.decode(node, [])
    if document is None:
        return {}
    if not isinstance(document, dict):
        raise StackFileError(f"{file_name}: expected a mapping with a `config:` mapping")
    config = document.get("config")
    if config is None:
        return {}
    if not isinstance(config, dict):
        raise StackFileError(f"{file_name}: `config:` must be a mapping of keys to values")
    result: dict[str, Any] = {}
    for key, value in config.items():
        full = key if ":" in key else f"{project}:{key}"
        if full.count(":") == 2 and full.split(":")[1] == "config":
            full = full.replace(":config:", ":", 1)  # the old `<namespace>:config:<name>` form
        elif full.count(":") != 1:
            raise StackFileError(
                f"{file_name}: config key {key!r}: configuration keys should be of the form `<namespace>:<name>`"
            )
        if full in result:
            raise StackFileError(f"{file_name}: config key {full!r} is set twice ({key!r} is the same key)")
        try:
            result[full] = _top_level(_second_pass(value))
        except StackFileError as error:
            raise StackFileError(f"{file_name}: config key {full!r}: {error}") from None
    return result


# ------------------------------------------------------------------------------------------------ values


def to_engine_text(value: Any) -> str:
    """A config value as the CLI hands it to the program: strings as they are, anything else as Go's JSON."""
    if isinstance(value, str):
        return value
    if isinstance(value, Secure):
        raise TypeError("a secret is not sent in plain text; replace it first")
    return go_json(value)


def go_json(value: Any) -> str:
    """`encoding/json.Marshal` of a config value: compact, map keys sorted, floats as Go writes them."""
    if isinstance(value, bool):
        return "true" if value else "false"
    if value is None:
        return "null"
    if isinstance(value, int):
        return str(value)
    if isinstance(value, float):
        return _go_json_float(value)
    if isinstance(value, str):
        return (
            json.dumps(value, ensure_ascii=False)
            .replace("<", "\\u003c")
            .replace(">", "\\u003e")
            .replace("&", "\\u0026")
        )
    if isinstance(value, Secure):
        return go_json({"secure": value.ciphertext})
    if isinstance(value, list):
        return "[" + ",".join(go_json(item) for item in value) + "]"
    if isinstance(value, dict):
        return "{" + ",".join(f"{go_json(str(k))}:{go_json(v)}" for k, v in sorted(value.items())) + "}"
    raise TypeError(f"not a config value: {type(value).__name__}")


def contains_secret(value: Any) -> bool:
    return any(True for _ in secret_paths(value))


def secret_paths(value: Any, path: tuple[str | int, ...] = ()) -> Iterator[tuple[str | int, ...]]:
    """Where the secrets are inside a config value (`("alertWebhooks", 0)`)."""
    if isinstance(value, Secure):
        yield path
    elif isinstance(value, dict):
        for key, item in value.items():
            yield from secret_paths(item, (*path, key))
    elif isinstance(value, list):
        for index, item in enumerate(value):
            yield from secret_paths(item, (*path, index))


def blinded(value: Any) -> Any:
    """The value as `pulumi config` shows it without --show-secrets: every secret as "[secret]"."""
    if isinstance(value, Secure):
        return "[secret]"
    if isinstance(value, dict):
        return {key: blinded(item) for key, item in value.items()}
    if isinstance(value, list):
        return [blinded(item) for item in value]
    return value


def cli_json(config: dict[str, Any]) -> dict[str, dict[str, Any]]:
    """`pulumi config --json` of this config (no --show-secrets): value, objectValue and secret per key."""
    shown: dict[str, dict[str, Any]] = {}
    for key in sorted(config):
        value = config[key]
        entry: dict[str, Any] = {"secret": contains_secret(value)}
        if not entry["secret"]:
            entry["value"] = to_engine_text(value)
            if isinstance(value, dict | list):
                entry["objectValue"] = json.loads(go_json(value))
        shown[key] = entry
    return shown


def _top_level(value: Any) -> Any:
    # A top-level scalar is the config Value's string (object.MarshalString); null is the zero Value, "".
    if value is None:
        return ""
    if isinstance(value, bool | int | float):
        return go_json(value)
    return value


def _second_pass(value: Any) -> Any:
    """What the CLI's encode-then-decode of the namespaced config makes of a first-pass value."""
    if isinstance(value, dict):
        return {key: _second_pass(item) for key, item in value.items()}
    if isinstance(value, list):
        return [_second_pass(item) for item in value]
    if isinstance(value, GoTime):
        return value.go_string()  # RFC 3339 out, a time.Time again in, then object.unmarshalObject's String()
    if isinstance(value, int) and not isinstance(value, bool) and value > _INT64[1]:
        # A uint64 beyond int64 comes back from the config's JSON (json.Number: Int64 fails) as a float64.
        return json.loads(_go_json_float(float(value)))
    if isinstance(value, float):
        text = _go_format_g(value)  # yaml.v3's encoder
        if text in ("NaN", "+Inf", "-Inf"):
            raise StackFileError(f"{text} cannot reach the program: the CLI passes config as JSON, which has no {text}")
        again = resolve_plain(text)
        # Go's json.Marshal then writes the float; read back as the program reads that JSON.
        return again if not isinstance(again, float) else json.loads(_go_json_float(again))
    return value


# ------------------------------------------------------------------------------------------------ yaml.v3


_GO_FLOAT = re.compile(r"^[-+]?(\.[0-9]+|[0-9]+(\.[0-9]*)?)([eE][-+]?[0-9]+)?$")  # yaml.v3 yamlStyleFloat
_RESOLVE_MAP: dict[str, Any] = {
    **dict.fromkeys(("true", "True", "TRUE"), True),
    **dict.fromkeys(("false", "False", "FALSE"), False),
    **dict.fromkeys(("", "~", "null", "Null", "NULL"), None),
    **dict.fromkeys((".nan", ".NaN", ".NAN"), math.nan),
    **dict.fromkeys((".inf", ".Inf", ".INF", "+.inf", "+.Inf", "+.INF"), math.inf),
    **dict.fromkeys(("-.inf", "-.Inf", "-.INF"), -math.inf),
}
_INT64 = (-(2**63), 2**63 - 1)
_UINT64_MAX = 2**64 - 1


def resolve_plain(text: str) -> Any:
    """yaml.v3's `resolve("", text)` for a plain (unquoted, untagged) scalar."""
    if text in _RESOLVE_MAP:
        return _RESOLVE_MAP[text]
    first = text[:1]
    if first == ".":
        if re.fullmatch(r"\.[0-9]+([eE][-+]?[0-9]+)?", text):
            return float(text)
        return text
    if not (first.isdigit() and first.isascii()) and first not in "+-":
        return text  # the resolver table sends everything else (and y/n/yes/no/on/off) to strings
    when = GoTime.parse(text)
    if when is not None:
        return when
    plain = text.replace("_", "")
    number = _go_parse_int(plain)
    # ParseInt (int64, sign allowed), then ParseUint (no sign, up to 2**64 - 1); out of range falls to float.
    fits_int64 = number is not None and _INT64[0] <= number <= _INT64[1]
    fits_uint64 = number is not None and 0 <= number <= _UINT64_MAX and not plain.startswith(("+", "-"))
    if fits_int64 or fits_uint64:
        return number
    if _GO_FLOAT.match(plain):
        return float(plain)
    return text


def _go_parse_int(text: str) -> int | None:
    """`strconv.ParseInt(text, 0, 64)` / `ParseUint` without the range check: sign, then 0b/0o/0x/0 prefixes."""
    match = re.fullmatch(r"([-+]?)(0[bB][01]+|0[oO][0-7]+|0[xX][0-9a-fA-F]+|0[0-7]*|[1-9][0-9]*)", text)
    if match is None:
        return None
    sign, digits = match.groups()
    if len(digits) > 1 and digits[0] == "0" and digits[1] in "bBoOxX":
        magnitude = int(digits[2:], {"b": 2, "o": 8, "x": 16}[digits[1].lower()])
    elif digits.startswith("0"):
        magnitude = int(digits, 8)  # `0777`: YAML 1.1 octal, still decoded by yaml.v3
    else:
        magnitude = int(digits)
    return -magnitude if sign == "-" else magnitude


def _go_format_g(value: float) -> str:
    """`strconv.FormatFloat(value, 'g', -1, 64)`: shortest digits, %e when the exponent is < -4 or >= 6."""
    if math.isnan(value):
        return "NaN"
    if math.isinf(value):
        return "+Inf" if value > 0 else "-Inf"
    digits, exponent = _shortest_digits(value)
    if exponent < -4 or exponent >= 6:  # shortest: Go decides with a precision of 6 (ftoa.go formatDigits)
        return _e_form(value, digits, exponent)
    return _f_form(value, digits, exponent)


def _go_json_float(value: float) -> str:
    """encoding/json's float64: 'f' form unless |value| < 1e-6 or >= 1e21, then 'e' with a 1- or 2-digit exponent."""
    digits, exponent = _shortest_digits(value)
    if value != 0 and (abs(value) < 1e-6 or abs(value) >= 1e21):
        text = _e_form(value, digits, exponent)
        return re.sub(r"e-0(\d)$", r"e-\g<1>", text)  # Go cleans up e-07 to e-7 (only negative exponents)
    return _f_form(value, digits, exponent)


def _shortest_digits(value: float) -> tuple[str, int]:
    """The shortest digits that read back as `value` (repr's, as Go's shortest formatting) and the decimal
    exponent of the first one: 1300.0 -> ("13", 3), 0.0005 -> ("5", -4)."""
    if value == 0:
        return "0", 0
    _, digit_tuple, exponent = Decimal(repr(abs(value))).normalize().as_tuple()
    digits = "".join(str(d) for d in digit_tuple)
    return digits, len(digits) - 1 + int(exponent)


def _e_form(value: float, digits: str, exponent: int) -> str:
    sign = "-" if value < 0 else ""
    mantissa = digits[0] + ("." + digits[1:] if len(digits) > 1 else "")
    return f"{sign}{mantissa}e{'-' if exponent < 0 else '+'}{abs(exponent):02d}"


def _f_form(value: float, digits: str, exponent: int) -> str:
    sign = "-" if value < 0 and value != 0 else ""
    if digits == "0":
        return "-0" if math.copysign(1, value) < 0 else "0"
    if exponent >= 0:
        whole = digits[: exponent + 1].ljust(exponent + 1, "0")
        fraction = digits[exponent + 1 :]
    else:
        whole = "0"
        fraction = "0" * (-exponent - 1) + digits
    return f"{sign}{whole}{'.' + fraction if fraction else ''}"


@dataclass(frozen=True)
class GoTime:
    """A timestamp as yaml.v3 decodes it (time.Time), and the text Go's `Time.String()` gives it."""

    moment: datetime  # naive, wall clock in `offset`
    nanos: int
    offset_minutes: int

    # yaml.v3's allowedTimestampFormats: "2006-1-2T15:4:5.999999999Z07:00" (also a lower-case t),
    # "2006-1-2 15:4:5.999999999" and "2006-1-2".
    _FORMAT = re.compile(
        r"(\d{4})-(\d{1,2})-(\d{1,2})"
        r"(?:[Tt](\d{1,2}):(\d{1,2}):(\d{1,2})(?:[.,](\d+))?(Z|[+-]\d{2}:\d{2})"
        r"| (\d{1,2}):(\d{1,2}):(\d{1,2})(?:[.,](\d+))?)?"
    )

    @classmethod
    def parse(cls, text: str) -> GoTime | None:
        match = cls._FORMAT.fullmatch(text)
        if match is None:
            return None
        year, month, day = (int(g) for g in match.group(1, 2, 3))
        if match[4] is not None:
            hour, minute, second, fraction, zone = match[4], match[5], match[6], match[7], match[8]
        else:
            hour, minute, second, fraction, zone = match[9] or 0, match[10] or 0, match[11] or 0, match[12], "Z"
        try:
            moment = datetime(year, month, day, int(hour), int(minute), int(second))
        except ValueError:
            return None  # Go's time.Parse refuses a day or hour out of range: then it is no timestamp
        nanos = int((fraction or "0")[:9].ljust(9, "0"))
        offset = 0 if zone == "Z" else (1 if zone[0] == "+" else -1) * (int(zone[1:3]) * 60 + int(zone[4:6]))
        if zone != "Z" and (int(zone[1:3]) > 23 or int(zone[4:6]) > 59):
            return None
        return cls(moment, nanos, offset)

    def go_string(self) -> str:
        """`Time.String()`: "2006-01-02 15:04:05.999999999 -0700 MST"; a zero offset is UTC."""
        fraction = f".{self.nanos:09d}".rstrip("0") if self.nanos else ""
        sign = "-" if self.offset_minutes < 0 else "+"
        numeric = f"{sign}{abs(self.offset_minutes) // 60:02d}{abs(self.offset_minutes) % 60:02d}"
        zone = "UTC" if self.offset_minutes == 0 else numeric
        return f"{self.moment:%Y-%m-%d %H:%M:%S}{fraction} {numeric} {zone}"

    def utc(self) -> datetime:
        return self.moment - timedelta(minutes=self.offset_minutes)


class _GoYamlLoader(yaml.SafeLoader):
    """PyYAML's parser and composer with no YAML 1.1 resolution: every plain scalar is tagged `!go-plain`, and
    `_GoDecoder` resolves it with yaml.v3's rules."""


_GoYamlLoader.yaml_implicit_resolvers = {}
_GoYamlLoader.add_implicit_resolver("!go-plain", re.compile(r".*", re.S), None)

_STR, _INT, _FLOAT, _BOOL, _NULL, _MAP, _SEQ, _TIMESTAMP = (
    f"tag:yaml.org,2002:{name}" for name in ("str", "int", "float", "bool", "null", "map", "seq", "timestamp")
)


class _GoDecoder:
    """Turns composed nodes into values as yaml.v3 decodes a document into `any` (first pass)."""

    def __init__(self, file_name: str) -> None:
        self.file_name = file_name

    def fail(self, node: yaml.Node, message: str) -> StackFileError:
        mark = node.start_mark
        return StackFileError(f"{self.file_name}:{mark.line + 1}:{mark.column + 1}: {message}")

    def decode(self, node: yaml.Node, path: list[yaml.Node]) -> Any:
        if any(node is seen for seen in path):
            raise self.fail(node, "an alias refers to itself (a recursive structure)")
        if isinstance(node, yaml.ScalarNode):
            return self.scalar(node)
        if isinstance(node, yaml.SequenceNode):
            return [self.decode(item, [*path, node]) for item in node.value]
        if isinstance(node, yaml.MappingNode):
            return self.mapping(node, [*path, node])
        raise self.fail(node, "unsupported YAML node")

    def scalar(self, node: yaml.ScalarNode) -> Any:
        tag = node.tag
        if tag == "!go-plain":
            return resolve_plain(node.value)
        if tag == _STR:
            return node.value  # quoted, a block scalar, or `!!str`
        if tag in (_INT, _FLOAT, _BOOL, _NULL, _TIMESTAMP):
            value = resolve_plain(node.value)
            expected = {_INT: int, _FLOAT: (int, float), _BOOL: bool, _NULL: type(None), _TIMESTAMP: GoTime}[tag]
            if (isinstance(value, bool) and tag != _BOOL) or not isinstance(value, expected):
                raise self.fail(node, f"cannot decode {node.value!r} as {tag.rsplit(':', 1)[-1]}")
            return float(value) if tag == _FLOAT else value
        raise self.fail(node, f"unsupported tag {tag}")

    def mapping(self, node: yaml.MappingNode, path: list[yaml.Node]) -> dict[str, Any]:
        result: dict[str, Any] = {}
        seen: dict[str, yaml.Node] = {}
        merged: dict[str, Any] = {}
        for key_node, value_node in node.value:
            if isinstance(key_node, yaml.ScalarNode) and key_node.tag == "!go-plain" and key_node.value == "<<":
                sources = value_node.value if isinstance(value_node, yaml.SequenceNode) else [value_node]
                for source in sources:
                    value = self.decode(source, path)
                    if not isinstance(value, dict):
                        raise self.fail(source, "map merge requires map or sequence of maps as the value")
                    merged = {**value, **merged}
                continue
            key = self.decode(key_node, path)
            if not isinstance(key, str):
                # A nested map with a non-string key stays a map[interface{}]interface{} until object.go's
                # unmarshalObject names each key with fmt's %v (after the second pass): `true` -> "true".
                key = _go_key_text(key)
            if key in seen:
                line = seen[key].start_mark.line + 1
                raise self.fail(key_node, f'mapping key "{key}" already defined at line {line}')
            seen[key] = key_node
            result[key] = self.decode(value_node, path)
        if merged:
            result = {**merged, **result}
        if len(result) == 1 and isinstance(result.get("secure"), str):
            return Secure(result["secure"])  # type: ignore[return-value]  # object.go isSecureValue
        return result


def _check_config_keys(node: yaml.Node, decoder: _GoDecoder) -> None:
    # The config map's own keys must be strings: a `1:` or `true:` there is no `<namespace>:<name>` for the CLI.
    if not isinstance(node, yaml.MappingNode):
        return
    for key_node, value_node in node.value:
        if (
            isinstance(key_node, yaml.ScalarNode)
            and key_node.value == "config"
            and isinstance(value_node, yaml.MappingNode)
        ):
            for config_key, _ in value_node.value:
                if not isinstance(config_key, yaml.ScalarNode) or not isinstance(decoder.scalar(config_key), str):
                    raise decoder.fail(config_key, "configuration keys should be of the form `<namespace>:<name>`")


def _go_key_text(key: Any) -> str:
    """fmt's %v of a map key as the second pass decodes it (a first-pass key written out and read back)."""
    if isinstance(key, GoTime):
        return key.go_string()
    if isinstance(key, float):
        key = resolve_plain(_go_format_g(key))  # 1000.0 comes back as the integer 1000
    if key is None:
        return "<nil>"
    if isinstance(key, bool):
        return "true" if key else "false"
    if isinstance(key, float):
        return _go_format_g(key)
    return str(key)


def _yaml_problem(file_name: str, text: str, error: yaml.MarkedYAMLError) -> str:
    # PyYAML marks are 0-based; say it as an editor would.
    mark = error.problem_mark or error.context_mark
    what = " ".join(part for part in (error.context, error.problem) if part) or "not valid YAML"
    if mark is None:
        return f"{file_name}: {what}"
    lines = text.splitlines()
    shown = lines[mark.line] if mark.line < len(lines) else ""
    return (
        f"{file_name}:{mark.line + 1}:{mark.column + 1}: YAML syntax error: {what}\n"
        f"    {mark.line + 1} | {shown}\n"
        f"    {' ' * len(str(mark.line + 1))} | {' ' * mark.column}^"
    )
