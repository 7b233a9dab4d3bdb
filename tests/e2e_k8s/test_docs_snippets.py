"""docs/real-cluster.md's snippets, run as a reader copies them: each `python` block, then each `sh` command
that runs something other than `make` (the make targets are what this suite is)."""

from __future__ import annotations

import re
from pathlib import Path

import pytest

from kms_aks_tools.offline.mock_engine import ROOT

PAGE = (ROOT / "docs" / "real-cluster.md").read_text()
PYTHON_BLOCKS = re.findall(r"^```python\n(.*?)^```", PAGE, re.M | re.S)


def test_the_page_has_the_harness_snippet() -> None:
    assert len(PYTHON_BLOCKS) == 1 and "ControlPlane.start(workdir)" in PYTHON_BLOCKS[0]


@pytest.mark.parametrize("block", PYTHON_BLOCKS, ids=lambda b: b.splitlines()[0][:40])
def test_each_python_snippet_runs_as_written(block: str, k8s_bin: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    # The binaries the session built; the snippet builds (or reuses) them itself otherwise.
    monkeypatch.setenv("KMS_AKS_K8S_BIN", str(k8s_bin))
    namespace: dict[str, object] = {"__name__": "snippet"}
    exec(compile(block, "docs/real-cluster.md", "exec"), namespace)
    assert namespace["raw"] is not None
