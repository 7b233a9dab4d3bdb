"""The stack-file reader gives the values the Pulumi CLI gives (Go's yaml.v3 as `pulumi config` reads a stack file),
and `kms-aks` finds its project as `pulumi` does.

The expected values below are the CLI's, worked out from its source (v3.274.1: sdk/go/common/workspace/loaders.go,
resource/config/object.go; gopkg.in/yaml.v3 resolve.go) and checked against the real CLI by the parity test under
`make e2e` (tests/e2e/test_stack_file_parity.py), which reads the same kind of file with `pulumi config --json`.
"""

from __future__ import annotations

import shutil
import subprocess
from pathlib import Path

import pytest

from kms_aks_tools.project.stack_file import (
    Secure,
    StackFileError,
    cli_json,
    find_project,
    load_stack_file,
    parse_stack_text,
    stack_names,
)
from tests.cli import KMS_AKS, TERMINAL
from tests.conftest import KmsAks

ROOT = Path(__file__).resolve().parent.parent
DEV = (ROOT / "Pulumi.dev.yaml").read_text()
DEV_POLICY = str(ROOT / "policies" / "config" / "dev.json")


def read(body: str) -> dict:
    return parse_stack_text("config:\n" + body, "Pulumi.t.yaml", project="kms-aks")


def test_each_reader_gets_its_own_copy_of_a_stack_file() -> None:
    # The parse of a text is kept for the next reader (the suite and `--all` read the same files many times).
    first = read("  kms-aks:cluster:\n    name: one\n    tags: [a]\n")
    first["kms-aks:cluster"]["name"] = "changed"
    first["kms-aks:cluster"]["tags"].append("b")
    assert read("  kms-aks:cluster:\n    name: one\n    tags: [a]\n") == {
        "kms-aks:cluster": {"name": "one", "tags": ["a"]}
    }


@pytest.mark.parametrize(
    ("written", "given"),
    [
        ("yes", "yes"),
        ("no", "no"),
        ("on", "on"),
        ("off", "off"),
        ("y", "y"),
        ("True", True),
        ("FALSE", False),
        ("2027-06-01", "2027-06-01 00:00:00 +0000 UTC"),
        ("2027-06-01T10:30:00Z", "2027-06-01 10:30:00 +0000 UTC"),
        ("2027-06-01 10:30:00.250", "2027-06-01 10:30:00.25 +0000 UTC"),
        ("2027-06-01T10:30:00-05:00", "2027-06-01 10:30:00 -0500 -0500"),
        ('"2027-06-01"', "2027-06-01"),
        ("2027-13-01", "2027-13-01"),  # no such month: Go's time.Parse refuses it, so it stays text
        ("0777", 511),
        ("0o17", 15),
        ("0x1F", 31),
        ("0b101", 5),
        ("1_000", 1000),
        ("08", 8),  # not octal, so a float, written back as 8 and read as the integer 8
        ("1.30", 1.3),
        ("1000.0", 1000),
        ("1e3", 1000),
        ("1e6", 1000000),
        ("-.5", -0.5),
        ("null", None),
        ("~", None),
        ("", None),
        ("{}", {}),
        ("[]", []),
        ("'0777'", "0777"),
        ("+1", 1),
        ("9223372036854775808", 9223372036854776000),  # a uint64: back from the JSON as a float64
    ],
)
def test_nested_scalars_are_read_as_the_cli_reads_them(written: str, given: object) -> None:
    value = read(f"  kms-aks:block:\n    v: {written}\n")["kms-aks:block"]["v"]
    assert value == given
    assert type(value) is type(given)


@pytest.mark.parametrize(
    ("written", "given"),
    [
        ("false", "false"),
        ("yes", "yes"),
        ("1.30", "1.3"),
        ("0777", "511"),
        ("", ""),
        ("2027-06-01", "2027-06-01 00:00:00 +0000 UTC"),
    ],
)
def test_a_top_level_value_is_the_text_the_program_receives(written: str, given: str) -> None:
    assert read(f"  kms-aks:v: {written}\n")["kms-aks:v"] == given


def test_a_key_without_namespace_is_the_projects() -> None:
    config = read("  protectKmsResources: false\n  kmsKey:\n    size: 4096\n  azure-native:location: westeurope\n")
    assert config == {
        "kms-aks:protectKmsResources": "false",
        "kms-aks:kmsKey": {"size": 4096},
        "azure-native:location": "westeurope",
    }


def test_a_non_string_key_in_a_map_is_named_as_go_prints_it() -> None:
    config = read("  kms-aks:b:\n    1: one\n    true: t\n    1.30: v\n    ~: n\n    2027-06-01: d\n")
    assert config["kms-aks:b"] == {
        "1": "one",
        "true": "t",
        "1.3": "v",
        "<nil>": "n",
        "2027-06-01 00:00:00 +0000 UTC": "d",
    }


def test_multi_line_strings_keep_their_lines() -> None:
    config = read("  kms-aks:block:\n    literal: |\n      one\n      two\n    folded: >\n      one\n      two\n")
    assert config["kms-aks:block"] == {"literal": "one\ntwo\n", "folded": "one two\n"}


def test_secrets_stay_encrypted_and_show_as_the_cli_shows_them() -> None:
    config = read(
        "  kms-aks:token:\n    secure: v1:abc\n"
        "  kms-aks:monitoring:\n    alertWebhooks:\n      - secure: v1:def\n    retentionDays: 30\n"
        "  kms-aks:notSecret:\n    secure: v1:ghi\n    other: 1\n"
    )
    assert config["kms-aks:token"] == Secure("v1:abc")
    assert config["kms-aks:monitoring"]["alertWebhooks"] == [Secure("v1:def")]
    assert "v1:" not in repr(config["kms-aks:token"])
    shown = cli_json(config)
    assert shown["kms-aks:token"] == {"secret": True}
    assert shown["kms-aks:monitoring"] == {"secret": True}
    assert shown["kms-aks:notSecret"] == {
        "secret": False,
        "value": '{"other":1,"secure":"v1:ghi"}',
        "objectValue": {"other": 1, "secure": "v1:ghi"},
    }


@pytest.mark.parametrize(
    ("body", "problem"),
    [
        ("  kms-aks:a: 1\n  kms-aks:a: 2\n", 'mapping key "kms-aks:a" already defined at line 2'),
        ("  size: 1\n  kms-aks:size: 2\n", "config key 'kms-aks:size' is set twice"),
        ("  1: one\n", "configuration keys should be of the form `<namespace>:<name>`"),
        ("  a:b:c: 1\n", "configuration keys should be of the form `<namespace>:<name>`"),
        ("  kms-aks:c: [unclosed\n", "YAML syntax error"),
    ],
)
def test_what_the_cli_refuses_is_refused(body: str, problem: str) -> None:
    with pytest.raises(StackFileError, match=None) as refused:
        read(body)
    assert problem in str(refused.value)
    assert "Pulumi.t.yaml" in str(refused.value)


def test_the_shipped_stacks_read_as_before() -> None:
    dev = load_stack_file("dev")
    assert dev["kms-aks:protectKmsResources"] == "false"
    assert dev["kms-aks:cluster"]["kubernetesVersion"] == "1.33"
    assert dev["kms-aks:cluster"]["systemNodePool"]["count"] == 2
    assert set(stack_names()) >= {"dev", "prod"}


# ---------------------------------------------------------------------------------------------- the command line


def _stack_file(tmp_path: Path, text: str) -> Path:
    path = tmp_path / "Pulumi.edited.yaml"
    path.write_text(text)
    return path


def test_a_dedented_key_is_not_ignored_by_the_plan(tmp_path: Path, kms_aks: KmsAks) -> None:
    # Without its namespace the CLI still applies it (the default is true): the offline plan must show the key,
    # vault and identity unprotected too, as a real deploy would leave them.
    edited = DEV.replace("  kms-aks:protectKmsResources: false\n", "  protectKmsResources: false\n")
    assert edited != DEV
    result = kms_aks("plan", "--stack", str(_stack_file(tmp_path, edited)), "--policy-config", DEV_POLICY)
    assert result.returncode == 0, result.stdout
    assert "(0 protected from deletion: a throwaway stack)" in result.stdout
    assert "warning: protectKmsResources is false" in result.stdout
    assert kms_aks("check-config", "--stack", str(_stack_file(tmp_path, edited))).returncode == 0


def test_an_unquoted_date_is_refused_with_how_to_quote_it(tmp_path: Path, kms_aks: KmsAks) -> None:
    edited = DEV.replace("    size: 2048\n", "    size: 2048\n    expiresOn: 2027-06-01\n")
    stack = str(_stack_file(tmp_path, edited))
    for command in ("check-config", "plan", "rotate-check"):
        result = kms_aks(command, "--stack", stack)
        assert result.returncode == 2, (command, result.stdout, result.stderr)
        assert 'quote it: expiresOn: "2027-06-01"' in result.stdout, (command, result.stdout)
        assert "Traceback" not in result.stdout + result.stderr
    quoted_file = _stack_file(tmp_path, edited.replace("2027-06-01", '"2027-06-01"'))
    quoted = kms_aks("check-config", "--stack", str(quoted_file))
    assert quoted.returncode == 0, quoted.stdout


def test_a_yes_where_a_boolean_belongs_is_named(tmp_path: Path, kms_aks: KmsAks) -> None:
    edited = DEV.replace("kms-aks:protectKmsResources: false", "kms-aks:protectKmsResources: no")
    result = kms_aks("check-config", "--stack", str(_stack_file(tmp_path, edited)))
    assert result.returncode == 2
    assert "kms-aks:protectKmsResources: must be a valid boolean, true or false (got 'no'" in result.stdout
    assert "write protectKmsResources: false" in result.stdout


# ---------------------------------------------------------------------------------------------- finding the project


def _second_checkout(tmp_path: Path) -> Path:
    """A copy of the project's files (as git lists them) with its own dev stack, and the pack's venv shared."""
    listed = subprocess.run(
        ["git", "ls-files", "-co", "--exclude-standard"], cwd=ROOT, capture_output=True, text=True, check=True
    ).stdout.splitlines()
    copy = tmp_path / "second"
    for relative in listed:
        source = ROOT / relative
        if source.is_file() and not relative.startswith(("tests/", "benchmarks/")):
            (copy / relative).parent.mkdir(parents=True, exist_ok=True)
            shutil.copy2(source, copy / relative)
    (copy / "policies" / "venv").symlink_to(ROOT / "policies" / "venv")
    dev = (copy / "Pulumi.dev.yaml").read_text()
    assert "    size: 2048\n" in dev
    (copy / "Pulumi.dev.yaml").write_text(dev.replace("    size: 2048\n", "    size: 4096\n"))
    return copy


def run_installed(*args: str, cwd: Path) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [str(KMS_AKS), *args], cwd=cwd, capture_output=True, text=True, timeout=180, env=TERMINAL, check=False
    )


def test_find_project_walks_up_like_pulumi(tmp_path: Path) -> None:
    assert find_project(ROOT / "docs") == ROOT
    assert find_project(ROOT) == ROOT
    with pytest.raises(FileNotFoundError, match=r"no Pulumi\.yaml in .* or any folder above it"):
        find_project(tmp_path)


def test_a_second_checkout_plans_itself_not_the_installed_one(tmp_path: Path) -> None:
    second = _second_checkout(tmp_path)
    # From inside the copy (a subfolder too, as `pulumi` allows), and from elsewhere with --cwd.
    inside = run_installed("plan", "--stack", "dev", cwd=second / "components")
    assert inside.returncode == 0, inside.stdout + inside.stderr
    assert "key size: 4096" in inside.stdout
    elsewhere = run_installed("check-config", "--stack", "dev", "--cwd", str(second), cwd=tmp_path)
    assert elsewhere.returncode == 0, elsewhere.stdout
    assert "kv-kmsaks-dev-01" in elsewhere.stdout
    # The installed checkout is still what it was: its own dev key is 2048 bits.
    assert load_stack_file("dev")["kms-aks:kmsKey"]["size"] == 2048


def test_outside_any_project_kms_aks_says_where_it_looked(tmp_path: Path) -> None:
    for command in ("plan", "check-config", "rotate-check"):
        result = run_installed(command, "--stack", "dev", cwd=tmp_path)
        assert result.returncode == 2, (command, result.stdout)
        assert f"no Pulumi.yaml in {tmp_path.resolve()} or any folder above it" in result.stdout
        assert "--cwd" in result.stdout


def test_a_secret_webhook_is_planned_with_a_stand_in_and_never_shown(tmp_path: Path, kms_aks: KmsAks) -> None:
    ciphertext = "v1:c2VjcmV0LW5vbmNl:Y2lwaGVydGV4dC1vZi1hLXdlYmhvb2stdXJs"
    edited = DEV.replace(
        "  kms-aks:monitoring:\n    retentionDays: 30\n",
        f"  kms-aks:monitoring:\n    retentionDays: 30\n    alertWebhooks:\n      - secure: {ciphertext}\n",
    )
    assert edited != DEV
    stack = str(_stack_file(tmp_path, edited))
    result = kms_aks("plan", "--stack", stack, "--policy-config", DEV_POLICY, "--json", str(tmp_path / "plan.json"))
    assert result.returncode == 0, result.stdout
    assert "kms-aks:monitoring.alertWebhooks[0] is a secret: the offline tools do not decrypt it" in result.stdout
    assert "1 webhook" in result.stdout  # the action group got it
    assert ciphertext not in result.stdout + (tmp_path / "plan.json").read_text()
    assert kms_aks("check-config", "--stack", stack).returncode == 0
