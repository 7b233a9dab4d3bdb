"""The stand-in's "Azure" kept in a file between runs (the sandbox's `.sandbox/azure.json`).

A running stand-in holds its cloud in memory (`Cloud.states`: ARM id -> (type, outputs)), so it is gone when its
process ends. `load_states` gives a new `Cloud(states=...)` what an earlier one saved with `save_states`, so
`kms-aks sandbox up`, then `preview` and `destroy` in later processes see the same cloud, as the real Azure would.
The file holds what Azure holds, secrets included (a webhook URL, as Azure stores it): it is written with mode
0600 in an ignored folder, atomically, so an interrupted save leaves the previous cloud, never half of one.
"""

from __future__ import annotations

import json
import os
import tempfile
from pathlib import Path
from typing import Any

from kms_aks_tools.cli.exits import UserError

FORMAT = "kms-aks-standin-cloud/1"


class SavedCloudError(UserError):
    """A file that is not a saved cloud (named, with what to do), instead of a traceback or a silent empty cloud."""


def save_states(states: dict[str, tuple[str, dict[str, Any]]], path: Path) -> None:
    """Writes `states` (a `Cloud.states`) to `path`, replacing it atomically."""
    document = {
        "format": FORMAT,
        "resources": [{"id": i, "type": t, "outputs": o} for i, (t, o) in sorted(states.items())],
    }
    path.parent.mkdir(parents=True, exist_ok=True)
    handle, temporary = tempfile.mkstemp(prefix=f".{path.name}.", dir=path.parent)
    try:
        with os.fdopen(handle, "w", encoding="utf-8") as out:
            json.dump(document, out, indent=1, sort_keys=True)
        os.chmod(temporary, 0o600)
        os.replace(temporary, path)
    except BaseException:
        Path(temporary).unlink(missing_ok=True)
        raise


def load_states(path: Path) -> dict[str, tuple[str, dict[str, Any]]]:
    """The states `save_states` wrote to `path`; an empty cloud when there is no file yet."""
    if not path.exists():
        return {}
    try:
        document = json.loads(path.read_text(encoding="utf-8"))
        if document.get("format") != FORMAT:
            raise ValueError(f"format {document.get('format')!r}, expected {FORMAT!r}")
        return {r["id"]: (r["type"], r["outputs"]) for r in document["resources"]}
    except (OSError, ValueError, KeyError, TypeError, AttributeError) as error:
        raise SavedCloudError(
            f"{path} is not a saved stand-in cloud ({type(error).__name__}: {error}); "
            "remove it (`kms-aks sandbox reset`) to start from an empty cloud"
        ) from None
