"""`kms-aks sandbox` without the CLI: what it refuses before anything runs, and its bookkeeping.

Each refusal is one message with exit 2, and leaves nothing behind (no `.sandbox/` half-made). The whole workflow
under the real CLI is tests/e2e/test_sandbox.py.
"""

from __future__ import annotations

import fcntl
import re
import shutil
from pathlib import Path

import pytest

from kms_aks_tools.cli.console import make_console
from kms_aks_tools.cli.main import main
from kms_aks_tools.offline import realcli
from kms_aks_tools.sandbox.actions import preview_as_ci
from kms_aks_tools.sandbox.home import MARKER, SANDBOX_FOLDER, Sandbox


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


@pytest.fixture
def fake_cli_copy(tmp_path: Path) -> tuple[Sandbox, realcli.CliWorkspace]:
    """A sandbox whose project copy runs the workflows' real script (.ci/pulumi-stack), the real guard and the real
    `kms-aks changes`, with a stand-in `pulumi` that prints a preview the sandbox recorded (node-count)."""
    project = tmp_path / "project"
    (project / ".ci").mkdir(parents=True)
    shutil.copy(realcli.ROOT / ".ci" / "pulumi-stack", project / ".ci" / "pulumi-stack")
    shutil.copy(realcli.ROOT / "Pulumi.yaml", project / "Pulumi.yaml")
    bin_dir = tmp_path / "bin"
    bin_dir.mkdir()
    recorded = realcli.ROOT / "tests" / "fixtures" / "sandbox" / "node-count" / "preview.json"
    (bin_dir / "pulumi").write_text(f"#!/bin/sh\ncat {recorded}\n")
    (bin_dir / "pulumi").chmod(0o755)
    env = {
        "PATH": f"{bin_dir}:/usr/bin:/bin",
        "KMS_AKS": str(realcli.ROOT / ".venv" / "bin" / "kms-aks"),
        "LANG": "C.UTF-8",
    }
    sandbox = Sandbox.of(tmp_path / "user")
    return sandbox, realcli.CliWorkspace(path=project, env=env)


def test_sandbox_preview_keeps_the_guards_exit_2_for_a_bad_override_file(
    fake_cli_copy: tuple[Sandbox, realcli.CliWorkspace], capsys: pytest.CaptureFixture
) -> None:
    sandbox, space = fake_cli_copy
    (space.path / "guard-overrides.yaml").write_text("keyRotations: [{urn: nope}]\nblanket: true\n")
    assert preview_as_ci(sandbox, space, "dev", make_console()) == 2
    assert "overrides" in capsys.readouterr().out


def test_the_sandboxs_pr_comment_and_guard_output_name_repo_relative_paths(
    fake_cli_copy: tuple[Sandbox, realcli.CliWorkspace], capsys: pytest.CaptureFixture
) -> None:
    sandbox, space = fake_cli_copy
    assert preview_as_ci(sandbox, space, "dev", make_console()) == 0
    comment = (sandbox.out("dev") / "comment.md").read_text()
    guard_text = (sandbox.out("dev") / "guard.txt").read_text()
    assert "plan guard: out/dev/preview.json: 2 steps (same 22, update 1)" in guard_text
    assert "plan guard: out/dev/preview.json" in comment
    for text in (comment, guard_text):
        assert str(space.path) not in text and str(sandbox.home) not in text and "/tmp/" not in text


def test_key_version_adds_a_version_of_the_stacks_key_to_the_saved_cloud_and_prints_its_id(
    project: Path, capsys: pytest.CaptureFixture
) -> None:
    from kms_aks_tools.standin.arm import _find_key
    from kms_aks_tools.standin.saved import load_states, save_states

    # Before `up`, the cloud holds no key: named, exit 2, nothing saved.
    assert _sandbox(project, "key-version", "--stack", "dev") == 2
    assert "holds no key aks-kms-dev in vault kv-kmsaks-dev-01" in capsys.readouterr().err
    assert not (project / SANDBOX_FOLDER / "azure.json").exists()
    # The cloud as `up` leaves it (dev's vault and key, the key at its create-time version).
    vault_id = "/subscriptions/s/resourceGroups/rg/providers/Microsoft.KeyVault/vaults/kv-kmsaks-dev-01"
    key_uri = "https://kv-kmsaks-dev-01.vault.azure.net/keys/aks-kms-dev"
    first = f"{key_uri}/{'1' * 32}"
    save_states(
        {
            vault_id: ("azure-native:keyvault:Vault", {"name": "kv-kmsaks-dev-01"}),
            f"{vault_id}/keys/aks-kms-dev": (
                "azure-native:keyvault:Key",
                {"name": "aks-kms-dev", "keyUri": key_uri, "keyUriWithVersion": first, "kty": "RSA"},
            ),
        },
        project / SANDBOX_FOLDER / "azure.json",
    )
    assert _sandbox(project, "key-version", "--stack", "dev") == 0
    out = capsys.readouterr().out
    [printed] = [line for line in out.splitlines() if line.startswith(key_uri)]
    assert re.fullmatch(rf"{re.escape(key_uri)}/[0-9a-f]{{32}}", printed) and printed != first
    assert f"kms-aks:kmsKey.version: {printed.rsplit('/', 1)[1]}" in out.replace("\n", " ")
    # The next command's stand-in holds it: AKS's key check finds the new version, in dev's vault.
    states = load_states(project / SANDBOX_FOLDER / "azure.json")
    vault, key = _find_key(printed, states)
    assert vault is not None and vault[0] == vault_id and key is not None
    assert _find_key(f"{key_uri}/{'2' * 32}", states) == (None, None)


def test_a_byok_key_declared_outside_the_stack_gets_versions_too(project: Path, capsys: pytest.CaptureFixture) -> None:
    vault_id = (
        "/subscriptions/11111111-2222-3333-4444-555555555555/resourceGroups/rg-keys"
        "/providers/Microsoft.KeyVault/vaults/kv-team-keys"
    )
    current = "https://kv-team-keys.vault.azure.net/keys/aks-etcd/" + "2b" * 16
    (project / "Pulumi.byok.yaml").write_text(
        "config:\n  azure-native:location: westeurope\n  kms-aks:location: westeurope\n  kms-aks:existingKey:\n"
        f"    keyId: {current}\n    keyVaultResourceId: {vault_id}\n    permissionModel: rbac\n"
        "  kms-aks:cluster:\n    name: aks-byok\n    kubernetesVersion: \"1.33\"\n"
        "    apiServerAuthorizedIpRanges: [198.51.100.0/24]\n"
    )
    assert _sandbox(project, "key-version", "--stack", "byok") == 2  # no such vault in the cloud yet
    assert "holds no key aks-etcd in vault kv-team-keys" in capsys.readouterr().err
    (project / "sandbox-azure.yaml").write_text(
        f"vaults:\n  - id: {vault_id}\n    keys:\n      - name: aks-etcd\n"
        f"        versions: ['{'1a' * 16}', '{'2b' * 16}']\n"
    )
    assert _sandbox(project, "key-version", "--stack", "byok") == 0
    [printed] = [line for line in capsys.readouterr().out.splitlines() if line.startswith("https://kv-team-keys")]
    assert printed.startswith("https://kv-team-keys.vault.azure.net/keys/aks-etcd/") and printed != current
    assert _sandbox(project, "status") == 0
    status = capsys.readouterr().out
    assert "1 azure-native:keyvault:Vault" in status and "2 Microsoft.KeyVault/vaults/keys/versions" in status
