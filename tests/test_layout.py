"""The layout's rules (docs/development.md, "Layers"): one home per concept, checked from the source (AST), so a
second copy fails here instead of drifting."""

from __future__ import annotations

import ast
import functools
import os
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parent.parent
# Where Python of this project lives (the virtualenvs and the Go build's caches excluded).
SOURCE_FOLDERS = ("azure_facts", "kms_aks", "kms_aks_tools", "components", "policies", "testbed", "bootstrap", "fleet")


@functools.cache
def _parsed(text: str, filename: str) -> ast.Module:
    # Keyed by the text itself, so an edited file is parsed again; the checks only read the trees.
    return ast.parse(text, filename)


def parse(path: Path) -> ast.Module:
    """`path`'s syntax tree, parsed once per test session for the many checks that walk every module."""
    return _parsed(path.read_text(), str(path))


def project_sources(root: Path = ROOT) -> list[Path]:
    files = [root / "__main__.py"]
    for folder in SOURCE_FOLDERS:
        for directory, subdirectories, names in os.walk(root / folder):
            # Not walked at all: the pack's virtualenv alone holds thousands of files.
            subdirectories[:] = [d for d in subdirectories if d not in ("venv", "site-packages", "__pycache__")]
            files += [Path(directory) / name for name in names if name.endswith(".py")]
    return sorted(files)


def definitions(name: str, root: Path = ROOT) -> list[str]:
    """Every module (path from the root) that defines a function, class or name `name` at its top level (a
    method of that name, such as `StackKey.plugin_key_id`, is a property of something else)."""
    found = []
    for path in project_sources(root):
        for node in parse(path).body:
            if isinstance(node, (ast.FunctionDef, ast.AsyncFunctionDef, ast.ClassDef)):
                names = {node.name}
            elif isinstance(node, ast.Assign):
                names = {t.id for t in node.targets if isinstance(t, ast.Name)}
            elif isinstance(node, ast.AnnAssign) and isinstance(node.target, ast.Name):
                names = {node.target.id}
            else:
                continue
            if name in names:
                found.append(str(path.relative_to(root)))
    return found


# Each concept and its one home. A second definition anywhere (the pack included) fails.
ONE_HOME = {
    "normalize_key_id": "azure_facts/key_ids.py",
    "canonical_key_url": "azure_facts/key_ids.py",
    "plugin_key_id": "azure_facts/key_ids.py",
    "metric_key_id_hash": "azure_facts/key_ids.py",
    "plain_type": "azure_facts/tokens.py",
    "pinned_api_version": "azure_facts/tokens.py",
    "_API_VERSION": "azure_facts/tokens.py",  # the API-version regex, in both spellings
    "API_VERSION_PATTERN": "azure_facts/tokens.py",
    "UNKNOWN": "azure_facts/engine.py",
    "SECRET_SIG": "azure_facts/engine.py",
    "SECRET_SIG_KEY": "azure_facts/engine.py",
    "Secret": "azure_facts/engine.py",  # a secret decoded: the one marker plain values carry
    "type_from_urn": "azure_facts/engine.py",
    "name_from_urn": "azure_facts/engine.py",
    "stack_from_urn": "azure_facts/engine.py",
    "PACKAGE_ROOT": "kms_aks_tools/project/stack_file.py",
    "stack_config_from_file": "kms_aks_tools/project/stack_config.py",
    "with_secret_stand_ins": "kms_aks_tools/project/stack_config.py",
    "UserError": "kms_aks_tools/cli/exits.py",
    # One finding for the pack, the guard and the rotation check (the serialised verdict's VerdictFinding is a
    # contract of its own).
    "Finding": "azure_facts/findings.py",
    "violation": "azure_facts/findings.py",
    "could_not_decide": "azure_facts/findings.py",
    "not_applicable": "azure_facts/findings.py",
    # One reading of a property path for the pack, the closure, the guard and `kms-aks changes`.
    "lookup": "azure_facts/property_paths.py",
    "dig": "azure_facts/property_paths.py",
    "unwrap": "azure_facts/property_paths.py",
    "unwrap_secret": None,
    "unseen": "azure_facts/property_paths.py",
    "is_unknown": "azure_facts/property_paths.py",
    "split_property_path": "azure_facts/property_paths.py",
    "_PATH_TOKEN": "azure_facts/property_paths.py",
    "UNKNOWN_SENTINELS": "azure_facts/property_paths.py",
    "MASKED": "azure_facts/property_paths.py",
    "MASKED_SECRET": None,
    "MISSING": "azure_facts/property_paths.py",
    "leaves": "azure_facts/property_paths.py",
    "changed_leaves": "azure_facts/property_paths.py",
    "_leaves": None,
    "_diff": None,
    "_touches": None,
}


@pytest.mark.parametrize("name", sorted(ONE_HOME))
def test_one_definition(name: str) -> None:
    # None: a retired name of a concept whose home is above; no module may define it again.
    assert definitions(name) == ([ONE_HOME[name]] if ONE_HOME[name] else [])


def callers(name: str, root: Path = ROOT) -> list[str]:
    """Every kms_aks_tools module that calls `name(...)`."""
    found = []
    for path in sorted((root / "kms_aks_tools").rglob("*.py")):
        for node in ast.walk(parse(path)):
            if isinstance(node, ast.Call) and getattr(node.func, "id", getattr(node.func, "attr", None)) == name:
                found.append(str(path.relative_to(root)))
                break
    return found


def test_the_tools_read_a_stack_file_into_a_stack_config_in_one_place() -> None:
    # Stack file -> secret stand-ins -> the program's validation: project/stack_config.py, nowhere else.
    assert callers("parse_stack_config") == ["kms_aks_tools/project/stack_config.py"]
    assert callers("read_project_config") == ["kms_aks_tools/project/stack_config.py"]


def test_the_checker_sees_a_second_definition(tmp_path: Path) -> None:
    # The walk must see a copy wherever it is, or the test above passes vacuously.
    (tmp_path / "__main__.py").write_text("")
    copies = {"kms_aks_tools": "def normalize_key_id(k):\n    return k\n", "policies": "normalize_key_id = str\n"}
    for folder, text in copies.items():
        (tmp_path / folder).mkdir()
        (tmp_path / folder / "x.py").write_text(text)
    assert definitions("normalize_key_id", tmp_path) == ["kms_aks_tools/x.py", "policies/x.py"]


def test_the_checker_sees_a_second_finding_class(tmp_path: Path) -> None:
    # A gate that grows its own Finding again (a class, or a dataclass, anywhere) fails test_one_definition.
    (tmp_path / "__main__.py").write_text("")
    (tmp_path / "kms_aks_tools" / "offline").mkdir(parents=True)
    (tmp_path / "kms_aks_tools" / "offline" / "rotation.py").write_text(
        "from dataclasses import dataclass\n\n@dataclass(frozen=True)\nclass Finding:\n    message: str\n"
    )
    (tmp_path / "azure_facts").mkdir()
    (tmp_path / "azure_facts" / "findings.py").write_text("class Finding:\n    pass\n")
    assert definitions("Finding", tmp_path) == ["azure_facts/findings.py", "kms_aks_tools/offline/rotation.py"]


# ------------------------------------------------------------------------------------------- import layers

# kms_aks_tools' layers, top first (docs/development.md, "Layers"). A module is in the layer of its longest
# matching prefix. Imports point down or stay in their layer, never up; the frame reaches the commands only by name
# (cli/registry.py), never by an import.
LAYERS: list[tuple[str, tuple[str, ...]]] = [
    ("frame", ("kms_aks_tools.cli.main", "kms_aks_tools.cli.every_stack", "kms_aks_tools.cli.__main__")),
    (
        "commands",
        (
            "kms_aks_tools.commands",
            "kms_aks_tools.sandbox",
            "kms_aks_tools.guard",
            "kms_aks_tools.preview",
            "kms_aks_tools.change_summary",
            "kms_aks_tools.pr_comment",
            "kms_aks_tools.cluster.reencrypt",
            "kms_aks_tools.cluster.key_status",
        ),
    ),
    ("cluster and stand-in", ("kms_aks_tools.cluster", "kms_aks_tools.standin")),
    ("offline", ("kms_aks_tools.offline",)),
    ("project", ("kms_aks_tools.project",)),
    ("shared", ("kms_aks_tools.cli", "kms_aks_tools")),
]
# Below every layer: the program side and the facts, which never import the tooling.
BELOW = ("kms_aks", "components", "azure_facts")
# Never imported by the shipped tooling: the test bed and the tests.
NOT_SHIPPED = ("testbed", "tests")


def _matches(module: str, prefix: str) -> bool:
    return module == prefix or module.startswith(prefix + ".")


def layer_of(module: str) -> int | None:
    best: tuple[int, int] | None = None  # (prefix length, layer index)
    for index, (_, prefixes) in enumerate(LAYERS):
        for prefix in prefixes:
            if _matches(module, prefix) and (best is None or len(prefix) > best[0]):
                best = (len(prefix), index)
    return None if best is None else best[1]


def module_name(path: Path, root: Path) -> str:
    parts = list(path.relative_to(root).with_suffix("").parts)
    return ".".join(parts[:-1] if parts[-1] == "__init__" else parts)


def imports_of(path: Path, module: str) -> set[str]:
    """Every module `path` imports, anywhere in it (function bodies too); `if TYPE_CHECKING:` blocks left out."""
    tree = parse(path)
    skipped = {
        id(node)
        for block in ast.walk(tree)
        if isinstance(block, ast.If) and "TYPE_CHECKING" in ast.unparse(block.test)
        for node in ast.walk(block)
    }
    package = module if path.name == "__init__.py" else module.rpartition(".")[0]
    found: set[str] = set()
    for node in ast.walk(tree):
        if id(node) in skipped:
            continue
        if isinstance(node, ast.Import):
            found.update(alias.name for alias in node.names)
        elif isinstance(node, ast.ImportFrom):
            base = node.module or ""
            if node.level:  # relative: resolved against the package
                parent = package.split(".")[: len(package.split(".")) - node.level + 1]
                base = ".".join([*parent, base] if base else parent)
            found.add(base)
            found.update(f"{base}.{alias.name}" for alias in node.names)  # `from pkg import module`
    return found


def import_graph(root: Path = ROOT) -> dict[str, set[str]]:
    """kms_aks_tools' modules and the project modules each imports (kms_aks_tools, testbed, tests, the program)."""
    modules = {module_name(p, root): p for p in (root / "kms_aks_tools").rglob("*.py")}
    ours = ("kms_aks_tools", *BELOW, *NOT_SHIPPED)
    graph: dict[str, set[str]] = {}
    for module, path in modules.items():
        targets = set()
        for name in imports_of(path, module):
            if name in modules or (name.split(".")[0] in ours and name.split(".")[0] != "kms_aks_tools"):
                targets.add(name)
        graph[module] = targets - {module}
    return graph


def upward_imports(graph: dict[str, set[str]]) -> list[str]:
    problems = []
    for module, targets in sorted(graph.items()):
        here = layer_of(module)
        for target in sorted(targets):
            if target.split(".")[0] in NOT_SHIPPED:
                problems.append(f"{module} imports {target}, which is not shipped")
                continue
            there = layer_of(target)
            if there is not None and here is not None and there < here:
                problems.append(f"{module} ({LAYERS[here][0]}) imports {target} ({LAYERS[there][0]}): upward")
    return problems


def circles(graph: dict[str, set[str]]) -> list[list[str]]:
    """Each import circle among kms_aks_tools' modules, once."""
    internal = {m: {t for t in ts if t in graph} for m, ts in graph.items()}
    found: list[list[str]] = []
    seen: set[frozenset[str]] = set()

    def visit(start: str, node: str, path: list[str]) -> None:
        for target in sorted(internal[node]):
            if target == start:
                cycle = frozenset(path)
                if cycle not in seen:
                    seen.add(cycle)
                    found.append([*path, start])
            elif target not in path and target > start:
                visit(start, target, [*path, target])

    for module in sorted(internal):
        visit(module, module, [module])
    return found


def test_the_layers_cover_every_module() -> None:
    assert [m for m in import_graph() if layer_of(m) is None] == []


def test_no_import_points_up() -> None:
    assert upward_imports(import_graph()) == []


def test_no_import_circle() -> None:
    assert circles(import_graph()) == []


def test_the_checks_see_a_circle_and_an_upward_import(tmp_path: Path) -> None:
    # A project in miniature: offline imports cli.main (up), and two offline modules import each other.
    package = tmp_path / "kms_aks_tools"
    (package / "offline").mkdir(parents=True)
    (package / "cli").mkdir()
    for init in (package, package / "offline", package / "cli"):
        (init / "__init__.py").write_text("")
    (package / "cli" / "main.py").write_text("")
    (package / "offline" / "a.py").write_text("from kms_aks_tools.offline import b\n")
    (package / "offline" / "b.py").write_text("def f():\n    from kms_aks_tools.offline.a import x\n")
    (package / "offline" / "c.py").write_text("from kms_aks_tools.cli.main import main\nimport testbed.keyvault\n")
    graph = import_graph(tmp_path)
    assert circles(graph) == [["kms_aks_tools.offline.a", "kms_aks_tools.offline.b", "kms_aks_tools.offline.a"]]
    assert upward_imports(graph) == [
        "kms_aks_tools.offline.c (offline) imports kms_aks_tools.cli.main (frame): upward",
        "kms_aks_tools.offline.c imports testbed.keyvault, which is not shipped",
    ]
