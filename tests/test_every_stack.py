"""`kms-aks plan --all` and `kms-aks rotate-check --all`: every stack file of a project, each in its own process.

The projects here are temporary folders of stack files (copies of the shipped ones under other names, and one
broken file); the program is the real one. The parent runs in-process (the `kms_aks` fixture); each stack runs
in a worker process, as in production.
"""

from __future__ import annotations

import json
import shutil
from datetime import UTC, date, datetime, timedelta
from pathlib import Path

import pytest
import yaml

from kms_aks_tools.cli import every_stack
from kms_aks_tools.cli.rows import StackRow
from kms_aks_tools.offline import realcli
from kms_aks_tools.offline.mock_engine import ROOT
from tests.conftest import KmsAks

# Today (UTC), so that the config's own "expiresOn is in the future" check and rotate-check agree on any day.
TODAY = datetime.now(tz=UTC).date()
AS_OF = TODAY.isoformat()


def _copy(project: Path, source: str, name: str, **changes: object) -> None:
    """Pulumi.<source>.yaml as Pulumi.<name>.yaml of `project`: a copy of this project (its program, pack and policy
    configs, which `--all --cwd` uses), with only the stack files the test writes."""
    if not (project / "Pulumi.yaml").exists():
        realcli.copy_project(ROOT, project)
        for shipped in project.glob("Pulumi.*.yaml"):
            shipped.unlink()
    document = yaml.safe_load((ROOT / f"Pulumi.{source}.yaml").read_text())
    document["config"].update(changes)
    (project / f"Pulumi.{name}.yaml").write_text(yaml.safe_dump(document, sort_keys=False))


@pytest.fixture(scope="module")
def project(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """Four stacks: two good ones in other regions, one whose rotation is refused, one broken YAML file."""
    folder = tmp_path_factory.mktemp("stacks")
    _copy(folder, "prod", "eu-1")
    _copy(
        folder,
        "dev",
        "us-1",
        **{"azure-native:location": "eastus", "kms-aks:location": "eastus"},
    )
    _copy(
        folder,
        "prod",
        "us-2",
        **{
            "azure-native:location": "eastus2",
            "kms-aks:location": "eastus2",
            # The first version expires 30 days from now, before its first rotation at 90 days: refused (exit 1).
            "kms-aks:kmsKey": {
                "name": "aks-kms-us-2",
                "type": "RSA-HSM",
                "size": 3072,
                "expiresOn": (TODAY + timedelta(days=30)).isoformat(),
                "rotation": {"rotateAfterDays": 90, "expireAfterDays": 395},
            },
        },
    )
    (folder / "Pulumi.broken.yaml").write_text("config:\n  kms-aks:location: [westeurope\n")
    return folder


def _json(result_stdout: str) -> dict:
    return json.loads(result_stdout)


WorkerKey = tuple[str, str, str, str, str, str]


def _worker_inputs(subcommand: str, stack_file: Path, as_of: date) -> WorkerKey:
    """Everything a worker's row depends on: the subcommand, the stack file (path and text), the date, and its
    project's program and policy config for that stack."""
    project = stack_file.parent
    name = stack_file.name.removeprefix("Pulumi.").removesuffix(".yaml")
    policy_config = project / "policies" / "config" / f"{name}.json"
    return (
        subcommand,
        str(stack_file),
        stack_file.read_text(),
        as_of.isoformat(),
        (project / "__main__.py").read_text(),
        policy_config.read_text() if policy_config.is_file() else "",
    )


class Workers:
    """`every_stack.run_worker` with its rows kept: a stack whose inputs are all unchanged since a worker process
    ran it gets that process's row instead of a second, identical process (a worker costs about a second of CPU).
    Everything else `--all` does (finding the stack files, the table, the JSON, the exit code) runs every time."""

    def __init__(self, monkeypatch: pytest.MonkeyPatch) -> None:
        self.rows: dict[WorkerKey, StackRow] = {}
        self.processes: list[str] = []  # the stacks a worker process ran, in order
        real = every_stack.run_worker

        def run_worker(subcommand: str, stack_file: Path, as_of: date) -> StackRow:
            key = _worker_inputs(subcommand, stack_file, as_of)
            if key in self.rows:
                return self.rows[key]
            row = self.rows[key] = real(subcommand, stack_file, as_of)
            self.processes.append(row.stack)
            return row

        monkeypatch.setattr(every_stack, "run_worker", run_worker)


def test_rotate_check_all_one_row_per_stack_the_broken_one_reported_worst_exit_code(
    kms_aks: KmsAks, project: Path
) -> None:
    result = kms_aks("rotate-check", "--all", "--cwd", str(project), "--as-of", AS_OF, "--json", "-", "--jobs", "2")
    document = _json(result.stdout)
    rows = {row["stack"]: row for row in document["stacks"]}
    assert list(rows) == ["broken", "eu-1", "us-1", "us-2"]  # every stack file, in name order
    assert result.returncode == 2 == document["exitCode"]  # the worst: the broken file's bad input
    assert rows["broken"]["exitCode"] == 2
    assert rows["broken"]["error"].startswith("Pulumi.broken.yaml:3:1: YAML syntax error")
    # The others still ran, each with its own verdict.
    assert rows["eu-1"] == {
        "stack": "eu-1",
        "exitCode": 0,
        "location": "westeurope",
        "keyId": "https://kv-kmsaks-prod-01.vault.azure.net/keys/aks-kms-prod",
        # prod's rotation policy: versions expire 395 days after creation.
        "keyExpiry": (date.fromisoformat(AS_OF) + timedelta(days=395)).isoformat(),
        "daysLeft": 395,
        "policy": "not run",
        "rotation": "fit",
        "error": None,
    }
    assert rows["us-1"]["location"] == "eastus"
    assert rows["us-1"]["keyExpiry"] == "never" and rows["us-1"]["daysLeft"] is None
    assert rows["us-1"]["rotation"] == "fit" and rows["us-1"]["exitCode"] == 0
    assert rows["us-2"]["rotation"] == "refused" and rows["us-2"]["exitCode"] == 1
    assert rows["us-2"]["keyExpiry"] == (TODAY + timedelta(days=30)).isoformat() and rows["us-2"]["daysLeft"] == 30
    # The table went to stderr (JSON on stdout), whole: the key ids are not cut.
    assert "https://kv-kmsaks-prod-01.vault.azure.net/keys/aks-kms-prod" in result.stderr
    assert "exit code 2 (the worst of the stacks')" in result.stderr


def test_plan_all_policy_and_rotation_verdicts_in_one_table(
    kms_aks: KmsAks, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    workers = Workers(monkeypatch)
    # "prod" here is a copy of dev: judged with policies/config/prod.json, it is blocked (exit 1).
    _copy(tmp_path, "dev", "prod")
    _copy(tmp_path, "prod", "eu-1")
    (tmp_path / "Pulumi.bad.yaml").write_text(
        yaml.safe_dump({"config": {"kms-aks:location": "westeurope", "kms-aks:kmsKey": {"size": 1000}}})
    )
    out = tmp_path / "all.json"
    result = kms_aks("plan", "--all", "--cwd", str(tmp_path), "--as-of", AS_OF, "--json", str(out))
    document = json.loads(out.read_text())
    rows = {row["stack"]: row for row in document["stacks"]}
    assert result.returncode == 2 == document["exitCode"]
    assert rows["bad"]["exitCode"] == 2 and "kms-aks:kmsKey" in rows["bad"]["error"]
    assert rows["prod"]["policy"] == "blocked" and rows["prod"]["exitCode"] == 1
    assert rows["prod"]["rotation"] == "fit"
    assert rows["eu-1"]["policy"] in ("clean", "advisory") and rows["eu-1"]["exitCode"] == 0
    assert rows["eu-1"]["rotation"] == "fit" and rows["eu-1"]["daysLeft"] == 395
    for stack in ("bad", "prod", "eu-1"):
        assert stack in result.stdout
    assert "blocked" in result.stdout and f"table written to {out}" in result.stdout

    assert sorted(workers.processes) == ["bad", "eu-1", "prod"]  # each stack in a process of its own

    # Without the broken file, the worst is the blocked stack's 1. The two stacks left are unchanged (their files,
    # program, policy configs and, but across midnight UTC, the date), so their rows are the worker processes' above.
    (tmp_path / "Pulumi.bad.yaml").unlink()
    again = kms_aks("plan", "--all", "--cwd", str(tmp_path), "--json", "-")
    assert [row["stack"] for row in _json(again.stdout)["stacks"]] == ["eu-1", "prod"]
    assert again.returncode == 1 == _json(again.stdout)["exitCode"]


def test_a_worker_that_dies_is_its_own_row(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> None:
    shutil.copy(ROOT / "Pulumi.dev.yaml", tmp_path / "Pulumi.dev.yaml")
    monkeypatch.setattr(every_stack.sys, "executable", "/bin/false")
    rows = every_stack.run_all("rotate-check", tmp_path, as_of=date(2026, 12, 1), jobs=1)
    assert len(rows) == 1 and rows[0].exit_code == 2 and "process failed" in (rows[0].error or "")


@pytest.mark.parametrize(
    ("args", "message"),
    [
        (("plan", "--all", "--graph", "x.dot"), "--graph works on one stack"),
        (("plan", "--all", "--applied"), "--applied works on one stack"),
        (("rotate-check", "--all", "--cwd", "/nonexistent"), "no Pulumi.yaml in"),
        (("rotate-check", "--stack", "prod", "--json", "-"), "--json only with --all"),
        (("plan", "--jobs", "2"), "--jobs only with --all"),
    ],
)
def test_all_refuses_what_it_cannot_do_with_exit_2(kms_aks: KmsAks, args: tuple[str, ...], message: str) -> None:
    result = kms_aks(*args)
    assert result.returncode == 2
    assert message in result.stdout + result.stderr
    assert "Traceback" not in result.stdout + result.stderr


def test_all_on_a_folder_without_stack_files_is_bad_input(kms_aks: KmsAks, tmp_path: Path) -> None:
    shutil.copy(ROOT / "Pulumi.yaml", tmp_path / "Pulumi.yaml")
    result = kms_aks("rotate-check", "--all", "--cwd", str(tmp_path))
    assert result.returncode == 2 and "no Pulumi.<stack>.yaml" in result.stdout


@pytest.mark.parametrize("subcommand", ["plan", "rotate-check"])
def test_all_with_cwd_runs_the_other_projects_program_pack_and_config(
    kms_aks: KmsAks, tmp_path: Path, subcommand: str
) -> None:
    other = tmp_path / "other"
    other.mkdir()
    _copy(other, "dev", "prod")
    # Its policy config for "prod" is dev's: judged with this checkout's prod.json instead, dev's settings are blocked.
    shutil.copy(ROOT / "policies" / "config" / "dev.json", other / "policies" / "config" / "prod.json")
    if subcommand == "plan":
        judged = _json(kms_aks("plan", "--all", "--cwd", str(other), "--as-of", AS_OF, "--json", "-").stdout)
        [row] = judged["stacks"]
        assert row["policy"] in ("clean", "advisory") and row["exitCode"] == 0, row
    # Its program, not this checkout's: a program that stops at once is this stack's error row.
    main_py = other / "__main__.py"
    main_py.write_text('raise RuntimeError("the other project\'s program ran")\n' + main_py.read_text())
    result = kms_aks(subcommand, "--all", "--cwd", str(other), "--as-of", AS_OF, "--json", "-")
    [row] = _json(result.stdout)["stacks"]
    assert row["exitCode"] == 2 and "the other project's program ran" in (row["error"] or ""), row


def test_the_registry_says_which_subcommands_run_over_every_stack() -> None:
    # `--all` is wired by the registry's flag, not by looking for a function: the flag and the module agree.
    import importlib

    from kms_aks_tools.cli.main import build_parser
    from kms_aks_tools.cli.registry import SUBCOMMANDS

    flagged = sorted(name for name, entry in SUBCOMMANDS.items() if entry.every_stack)
    assert flagged == ["plan", "rotate-check"]
    for name, entry in SUBCOMMANDS.items():
        assert hasattr(importlib.import_module(entry.module), "stack_row") == entry.every_stack, name
        parser = build_parser(only=name)
        (action,) = [a for a in parser._actions if a.dest == "command"]
        options = action.choices[name]._option_string_actions
        assert ("--all" in options) == entry.every_stack, name
