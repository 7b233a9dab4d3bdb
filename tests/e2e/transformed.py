"""A test-only entry point: the real program, with the property changes listed in `transforms.json` applied.

`make fixtures` (tests/e2e/record_previews.py) copies it into the workspace with a `transforms.json` such as
`[{"type": "azure-native:keyvault:Vault", "set": {"properties.tenantId": "..."}}]` and previews the stack: the
change a reviewer's PR could make in code, recorded as the real CLI previews it.
"""

import json
import runpy
from pathlib import Path
from typing import Any

import pulumi

TRANSFORMS: list[dict[str, Any]] = json.loads(Path("transforms.json").read_text())


def _set(props: dict[str, Any], dotted: str, value: Any) -> dict[str, Any]:
    """A copy of `props` with `value` at the dotted path (intermediate objects copied, never shared)."""
    head, _, rest = dotted.partition(".")
    if not rest:
        return {**props, head: value}
    child = props.get(head)
    return {**props, head: _set(dict(child) if isinstance(child, dict) else {}, rest, value)}


def apply(args: pulumi.ResourceTransformArgs) -> pulumi.ResourceTransformResult | None:
    props = dict(args.props)
    changed = False
    for transform in TRANSFORMS:
        if args.type_ == transform["type"]:
            for path, value in transform["set"].items():
                props = _set(props, path, value)
                changed = True
    return pulumi.ResourceTransformResult(props, args.opts) if changed else None


pulumi.runtime.register_resource_transform(apply)
runpy.run_path("__main__.py", run_name="__main__")
