"""`pip install .` into a fresh virtualenv gives a working `kms-aks`: pyproject.toml declares every runtime
dependency, and the package (azure_facts included) imports without the checkout on its path.

It installs from the project's tracked files copied elsewhere (so nothing is built inside the checkout and nothing
of it is importable), with pip's ordinary index and cache, then runs every subcommand's `--help` from a folder that
is not the checkout.
"""

from __future__ import annotations

import shutil
import subprocess
import sys
from pathlib import Path

from kms_aks_tools.cli.registry import SUBCOMMANDS

ROOT = Path(__file__).resolve().parents[2]


def test_pip_install_gives_a_kms_aks_whose_every_subcommand_helps(tmp_path: Path) -> None:
    source = tmp_path / "source"
    tracked = subprocess.run(["git", "ls-files", "-z"], cwd=ROOT, capture_output=True, check=True).stdout
    for name in filter(None, tracked.decode().split("\0")):
        if (ROOT / name).is_file():
            (source / name).parent.mkdir(parents=True, exist_ok=True)
            shutil.copy2(ROOT / name, source / name)
    venv = tmp_path / "venv"
    subprocess.run([sys.executable, "-m", "venv", str(venv)], check=True)
    install = subprocess.run(
        [str(venv / "bin" / "pip"), "install", "--disable-pip-version-check", "--quiet", str(source)],
        capture_output=True,
        text=True,
        check=False,
    )
    assert install.returncode == 0, install.stderr[-3000:]

    elsewhere = tmp_path / "elsewhere"
    elsewhere.mkdir()
    for name in SUBCOMMANDS:
        result = subprocess.run(
            [str(venv / "bin" / "kms-aks"), name, "--help"], cwd=elsewhere, capture_output=True, text=True, check=False
        )
        assert result.returncode == 0, f"kms-aks {name} --help: {result.stderr[-2000:]}"
        assert result.stdout.startswith(f"usage: kms-aks {name} ")
    # Installed, not borrowed from the checkout: the modules come from the virtualenv.
    where = subprocess.run(
        [str(venv / "bin" / "python"), "-c", "import azure_facts, kms_aks_tools; print(kms_aks_tools.__file__)"],
        cwd=elsewhere,
        capture_output=True,
        text=True,
        check=True,
    ).stdout
    assert where.startswith(str(venv)), where
