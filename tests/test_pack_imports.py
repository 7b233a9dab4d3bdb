"""The policy pack imports nothing of the program: only the standard library, its own modules, its PyPI
dependencies and azure_facts (which imports only the standard library). Read from the source (AST), so an
import inside a function or behind a condition counts too."""

from __future__ import annotations

import ast
import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parent.parent
PACK = ROOT / "policies"
FACTS = ROOT / "azure_facts"

# What policies/requirements-sdk.txt brings (pulumi-policy, pulumi and its protobuf), and azure_facts.
PACK_THIRD_PARTY = {"pulumi", "pulumi_policy", "google", "azure_facts"}
# The program's and tooling's packages, and the SDKs only the program uses: named so a failure says why.
PROGRAM_SIDE = {"kms_aks", "components", "kms_aks_tools", "bootstrap", "tests", "pulumi_azure_native", "pulumi_azuread"}


def imported_modules(path: Path) -> set[str]:
    """Top-level names of every module `path` imports (relative imports are reported as '.')."""
    found: set[str] = set()
    for node in ast.walk(ast.parse(path.read_text(), str(path))):
        if isinstance(node, ast.Import):
            found.update(alias.name.split(".")[0] for alias in node.names)
        elif isinstance(node, ast.ImportFrom):
            found.add("." if node.level else (node.module or "").split(".")[0])
        elif isinstance(node, ast.Call) and getattr(node.func, "id", getattr(node.func, "attr", "")) in {
            "import_module",
            "__import__",
        }:
            found.add("<dynamic import>")
    return found


def _sources(folder: Path) -> list[Path]:
    return sorted(p for p in folder.rglob("*.py") if "venv" not in p.parts)


@pytest.mark.parametrize("source", _sources(PACK), ids=lambda p: str(p.relative_to(PACK)))
def test_pack_imports_nothing_of_the_program(source: Path) -> None:
    # The pack's own top-level modules and packages (kms_rules/), which its modules import absolutely.
    own = {p.stem for p in PACK.glob("*.py")} | {p.parent.name for p in PACK.glob("*/__init__.py")}
    allowed = set(sys.stdlib_module_names) | own | PACK_THIRD_PARTY
    imports = imported_modules(source)
    assert not imports & PROGRAM_SIDE, f"{source.name} imports the program: {sorted(imports & PROGRAM_SIDE)}"
    assert imports <= allowed, f"{source.name} imports {sorted(imports - allowed)}, which the pack's venv lacks"


@pytest.mark.parametrize("source", _sources(FACTS), ids=lambda p: p.name)
def test_azure_facts_is_standard_library_only(source: Path) -> None:
    allowed = set(sys.stdlib_module_names) | {"azure_facts"}  # its modules may use one another
    imports = imported_modules(source)
    assert imports <= allowed, sorted(imports - allowed)


def test_the_checker_sees_a_forbidden_import(tmp_path: Path) -> None:
    # The AST walk must see imports anywhere in a module, or the tests above pass vacuously.
    source = tmp_path / "bad.py"
    source.write_text("def f():\n    from kms_aks.config import PROJECT\n    import components.kms_identity\n")
    assert imported_modules(source) >= {"kms_aks", "components"}


def test_pack_loads_without_the_program_on_its_path() -> None:
    # As the CLI runs it: cwd policies/, the pack's folder first on sys.path and the repository root absent.
    code = (
        "import sys\n"
        f"sys.path = [p for p in sys.path if p not in ('', {str(ROOT)!r})]\n"
        "sys.path.insert(0, '.')\n"
        "import kms_pack, shared_stack_view\n"
        "bad = sorted(m for m in sys.modules if m.split('.')[0] in "
        f"{sorted(PROGRAM_SIDE)!r})\n"
        "assert not bad, bad\n"
        "import azure_facts\n"
        "print(azure_facts.__name__)\n"
    )
    result = subprocess.run(
        [sys.executable, "-c", code], cwd=PACK, capture_output=True, text=True, timeout=120, check=False
    )
    assert result.returncode == 0, result.stderr
    assert result.stdout.strip() == "azure_facts"
