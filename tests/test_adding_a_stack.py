"""docs/configuration.md's "Adding a stack", followed word for word in a copy of the project, ends green.

Steps 1, 2, 3 and 5 are done as the page says, with the commands and edits it names (each one is looked up in
the page first, so a step that stops matching the project fails here); steps 4 and 6 need the team backend and
GitHub. Then `make plan STACK=<name>` must exit 0 and the suite's stack-dependent tests (`-m stacks`, every test
whose outcome depends on which stack files exist) must pass on the copy. The page's example name is `staging`; the
stack is added here under another one (`qa`), as a team would name its own, so that no test can pass by knowing
the page's example (or `qa-2` where the project has a `qa` already).
"""

from __future__ import annotations

import json
import os
import re
import shlex
import shutil
import subprocess
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parent.parent
PAGE = (ROOT / "docs" / "configuration.md").read_text()
ENV = {**os.environ, "COLUMNS": "400", "TERM": "dumb"}
EXAMPLE = "staging"  # the page's name for the new stack
SHIPPED = sorted(p.name.removeprefix("Pulumi.").removesuffix(".yaml") for p in ROOT.glob("Pulumi.*.yaml"))
# The name it is added under here: not the page's, and not one the project has already (a team's own `qa`).
NAME = next(name for name in ("qa", "qa-2", "qa-3") if name not in SHIPPED)


def step(number: int) -> str:
    """The text of step `number` of "Adding a stack"."""
    section = PAGE[PAGE.index("## Adding a stack") :]
    match = re.search(rf"^{number}\. (.*?)(?=^\d+\. |^\S|\Z)", section, re.M | re.S)
    assert match, f"no step {number} in docs/configuration.md's Adding a stack"
    return " ".join(match[1].split())


def copy_project(destination: Path) -> None:
    """The project as git has it (tests included), sharing the virtualenvs `make` built in the checkout."""
    listed = subprocess.run(
        ["git", "ls-files", "-co", "--exclude-standard"], cwd=ROOT, capture_output=True, text=True, check=True
    ).stdout.splitlines()
    for relative in listed:
        source = ROOT / relative
        if source.is_file():
            (destination / relative).parent.mkdir(parents=True, exist_ok=True)
            shutil.copy2(source, destination / relative)
    for venv in (".venv", "policies/venv"):
        (destination / venv).symlink_to(ROOT / venv)


# The shared virtualenvs are the checkout's: make must not reinstall into them from the copy (`-o`: take the
# install stamps as up to date), or the checkout's editable install would point at the copy.
MAKE = ["make", "-s", "-o", ".venv/.installed", "-o", "policies/venv/.installed"]


def run(command: list[str], cwd: Path, timeout: int = 600) -> subprocess.CompletedProcess[str]:
    return subprocess.run(command, cwd=cwd, capture_output=True, text=True, timeout=timeout, env=ENV, check=False)


def backticked(text: str, prefix: str) -> str:
    found = [code for code in re.findall(r"`([^`]+)`", text) if code.startswith(prefix)]
    assert found, f"no `{prefix}...` in: {text}"
    return found[0]


def files_marking_stacks(project: Path) -> list[str]:
    """The test files that mark a test `stacks`, however they mark it (decorator, pytestmark, param marks)."""
    found = [
        str(path.relative_to(project))
        for path in sorted((project / "tests").rglob("test_*.py"))
        if STACKS_MARK.search(path.read_text())
    ]
    assert found, "no test file marks a test `stacks`"
    return found


STACKS_MARK = re.compile(r"mark\.stacks\b|add_marker\(\s*[\"']stacks[\"']")


@pytest.fixture(scope="module")
def staging(tmp_path_factory: pytest.TempPathFactory) -> Path:
    project = tmp_path_factory.mktemp("adding-a-stack") / "project"
    copy_project(project)
    return project


def as_named(text: str) -> str:
    """The page's text for its example stack, for the stack added here."""
    return text.replace(EXAMPLE, NAME)


def test_adding_a_stack_by_the_docs_ends_green(staging: Path) -> None:
    # 1. Copy Pulumi.prod.yaml and change the names it lists.
    one = step(1)
    assert "copy `Pulumi.prod.yaml`" in one
    text = (staging / "Pulumi.prod.yaml").read_text()
    names = {"kms-aks:keyVault.name": "kv-kmsaks-prod-01", "kms-aks:kmsKey.name": "aks-kms-prod"}
    names["kms-aks:cluster.name"] = "aks-kms-prod"
    for key in names:
        assert f"`{key}`" in one, key
    for value in set(names.values()):
        assert f"name: {value}" in text
        text = text.replace(f"name: {value}", f"name: {value.replace('prod', NAME)}")
    (staging / f"Pulumi.{NAME}.yaml").write_text(text)

    # Before step 2, the plan names the missing policy config and what to start from.
    before = run([*MAKE, "plan", f"STACK={NAME}"], staging)
    assert f"no policy config policies/config/{NAME}.json" in before.stdout, before.stdout + before.stderr
    assert f"cp policies/config/prod.json policies/config/{NAME}.json" in before.stdout

    # 2. The page's own command.
    copy = backticked(step(2), "cp ")
    assert copy.endswith(f"{EXAMPLE}.json")
    assert run(shlex.split(as_named(copy)), staging).returncode == 0
    assert (staging / "policies" / "config" / f"{NAME}.json").is_file()

    # 3. make plan STACK=staging: exit 0, the new stack's own names, no warning about its policy config.
    assert f"`make plan STACK={EXAMPLE}`" in step(3)
    planned = run([*MAKE, "plan", f"STACK={NAME}"], staging)
    assert planned.returncode == 0, planned.stdout + planned.stderr
    assert f"stack {NAME} (preview)" in planned.stdout
    assert f"with policies/config/{NAME}.json" in planned.stdout
    assert "no policy config" not in planned.stdout

    # 5. Nothing to edit: the workflows' matrix (.ci/stack-matrix) now lists the new stack, with the protected ones.
    assert "`.ci/stack-matrix`" in step(5)
    listed = run([str(staging / ".ci" / "stack-matrix")], staging)
    assert listed.returncode == 0, listed.stderr
    matrix = dict(line.split("=", 1) for line in listed.stdout.splitlines())
    assert json.loads(matrix["stacks"]) == sorted([*SHIPPED, NAME])
    assert NAME in json.loads(matrix["protected"]) and "prod" in json.loads(matrix["protected"])

    # The suite's stack-dependent tests, on the copy with one more stack (only the files that mark any: collecting
    # the rest would cost more than running these).
    python = str(staging / ".venv" / "bin" / "python")
    marked = files_marking_stacks(staging)
    suite = run([python, "-m", "pytest", "-q", "-p", "no:xdist", "-m", "stacks", *marked], staging)
    assert suite.returncode == 0, suite.stdout[-6000:] + suite.stderr[-3000:]
    assert re.search(r"\b\d+ passed\b", suite.stdout), suite.stdout
    assert " failed" not in suite.stdout and " error" not in suite.stdout
