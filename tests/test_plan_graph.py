"""`kms-aks plan --graph x.svg` rendered by Graphviz (`make test` installs it: the Makefile's graphviz target).

What the reader gets: no implied arrow (the transitive reduction, checked against a closure computed here), the
KMS chain in red, its unprotected resources marked, every component box titled distinctly, and one font.
"""

from __future__ import annotations

import itertools
import json
import re
import shutil
import xml.etree.ElementTree as ElementTree
from collections import deque

import pytest

from tests.cli import run_kms_aks

SVG = "{http://www.w3.org/2000/svg}"


def closure(edges: set[tuple[str, str]]) -> set[tuple[str, str]]:
    """Every (a, b) with a path from a to b."""
    successors: dict[str, set[str]] = {}
    for a, b in edges:
        successors.setdefault(a, set()).add(b)
    found = set()
    for start in successors:
        queue, seen = deque(successors[start]), set()
        while queue:
            node = queue.popleft()
            if node not in seen:
                seen.add(node)
                queue.extend(successors.get(node, ()))
        found |= {(start, node) for node in seen}
    return found


def implied(edge: tuple[str, str], edges: set[tuple[str, str]]) -> bool:
    """True when another path leads from the edge's start to its end."""
    return edge in closure(edges - {edge})


@pytest.fixture(scope="module")
def rendered(tmp_path_factory: pytest.TempPathFactory) -> tuple[dict, ElementTree.Element, str]:
    assert shutil.which("dot"), "graphviz's dot is missing: make test installs it (make graphviz, as root)"

    folder = tmp_path_factory.mktemp("graph")
    result = run_kms_aks(
        "plan", "--stack", "prod", "--graph", str(folder / "plan.svg"), "--json", str(folder / "plan.json")
    )
    assert result.returncode == 0, result.stdout + result.stderr
    svg = (folder / "plan.svg").read_text()
    return json.loads((folder / "plan.json").read_text()), ElementTree.fromstring(svg), svg


def test_the_graph_has_no_implied_arrow_and_loses_no_dependency(
    rendered: tuple[dict, ElementTree.Element, str],
) -> None:
    plan, svg, _ = rendered
    names = {r["urn"]: r["name"] for r in plan["resources"]}
    original = {(names[d], r["name"]) for r in plan["resources"] for d in r["dependencies"]}
    drawn = set()
    for edge in svg.iter(f"{SVG}g"):
        if edge.get("class") == "edge":
            start, end = edge.find(f"{SVG}title").text.split("->")  # type: ignore[union-attr]
            drawn.add((names[start], names[end]))
    assert drawn == {edge for edge in original if not implied(edge, original)}
    assert closure(drawn) == closure(original), "every dependency is still there, through a path"
    assert ("rg", "kms-key") in original and ("rg", "kms-key") not in drawn
    assert {("rg", "kms-vault"), ("kms-vault", "kms-key")} <= drawn
    assert len(drawn) < len(original)


def test_the_kms_chain_stands_out_and_its_unprotected_resources_are_marked(
    rendered: tuple[dict, ElementTree.Element, str],
) -> None:
    plan, svg, _ = rendered
    names = {r["urn"]: r["name"] for r in plan["resources"]}
    red = set()
    for edge in svg.iter(f"{SVG}g"):
        path = edge.find(f"{SVG}path")
        if edge.get("class") == "edge" and path is not None and path.get("stroke") == "#cf222e":
            start, end = edge.find(f"{SVG}title").text.split("->")  # type: ignore[union-attr]
            red.add((names[start], names[end]))
    chain = ["kms-vault", "kms-key", "kms-crypto-user", "kms-grant-propagation", "aks-cluster"]
    assert set(itertools.pairwise(chain)) <= red
    assert not any(name.startswith("monitoring") for edge in red for name in edge)
    nodes = {}
    for node in svg.iter(f"{SVG}g"):
        if node.get("class") == "node":
            nodes[names[node.find(f"{SVG}title").text]] = " ".join(node.itertext())  # type: ignore[index]
    unprotected_kms = [
        r["name"]
        for r in plan["resources"]
        if r["custom"] and not r["protect"] and r["name"] in {"aks-cluster", "kms-crypto-user"}
    ]
    assert unprotected_kms, "prod's cluster and role assignment are not protected from deletion"
    for name in unprotected_kms:
        assert "NOT protected" in nodes[name]
    assert all("NOT protected" not in text for name, text in nodes.items() if name.startswith("monitoring"))
    assert "NOT protected" not in nodes["kms-grant-propagation"], "a wait is nothing to protect"


def test_component_titles_are_distinct_and_the_graph_has_one_font(
    rendered: tuple[dict, ElementTree.Element, str],
) -> None:
    _, svg, text = rendered
    titles = [
        "".join(cluster.find(f"{SVG}text").itertext())  # type: ignore[union-attr]
        for cluster in svg.iter(f"{SVG}g")
        if cluster.get("class") == "cluster"
    ]
    assert len(titles) == len(set(titles)) >= 4, titles
    assert {"KeyVaultWithKey: kms", "KmsIdentity: kms"} <= set(titles)
    assert set(re.findall(r'font-family="([^"]+)"', text)) == {"Helvetica,sans-Serif"}
