"""The order `make test` hands test files to its two workers: the costliest first.

`make test` runs `-n 2 --dist loadfile --no-loadscope-reorder`: a file stays on one worker, and the files go out in
collection order. xdist's own order is by number of tests, which put the one-test journeys (a second checkout,
`--all`'s processes) last, and one worker ran them alone for the last seconds of the run. Handing out the costliest
files first lets the cheap ones fill in at the end on whichever worker is free (longest processing time first).

What a file costs is what it took last time: the controller keeps each file's seconds in pytest's cache
(`.pytest_cache`, key `FILE_SECONDS`), merged over partial runs. A file it has not seen goes first, as it may be
costly; with no cache (a fresh clone) that is every file, in collection order. Only xdist's workers reorder (a run
on one process, `make e2e` and `make e2e-k8s`, keeps the written order); the order changes when tests run, never
what runs.
"""

from __future__ import annotations

from collections import defaultdict
from typing import Any

import pytest

FILE_SECONDS = "kms-aks/file-seconds"


def _file(nodeid: str) -> str:
    return nodeid.split("::", 1)[0]


def costliest_first(files: list[str], seconds: dict[str, float]) -> list[str]:
    """`files` with the unseen first (in their order), then by last time's seconds, most first."""
    return sorted(files, key=lambda path: -seconds.get(path, float("inf")))


@pytest.hookimpl(trylast=True)
def pytest_collection_modifyitems(config: pytest.Config, items: list[pytest.Item]) -> None:
    if not hasattr(config, "workerinput"):
        return  # without workers to share them out, the files run in the order they are written (make e2e too)
    # The controller's reading of the cache, the same for every worker: xdist stops a run whose workers collected
    # different orders, and another run in the same checkout may write the cache while they collect.
    seconds = config.workerinput.get(FILE_SECONDS, {})
    files = list(dict.fromkeys(_file(item.nodeid) for item in items))
    rank = {path: index for index, path in enumerate(costliest_first(files, seconds))}
    items.sort(key=lambda item: rank[_file(item.nodeid)])  # stable: a file's tests keep their order


class FileSeconds:
    """On the controller: the cache's reading of last time, handed to every worker (xdist's `pytest_configure_node`),
    and this run's tally of each file's seconds (setup, call and teardown of its tests), saved at the end."""

    def __init__(self, last: dict[str, float]) -> None:
        self.last = last
        self.seconds: dict[str, float] = defaultdict(float)

    @pytest.hookimpl(optionalhook=True)  # an xdist hook: a run without xdist has no workers to hand anything to
    def pytest_configure_node(self, node: Any) -> None:
        node.workerinput[FILE_SECONDS] = self.last

    def pytest_runtest_logreport(self, report: pytest.TestReport) -> None:
        self.seconds[_file(report.nodeid)] += report.duration

    def pytest_sessionfinish(self, session: pytest.Session) -> None:
        cache = session.config.cache
        if cache is None or not self.seconds:
            return
        known = {
            path: value
            for path, value in cache.get(FILE_SECONDS, {}).items()
            if (session.config.rootpath / path).is_file()
        }
        known.update({path: round(value, 2) for path, value in self.seconds.items()})
        cache.set(FILE_SECONDS, known)


def pytest_configure(config: pytest.Config) -> None:
    if not hasattr(config, "workerinput"):  # the controller (or a run without xdist) sees every report
        last = config.cache.get(FILE_SECONDS, {}) if config.cache else {}
        config.pluginmanager.register(FileSeconds(last), "kms-aks-file-seconds")


__all__ = ["FILE_SECONDS", "costliest_first"]
