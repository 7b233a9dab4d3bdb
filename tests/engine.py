"""The program under the mock engine, each distinct run made once per test session (per xdist worker).

A run of the program costs a few tenths of a second, and many tests need the same one: the shipped stacks'
fixtures, `kms-aks plan --stack dev` in-process (the `kms_aks` fixture routes the command line's runs here), a
stack file with one setting changed. `run_stack` and `run_config` are drop-ins for
`kms_aks_tools.offline.mock_engine`'s: the first call with given inputs runs the program, later calls get a deep
copy of that run, so a test may change what it gets.

The key is everything a run depends on: the config (the stack file's, merged with the overrides), stack, preview,
project and the other stacks' outputs; the program's path and text; and the entry points a test may patch to change
what the program registers or what the mocks answer (`_PATCHABLE`). The program reads no file, clock or
environment variable. A test that changes the program's behaviour any other way calls
`kms_aks_tools.offline.mock_engine.run_stack` itself, as the engine's own tests do.
"""

from __future__ import annotations

import copy
import json
from collections.abc import Mapping
from pathlib import Path
from typing import Any

import pulumi
from pulumi.runtime import mocks as pulumi_mocks
from pulumi.runtime import rpc as pulumi_rpc

from kms_aks.config.stack import PROJECT
from kms_aks_tools.offline import mock_engine, monitor
from kms_aks_tools.offline.mock_engine import ROOT
from kms_aks_tools.offline.mocks import AzureNativeMocks
from kms_aks_tools.offline.recording import RecordedResource, RecordedStack

# The engine's own run, whatever a test has patched mock_engine.run_config to.
_RUN_CONFIG = mock_engine.run_config
_RUNS: dict[tuple[Any, ...], RecordedStack] = {}
# id() of every resource of a run in _RUNS: those objects live, unchanged, as long as the session.
_SHARED_RESOURCES: set[int] = set()


def _patchable() -> tuple[Any, ...]:
    """What a test may patch to change a run (tests/test_plan_token_forms.py patches CustomResource.__init__)."""
    return (
        pulumi.Resource.__init__,
        pulumi.CustomResource.__init__,
        pulumi.ComponentResource.__init__,
        pulumi_rpc.serialize_property,
        pulumi_mocks.MockMonitor.RegisterResource,
        monitor.RecordingMonitor.RegisterResource,
        AzureNativeMocks.new_resource,
        AzureNativeMocks.call,
        mock_engine._run,
    )


def _canonical(value: Any) -> str:
    return json.dumps(value, sort_keys=True, default=repr)


def shared_run(
    config: dict[str, Any],
    *,
    stack: str = "test",
    preview: bool = False,
    program: Path = ROOT / "__main__.py",
    project: str = PROJECT,
    stacks: Mapping[str, Mapping[str, Any]] | None = None,
) -> RecordedStack:
    """The session's one run for these inputs (not a copy: the caller must not change it)."""
    program = Path(program)
    key = (
        _canonical(config),
        stack,
        preview,
        str(program.resolve()),
        program.read_text(),
        project,
        _canonical(stacks),
        _patchable(),
    )
    if key not in _RUNS:
        _RUNS[key] = _RUN_CONFIG(config, stack=stack, preview=preview, program=program, project=project, stacks=stacks)
        _SHARED_RESOURCES.update(map(id, _RUNS[key].resources))
    return _RUNS[key]


def is_shared(resource: RecordedResource) -> bool:
    """Whether `resource` is one of a shared run's (`shared_run`, `shared_stack`): the same object, unchanged, for the
    whole session."""
    return id(resource) in _SHARED_RESOURCES


def run_config(config: dict[str, Any], **options: Any) -> RecordedStack:
    """`mock_engine.run_config`, run once per session for the same inputs; a copy the caller may change."""
    return copy.deepcopy(shared_run(config, **options))


def shared_stack(
    stack: str, *, config: dict[str, Any] | None = None, preview: bool = False, root: Path = ROOT
) -> RecordedStack:
    """The session's one run of `Pulumi.<stack>.yaml` (not a copy: the caller must not change it)."""
    merged, name, program = mock_engine.stack_inputs(stack, config=config, root=root)
    return shared_run(merged, stack=name, preview=preview, program=program)


def run_stack(
    stack: str, *, config: dict[str, Any] | None = None, preview: bool = False, root: Path = ROOT
) -> RecordedStack:
    """`mock_engine.run_stack`, run once per session for the same inputs; a copy the caller may change."""
    return copy.deepcopy(shared_stack(stack, config=config, preview=preview, root=root))
