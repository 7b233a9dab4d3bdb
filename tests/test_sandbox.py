"""`kms-aks sandbox` without the CLI: what it refuses before anything runs, and its bookkeeping.

Each refusal is one message with exit 2, and leaves nothing behind (no `.sandbox/` half-made). The whole workflow
under the real CLI is tests/e2e/test_sandbox.py.
"""

from __future__ import annotations

import fcntl
import shutil
from pathlib import Path

import pytest

from kms_aks_tools.cli.main import main
from kms_aks_tools.commands.sandbox import MARKER, SANDBOX_FOLDER
from kms_aks_tools.offline import realcli


@pytest.fixture
def project(tmp_path: Path) -> Path:
    """A project with the shipped Pulumi.yaml and stack files (what the sandbox reads before running anything)."""
    folder = tmp_path / "project"
    folder.mkdir()
    for name in ("Pulumi.yaml", "Pulumi.dev.yaml", "Pulumi.prod.yaml"):
        shutil.copy(realcli.ROOT / name, folder / name)
    return folder


def _sandbox(project: Path, *args: str) -> int:
    return main(["sandbox", *args, "--cwd", str(project)])


def test_an_unknown_stack_is_named_with_the_stacks_there_are(project: Path, capsys: pytest.CaptureFixture) -> None:
    assert _sandbox(project, "preview", "--stack", "nosuchstack") == 2
    err = capsys.readouterr().err
    assert "unknown stack 'nosuchstack': no Pulumi.nosuchstack.yaml; stacks: dev, prod" in err
    assert not (project / SANDBOX_FOLDER).exists()


def test_a_folder_without_pulumi_yaml_is_not_a_project(tmp_path: Path, capsys: pytest.CaptureFixture) -> None:
    assert _sandbox(tmp_path, "up") == 2
    assert "no Pulumi.yaml in" in capsys.readouterr().err


def test_secure_values_the_sandbox_cannot_decrypt_are_named_not_echoed(
    project: Path, capsys: pytest.CaptureFixture
) -> None:
    ciphertext = "v1:abcdEFGHijkl:mnopQRSTuvwx"
    realcli.set_stack_config(project / "Pulumi.dev.yaml", "monitoring.alertWebhooks", [{"secure": ciphertext}])
    assert _sandbox(project, "up") == 2
    err = capsys.readouterr().err
    assert "secure values (kms-aks:monitoring.alertWebhooks[0])" in err
    assert ciphertext not in err
    assert not (project / SANDBOX_FOLDER).exists()


def test_a_bad_stack_config_is_the_config_checks_message_before_any_cli(
    project: Path, capsys: pytest.CaptureFixture
) -> None:
    stack_file = project / "Pulumi.dev.yaml"
    stack_file.write_text(stack_file.read_text().replace("size: 2048", "size: 1000"))
    assert _sandbox(project, "preview") == 2
    assert "kmsKey.size" in capsys.readouterr().out
    assert not (project / SANDBOX_FOLDER).exists()


def test_without_go_the_cli_cannot_be_built_and_it_says_so(
    project: Path, capsys: pytest.CaptureFixture, monkeypatch: pytest.MonkeyPatch, tmp_path: Path
) -> None:
    empty = tmp_path / "no-go"
    empty.mkdir()
    monkeypatch.setenv("PATH", str(empty))
    assert _sandbox(project, "preview") == 2
    err = capsys.readouterr().err
    assert "`go` is not on PATH: install Go 1.26 or later" in err
    assert not (project / SANDBOX_FOLDER).exists()


def test_one_command_at_a_time(project: Path, capsys: pytest.CaptureFixture) -> None:
    home = project / SANDBOX_FOLDER
    home.mkdir()
    (home / MARKER).touch()
    with open(home / ".lock", "w") as lock:
        fcntl.flock(lock, fcntl.LOCK_EX | fcntl.LOCK_NB)
        assert _sandbox(project, "reset") == 2
    assert "another `kms-aks sandbox` command is running" in capsys.readouterr().err
    assert home.is_dir()


def test_reset_removes_only_a_folder_the_sandbox_made(project: Path, capsys: pytest.CaptureFixture) -> None:
    home = project / SANDBOX_FOLDER
    home.mkdir()
    (home / "notes.txt").write_text("mine")
    assert _sandbox(project, "reset") == 2
    assert "was not made by `kms-aks sandbox`" in capsys.readouterr().err
    assert (home / "notes.txt").read_text() == "mine"

    (home / MARKER).touch()
    assert _sandbox(project, "reset") == 0
    assert not home.exists()


def test_status_of_an_empty_sandbox(project: Path, capsys: pytest.CaptureFixture) -> None:
    assert _sandbox(project, "status") == 0
    out = capsys.readouterr().out
    assert f"sandbox: {project / SANDBOX_FOLDER} (empty)" in out
    assert "stacks in the sandbox: none" in out
    assert "the stand-in's Azure: 0 resources" in out


def test_a_stack_files_own_secrets_provider_is_swapped_for_the_sandboxs() -> None:
    stack = "secretsprovider: azurekeyvault://kv/keys/k\nencryptedkey: abc\nconfig:\n  kms-aks:location: westeurope\n"
    assert realcli.secrets_provider_lines(stack) == ["secretsprovider: azurekeyvault://kv/keys/k", "encryptedkey: abc"]
    assert realcli.without_secrets_provider(stack) == "config:\n  kms-aks:location: westeurope\n"
