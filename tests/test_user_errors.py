"""Every user mistake: one clear message and exit 2 through `kms-aks`, never a traceback.

One table holds every case. Each row edits the shipped dev stack file the way a user would get it wrong,
then runs it three ways:
- `kms-aks check-config` and `kms-aks plan` in-process (the console script's own `main`), asserting exit 2,
  the message and no traceback;
- the program itself under the mock engine, as `pulumi preview` runs it, asserting the same message (both
  read `kms_aks/config/stack.py`); a YAML syntax error never reaches the program (the Pulumi CLI reads the file).
Two rows also run the installed `kms-aks` script as a process, to prove the exit code reaches the shell.
"""

from __future__ import annotations

import re
import subprocess
import sys
from dataclasses import dataclass
from pathlib import Path

import pytest
from pydantic import BaseModel
from pydantic.fields import FieldInfo

from kms_aks.config.base import model_of
from kms_aks.config.stack import StackConfig
from kms_aks_tools.cli import main as cli
from kms_aks_tools.offline.mock_engine import ROOT
from tests.cli import TERMINAL, UNKNOWN_STACK, project_stacks
from tests.engine import run_stack

DEV = (ROOT / "Pulumi.dev.yaml").read_text()


@dataclass(frozen=True)
class Mistake:
    """One way to get the stack file wrong: `old` -> `new` in Pulumi.dev.yaml, and what the user must read."""

    id: str
    old: str
    new: str
    expected: tuple[str, ...]
    reaches_program: bool = True  # False: caught before any program runs (YAML, unknown stack)


MISTAKES = [
    Mistake(
        "yaml-syntax",
        "    sku: standard\n",
        "    sku: standard\n   permissionModel: [accessPolicy\n",
        (
            "Pulumi.mistake.yaml:10:",  # file name and line (1-based, as an editor shows it)
            "YAML syntax error",
            "permissionModel: [accessPolicy",  # the offending line, quoted
        ),
        reaches_program=False,
    ),
    Mistake(
        "yaml-tab-indent",
        "    size: 2048\n",
        "\tsize: 2048\n",
        ("Pulumi.mistake.yaml:", "YAML syntax error", "size: 2048"),
        reaches_program=False,
    ),
    Mistake(
        "unknown-top-level-key",
        "  kms-aks:protectKmsResources: false\n",
        "  kms-aks:protectKmsResource: false\n",
        ("kms-aks:protectKmsResource: unknown config key; allowed keys:", "protectKmsResources"),
    ),
    Mistake(
        "unknown-key-in-block",
        "    size: 2048\n",
        "    szie: 2048\n",
        ("kms-aks:kmsKey.szie: unknown setting in kms-aks:kmsKey; allowed: name, type, size, expiresOn, rotation",),
    ),
    Mistake(
        "unknown-key-two-deep",
        "    size: 2048\n",
        "    size: 2048\n    rotation:\n      rotateAfterDay: 60\n      expireAfterDays: 90\n",
        (
            "kms-aks:kmsKey.rotation.rotateAfterDay: unknown setting in kms-aks:kmsKey.rotation; "
            "allowed: rotateAfterDays, expireAfterDays, notifyBeforeExpiryDays",
        ),
    ),
    Mistake(
        "unknown-key-in-node-pool",
        "      count: 2\n",
        "      count: 2\n      vmsize: Standard_D2s_v5\n",
        ("kms-aks:cluster.systemNodePool.vmsize: unknown setting", "allowed: vmSize, count, zones, maxPods"),
    ),
    Mistake(
        "system-assigned-identity-type",
        "    skuTier: Free\n",
        "    skuTier: Free\n    identityType: SystemAssigned\n",
        ("kms-aks:cluster.identityType: KMS requires a user-assigned identity",),
    ),
    Mistake(
        "system-assigned-identity-block",
        "    skuTier: Free\n",
        "    skuTier: Free\n    identity:\n      type: SystemAssigned\n",
        ("kms-aks:cluster.identity: KMS requires a user-assigned identity",),
    ),
    Mistake(
        "system-assigned-at-top-level",
        "  kms-aks:protectKmsResources: false\n",
        "  kms-aks:protectKmsResources: false\n  kms-aks:clusterIdentity: SystemAssigned\n",
        ("kms-aks:clusterIdentity: KMS requires a user-assigned identity",),
    ),
    Mistake(
        "unquoted-kubernetes-version",
        '    kubernetesVersion: "1.33"\n',
        "    kubernetesVersion: 1.30\n",
        ("kms-aks:cluster.kubernetesVersion: must be a quoted string", 'write kubernetesVersion: "1.30"'),
    ),
    Mistake(
        "version-without-minor-zero",
        '    kubernetesVersion: "1.33"\n',
        '    kubernetesVersion: "1.3"\n',
        ("kms-aks:cluster.kubernetesVersion:", 'write kubernetesVersion: "1.30"'),
    ),
    Mistake(
        "expiry-days-out-of-bounds",
        "    size: 2048\n",
        "    size: 2048\n    rotation:\n      rotateAfterDays: 60\n      expireAfterDays: 1000000000\n",
        ("kms-aks:kmsKey.rotation.expireAfterDays: Input should be less than or equal to 1826 (got 1000000000)",),
    ),
    Mistake(
        "rotate-days-out-of-bounds",
        "    size: 2048\n",
        "    size: 2048\n    rotation:\n      rotateAfterDays: 99999\n      expireAfterDays: 90\n",
        ("kms-aks:kmsKey.rotation.rotateAfterDays: Input should be less than or equal to 1826",),
    ),
    Mistake(
        "notify-days-out-of-bounds",
        "    size: 2048\n",
        "    size: 2048\n    rotation:\n      rotateAfterDays: 60\n      expireAfterDays: 90\n"
        "      notifyBeforeExpiryDays: 5000\n",
        ("kms-aks:kmsKey.rotation.notifyBeforeExpiryDays: Input should be less than or equal to 1826",),
    ),
    Mistake(
        "soft-delete-days-out-of-bounds",
        "    softDeleteRetentionDays: 7\n",
        "    softDeleteRetentionDays: 365\n",
        ("kms-aks:keyVault.softDeleteRetentionDays: Input should be less than or equal to 90 (got 365)",),
    ),
    Mistake(
        "node-count-out-of-bounds",
        "      count: 2\n",
        "      count: 5000\n",
        ("kms-aks:cluster.systemNodePool.count: Input should be less than or equal to 100 (got 5000)",),
    ),
    Mistake(
        "max-pods-out-of-bounds",
        "      count: 2\n",
        "      count: 2\n      maxPods: 10\n",
        ("kms-aks:cluster.systemNodePool.maxPods: Input should be greater than or equal to 30 (got 10)",),
    ),
    Mistake(
        "key-size-not-allowed",
        "    size: 2048\n",
        "    size: 1024\n",
        ("kms-aks:kmsKey.size: Input should be 2048, 3072 or 4096 (got 1024)",),
    ),
    Mistake(
        "location-mismatch",
        "  azure-native:location: westeurope\n",
        "  azure-native:location: eastus\n",
        (
            "kms-aks:location: 'westeurope', but azure-native:location is 'eastus'",
            "Set both to the same region",
        ),
    ),
]


@pytest.fixture(params=MISTAKES, ids=[m.id for m in MISTAKES])
def mistake(request: pytest.FixtureRequest, tmp_path: Path) -> tuple[Mistake, Path]:
    case: Mistake = request.param
    assert case.old in DEV, f"{case.id}: the shipped dev stack no longer contains {case.old!r}"
    path = tmp_path / "Pulumi.mistake.yaml"
    path.write_text(DEV.replace(case.old, case.new, 1))
    return case, path


def _assert_one_clear_message(case: Mistake, code: int, output: str) -> None:
    assert code == 2, f"{case.id}: exit {code}\n{output}"
    assert "Traceback" not in output
    for text in case.expected:
        assert text in output, f"{case.id}: {text!r} not in\n{output}"
    assert len(re.findall(r"^error:", output, re.MULTILINE)) == 1, f"{case.id}: expected one message\n{output}"


@pytest.mark.parametrize("subcommand", ["check-config", "plan", "rotate-check"])
def test_kms_aks_names_the_mistake_and_exits_2(
    mistake: tuple[Mistake, Path], subcommand: str, capsys: pytest.CaptureFixture[str]
) -> None:
    case, path = mistake
    code = cli.main([subcommand, "--stack", str(path)])
    captured = capsys.readouterr()
    _assert_one_clear_message(case, code, captured.out + captured.err)
    assert "(preview)" not in captured.out, "nothing of a plan may be printed for a bad stack file"


def test_the_program_gives_the_same_message(mistake: tuple[Mistake, Path]) -> None:
    case, path = mistake
    if not case.reaches_program:
        pytest.skip("the Pulumi CLI reads the YAML itself; the program never sees a file it cannot parse")
    recorded = run_stack(str(path), preview=True)
    assert recorded.error is not None, f"{case.id}: the program accepted it"
    assert [r.type for r in recorded.resources if r.custom] == [], "nothing may be registered"
    assert "Traceback" not in recorded.error
    for text in case.expected:
        assert text in recorded.error, f"{case.id}: {text!r} not in\n{recorded.error}"


def test_a_valid_stack_passes_check_config(capsys: pytest.CaptureFixture[str]) -> None:
    assert cli.main(["check-config", "--stack", "dev"]) == 0
    assert "stack config valid" in capsys.readouterr().out


UNKNOWN = f"unknown stack '{UNKNOWN_STACK}'; stacks: {project_stacks()}"


@pytest.mark.stacks
@pytest.mark.parametrize(
    ("argv", "expected"),
    [
        (["plan", "--stack", UNKNOWN_STACK], UNKNOWN),
        (["check-config", "--stack", UNKNOWN_STACK], UNKNOWN),
        (["rotate-check", "--stack", UNKNOWN_STACK], UNKNOWN),
        (["plan", "--stack", "/nowhere/Pulumi.gone.yaml"], "Pulumi.gone.yaml does not exist"),
    ],
)
def test_unknown_stacks_are_bad_input(argv: list[str], expected: str, capsys: pytest.CaptureFixture[str]) -> None:
    code = cli.main(argv)
    captured = capsys.readouterr()
    assert code == 2
    assert expected in captured.out + captured.err
    assert "Traceback" not in captured.out + captured.err


@pytest.mark.parametrize("argv", [[], ["plan", "--no-such-flag"], ["deploy"], ["rotate-check", "--as-of", "soon"]])
def test_usage_mistakes_exit_2(argv: list[str], capsys: pytest.CaptureFixture[str]) -> None:
    try:
        code = cli.main(argv)
    except SystemExit as exit_:  # argparse's own usage errors
        code = exit_.code
    captured = capsys.readouterr()
    assert code == 2
    assert "usage: kms-aks" in captured.err
    assert "Traceback" not in captured.err


KMS_AKS = Path(sys.executable).parent / "kms-aks"


@pytest.mark.parametrize("case_id", ["yaml-syntax", "unknown-key-in-block"])
def test_the_installed_script_exits_2_without_a_traceback(case_id: str, tmp_path: Path) -> None:
    case = next(m for m in MISTAKES if m.id == case_id)
    path = tmp_path / "Pulumi.mistake.yaml"
    path.write_text(DEV.replace(case.old, case.new, 1))
    result = subprocess.run(
        [str(KMS_AKS), "plan", "--stack", str(path)],
        capture_output=True,
        text=True,
        timeout=120,
        env=TERMINAL,
        check=False,
    )
    _assert_one_clear_message(case, result.returncode, result.stdout + result.stderr)


def _numeric_fields(model: type[BaseModel], path: str = "") -> list[tuple[str, FieldInfo]]:
    """Every int/float field of the config model, at any depth, with its YAML key path."""
    found: list[tuple[str, FieldInfo]] = []
    for name, field in model.model_fields.items():
        key = f"{path}{field.alias or name}"
        nested = model_of(field.annotation)
        if nested is not None:
            found.extend(_numeric_fields(nested, f"{key}."))
        elif field.annotation in (int, float):
            found.append((key, field))
    return found


def test_every_number_in_the_config_is_bounded() -> None:
    # A new numeric key must say its range, so `expireAfterDays: 1000000000` cannot come back.
    numbers = _numeric_fields(StackConfig)
    assert "kmsKey.rotation.expireAfterDays" in dict(numbers)
    unbounded = []
    for key, field in numbers:
        kinds = {type(m).__name__ for m in field.metadata}
        if not ({"Ge", "Gt"} & kinds and {"Le", "Lt"} & kinds):
            unbounded.append(key)
    assert unbounded == [], "numeric config keys without a lower and an upper bound"


def test_every_bad_input_error_of_the_tools_is_a_user_error() -> None:
    # One base: a subcommand that lets one through still exits 2 with its message (kms_aks_tools.cli.main).
    from kms_aks_tools.cli.exits import UserError
    from kms_aks_tools.cluster.connection import ClusterInputError
    from kms_aks_tools.cluster.keys import StackKeyError
    from kms_aks_tools.cluster.reencryption_records import RecordError
    from kms_aks_tools.commands.scan import ScanReportError
    from kms_aks_tools.offline.plan import PlanError
    from kms_aks_tools.offline.policy_pack import PolicyConfigError
    from kms_aks_tools.offline.realcli import ToolchainError
    from kms_aks_tools.offline.rotation import RotationCheckError
    from kms_aks_tools.project.stack_file import ProjectNotFoundError, StackFileError
    from kms_aks_tools.sandbox.home import SandboxError
    from kms_aks_tools.standin.saved import SavedCloudError

    errors = (
        ClusterInputError, StackKeyError, RecordError, SandboxError, ScanReportError, PlanError, PolicyConfigError,
        ToolchainError, RotationCheckError, ProjectNotFoundError, StackFileError, SavedCloudError,
    )  # fmt: skip
    assert [e.__name__ for e in errors if not issubclass(e, UserError)] == []


def test_a_user_error_a_subcommand_lets_through_exits_2_with_its_message(
    monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    from kms_aks_tools.cli.exits import UserError
    from kms_aks_tools.commands import check_config

    def refuse(_: object) -> int:
        raise UserError("stack 'x' names no vault; allowed: keyVault or existingKey")

    monkeypatch.setattr(check_config, "check_config", refuse)
    assert cli.main(["check-config", "--stack", "dev"]) == 2
    assert "error: stack 'x' names no vault; allowed: keyVault or existingKey" in capsys.readouterr().out
