"""The pack's interpreter is resolved as the Pulumi CLI resolves it: the manifest's virtualenv, or PATH; no fallback."""

from __future__ import annotations

import shutil
import sys
from pathlib import Path

import pytest

from kms_aks_tools.offline.policy_pack import POLICY_PACK_DIR, PolicyPackError, resolve_python


def _pack(tmp_path: Path, options: str) -> Path:
    (tmp_path / "PulumiPolicy.yaml").write_text(f"runtime:\n  name: python\n{options}")
    return tmp_path


def test_the_shipped_pack_runs_in_its_own_virtualenv() -> None:
    python = resolve_python()
    assert python == str(POLICY_PACK_DIR / "venv" / "bin" / "python")
    assert python != sys.executable


def test_a_missing_virtualenv_is_an_error_that_says_how_to_create_it(tmp_path: Path) -> None:
    pack = _pack(tmp_path, "  options:\n    virtualenv: venv\n")
    with pytest.raises(PolicyPackError) as error:
        resolve_python(pack)
    message = str(error.value)
    assert f"{pack / 'venv'} does not exist" in message
    assert ".ci/pulumi-stack policy-venv" in message and "pulumi install" in message


def test_an_existing_virtualenv_is_used(tmp_path: Path) -> None:
    pack = _pack(tmp_path, "  options:\n    virtualenv: env\n")
    python = pack / "env" / "bin" / "python"
    python.parent.mkdir(parents=True)
    python.write_text("")
    assert resolve_python(pack) == str(python)


def test_without_a_virtualenv_option_python3_from_path(tmp_path: Path) -> None:
    assert resolve_python(_pack(tmp_path, "")) == (shutil.which("python3") or shutil.which("python"))
