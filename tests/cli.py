"""Running the installed `kms-aks` console script as CI does: a process in the project, in a plain terminal."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

from kms_aks_tools.offline.mock_engine import ROOT

# A wide, colourless terminal, so that assertions on long lines do not depend on wrapping.
TERMINAL = {"COLUMNS": "400", "PATH": "/usr/bin:/bin", "TERM": "dumb"}
# Installed into the venv by `make` (pip install -e .), next to the interpreter running the tests.
KMS_AKS = Path(sys.executable).parent / "kms-aks"


UNKNOWN_STACK = "no-such-stack"


def project_stacks() -> str:
    """The project's stacks as `kms-aks` lists them, read from the files (one Pulumi.<stack>.yaml each)."""
    return ", ".join(sorted(p.name[len("Pulumi.") : -len(".yaml")] for p in ROOT.glob("Pulumi.*.yaml")))


def run_kms_aks(*args: str, stdin: str | None = None) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [str(KMS_AKS), *args],
        cwd=ROOT,
        input=stdin,
        capture_output=True,
        text=True,
        timeout=120,
        env=TERMINAL,
        check=False,
    )
