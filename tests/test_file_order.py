"""`make test` hands out the costliest test files first (tests/file_order.py), and remembers what each cost."""

from __future__ import annotations

from pathlib import Path
from types import SimpleNamespace
from typing import Any

from tests.file_order import FILE_SECONDS, FileSeconds, costliest_first


def test_unseen_files_first_in_their_order_then_the_costliest() -> None:
    seconds = {"tests/a.py": 0.5, "tests/b.py": 7.0, "tests/d.py": 2.0}
    files = ["tests/a.py", "tests/b.py", "tests/c.py", "tests/d.py", "tests/e.py"]
    assert costliest_first(files, seconds) == ["tests/c.py", "tests/e.py", "tests/b.py", "tests/d.py", "tests/a.py"]


class _Cache:
    def __init__(self, stored: dict[str, Any]) -> None:
        self.stored = stored

    def get(self, key: str, default: Any) -> Any:
        return self.stored.get(key, default)

    def set(self, key: str, value: Any) -> None:
        self.stored[key] = value


def test_a_partial_run_updates_its_files_keeps_the_others_and_forgets_deleted_ones(tmp_path: Path) -> None:
    for name in ("kept.py", "ran.py"):
        (tmp_path / name).write_text("")
    cache = _Cache({FILE_SECONDS: {"kept.py": 3.0, "ran.py": 9.0, "deleted.py": 4.0}})
    tally = FileSeconds(cache.stored[FILE_SECONDS])
    for phase in (0.25, 1.5, 0.25):  # setup, call, teardown
        tally.pytest_runtest_logreport(SimpleNamespace(nodeid="ran.py::test_one", duration=phase))  # type: ignore[arg-type]
    tally.pytest_runtest_logreport(SimpleNamespace(nodeid="ran.py::test_two", duration=1.0))  # type: ignore[arg-type]
    session = SimpleNamespace(config=SimpleNamespace(cache=cache, rootpath=tmp_path))
    tally.pytest_sessionfinish(session)  # type: ignore[arg-type]
    assert cache.stored[FILE_SECONDS] == {"kept.py": 3.0, "ran.py": 3.0}
