"""Running the project's commands as a user does: `python -m <module>` in the project, in a plain terminal."""

from __future__ import annotations

import subprocess
import sys

from kms_aks_tools.mock_engine import ROOT

# A wide, colourless terminal, so that assertions on long lines do not depend on wrapping.
TERMINAL = {"COLUMNS": "400", "PATH": "/usr/bin:/bin", "TERM": "dumb"}


def run_module(module: str, *args: str, stdin: str | None = None) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-m", module, *args],
        cwd=ROOT,
        input=stdin,
        capture_output=True,
        text=True,
        timeout=120,
        env=TERMINAL,
        check=False,
    )
