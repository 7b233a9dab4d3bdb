"""Parity: every stack file of the corpus (tests/stacks/parity/) read by the real Pulumi CLI (`pulumi config
--json`, the version `make e2e` builds) and by the offline reader (kms_aks_tools.project.stack_file) gives the same keys
and values, and a file one of them refuses the other refuses too.

Secrets are compared as the CLI shows them: without --show-secrets a key holding a secret has `secret: true` and
no value; with --show-secrets (the corpus's passphrase is the test's own, "parity") the CLI decrypts, and the
reader must hold a secret (still encrypted) at exactly the paths where the CLI shows the plaintext, and equal
values everywhere else.
"""

from __future__ import annotations

import json
import os
import shutil
import subprocess
from pathlib import Path
from typing import Any

import pytest

from kms_aks_tools.project.stack_file import Secure, StackFileError, cli_json, load_stack_file

ROOT = Path(__file__).resolve().parents[2]
CORPUS = ROOT / "tests" / "stacks" / "parity"
# The passphrase the corpus's secrets were encrypted with (`encryptionsalt:` in Pulumi.secrets.yaml); a test value.
PASSPHRASE = "parity"
CORPUS_STACKS = sorted(p.name[len("Pulumi.") : -len(".yaml")] for p in CORPUS.glob("Pulumi.*.yaml"))


@pytest.fixture(scope="module")
def project(tmp_path_factory: pytest.TempPathFactory) -> tuple[Path, dict[str, str]]:
    """A project named like ours (so bare keys get our namespace), a file backend, one stack per corpus file."""
    built = subprocess.run(
        ["bash", str(ROOT / "e2e" / "toolchain" / "build.sh")], capture_output=True, text=True, check=False
    )
    if built.returncode != 0:
        pytest.fail(f"the Pulumi CLI could not be built:\n{built.stderr[-4000:]}")
    bin_dir = built.stdout.strip().splitlines()[-1]
    base = tmp_path_factory.mktemp("parity")
    folder = base / "project"
    folder.mkdir()
    (folder / "Pulumi.yaml").write_text((ROOT / "Pulumi.yaml").read_text())
    (base / "state").mkdir()
    env = {
        "PATH": os.pathsep.join([bin_dir, "/usr/local/bin", "/usr/bin", "/bin"]),
        "HOME": str(base),
        "PULUMI_HOME": str(base / "pulumi-home"),
        "PULUMI_BACKEND_URL": (base / "state").as_uri(),
        "PULUMI_CONFIG_PASSPHRASE": PASSPHRASE,
        "PULUMI_SKIP_UPDATE_CHECK": "true",
        "TZ": "UTC",
    }
    for stack in CORPUS_STACKS:
        created = subprocess.run(
            ["pulumi", "stack", "init", stack, "--non-interactive"],
            cwd=folder, env=env, capture_output=True, text=True, timeout=120, check=False,
        )  # fmt: skip
        assert created.returncode == 0, created.stderr
        # The corpus file replaces what `stack init` wrote: the CLI must read it exactly as written.
        shutil.copy2(CORPUS / f"Pulumi.{stack}.yaml", folder / f"Pulumi.{stack}.yaml")
    return folder, env


def pulumi_config(project: tuple[Path, dict[str, str]], stack: str, *extra: str) -> subprocess.CompletedProcess[str]:
    folder, env = project
    return subprocess.run(
        ["pulumi", "config", "--json", "--stack", stack, *extra],
        cwd=folder, env=env, capture_output=True, text=True, timeout=120, check=False,
    )  # fmt: skip


def revealed(reader: Any, cli: Any, path: str = "") -> Any:
    """The reader's value with each secret replaced by what the CLI decrypted at the same path; a secret on one
    side only is a mismatch."""
    if isinstance(reader, Secure):
        assert isinstance(cli, str), f"{path}: a secret for the reader, {cli!r} for the CLI"
        return cli
    if isinstance(reader, dict) and isinstance(cli, dict):
        return {key: revealed(value, cli.get(key), f"{path}.{key}") for key, value in reader.items()}
    if isinstance(reader, list) and isinstance(cli, list) and len(reader) == len(cli):
        return [revealed(value, cli[i], f"{path}[{i}]") for i, value in enumerate(reader)]
    return reader


def typed(value: Any) -> Any:
    """A JSON value with its types visible, so that 1 and 1.0 and True differ in a comparison."""
    if isinstance(value, dict):
        return {key: typed(item) for key, item in value.items()}
    if isinstance(value, list):
        return [typed(item) for item in value]
    return (type(value).__name__, value)


def test_the_corpus_covers_what_the_cli_reads_differently() -> None:
    text = "\n".join(p.read_text() for p in CORPUS.glob("Pulumi.*.yaml"))
    for case in (
        "protectKmsResources: false",  # an unnamespaced key
        ": yes", ": no", ": on", ": off",
        ": 2027-06-01\n", "T10:30:00Z", "-05:00",  # dates and timestamps
        ": 0777", ": 0o17", ": 0x1F",  # octal- and hex-looking
        ": 1.30", ": 1e3", ": 1000.0",  # float-looking, versions
        ": null", ": ~", ": {}", ": []", ": |", ": >",  # null, empty maps, multi-line strings
        "secure: v1:",  # secure values
    ):  # fmt: skip
        assert case in text, f"the parity corpus has no {case!r}"


@pytest.mark.parametrize("stack", [s for s in CORPUS_STACKS if not s.startswith("refused")])
def test_the_reader_gives_what_pulumi_config_gives(project: tuple[Path, dict[str, str]], stack: str) -> None:
    shown = pulumi_config(project, stack)
    assert shown.returncode == 0, shown.stderr
    cli = json.loads(shown.stdout)
    reader = load_stack_file(str(CORPUS / f"Pulumi.{stack}.yaml"), ROOT)
    assert sorted(reader) == sorted(cli)
    ours = cli_json(reader)
    for key in sorted(cli):
        assert typed(ours[key]) == typed(cli[key]), key

    revealed_cli = json.loads(pulumi_config(project, stack, "--show-secrets").stdout)
    for key, entry in revealed_cli.items():
        cli_value = entry.get("objectValue", entry.get("value"))
        ours_revealed = revealed(reader[key], cli_value, key)
        assert typed(cli_json({key: ours_revealed})[key].get("objectValue", ours_revealed)) == typed(cli_value), key


@pytest.mark.parametrize("stack", [s for s in CORPUS_STACKS if s.startswith("refused")])
def test_what_the_cli_refuses_the_reader_refuses(project: tuple[Path, dict[str, str]], stack: str) -> None:
    shown = pulumi_config(project, stack)
    assert shown.returncode != 0, shown.stdout
    with pytest.raises(StackFileError):
        load_stack_file(str(CORPUS / f"Pulumi.{stack}.yaml"), ROOT)
