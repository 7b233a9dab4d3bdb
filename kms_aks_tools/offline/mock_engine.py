"""The program under the Pulumi SDK's mock engine, with outputs shaped like azure-native's.

One mock layer serves the tests, `make plan` and the benchmarks. It runs the real `__main__.py` for a
stack's config, records every registration as the engine sees it (inputs, dependencies, parent, options)
through `monitor.RecordingMonitor`, and answers like the real providers do (`mocks.AzureNativeMocks`, from the
fake Azure's table in `fake_azure`).

With `preview=True` it answers like `pulumi preview`: a new resource's id and computed outputs are unknown.
"""

from __future__ import annotations

import asyncio
import contextvars
import gc
import logging
import runpy
import sys
from collections.abc import Mapping
from pathlib import Path
from typing import Any

import pulumi
from pulumi.runtime import set_all_config
from pulumi.runtime import settings as pulumi_settings
from pulumi.runtime.stack import wait_for_rpcs

from kms_aks.config.stack import PROJECT
from kms_aks_tools.offline import monitor as monitors
from kms_aks_tools.offline.fake_azure.ids import DEPLOYER_CLIENT_ID, DEPLOYER_OBJECT_ID, SUBSCRIPTION_ID, TENANT_ID
from kms_aks_tools.offline.mocks import AzureNativeMocks
from kms_aks_tools.offline.recording import UNKNOWN, RecordedStack
from kms_aks_tools.project.stack_config import with_secret_stand_ins
from kms_aks_tools.project.stack_file import PACKAGE_ROOT, load_stack_file, to_engine_text

ROOT = PACKAGE_ROOT  # the checkout this package was installed from; the command line finds its own (find_project)


class _LogCollector(logging.Handler):
    def __init__(self) -> None:
        super().__init__(level=logging.WARNING)
        self.messages: list[str] = []

    def emit(self, record: logging.LogRecord) -> None:
        self.messages.append(record.getMessage())


def _as_engine_value(value: Any) -> str:
    # The CLI hands a program every value as a string: objects and lists as JSON, booleans lower-case.
    return to_engine_text(value)


# ---------------------------------------------------------------------------------------------- running


def run_config(
    config: dict[str, Any],
    *,
    stack: str = "test",
    preview: bool = False,
    program: Path = ROOT / "__main__.py",
    project: str = PROJECT,
    stacks: Mapping[str, Mapping[str, Any]] | None = None,
) -> RecordedStack:
    """Runs the program with `config` (full keys, e.g. `kms-aks:cluster`) in a fresh Pulumi runtime.

    `project` is the program's Pulumi project (`fleet/` is `kms-aks-fleet`); `stacks` are the other stacks'
    outputs its StackReferences read, by fully qualified name (`organization/kms-aks/dev`).
    """
    # The SDK keeps its settings, config and root stack in context variables: a fresh Context per run
    # gives every run its own runtime, so one process can run many stacks.
    return contextvars.Context().run(_run_in_new_loop, config, stack, preview, program, project, stacks)


def run_stack(
    stack: str, *, config: dict[str, Any] | None = None, preview: bool = False, root: Path = ROOT
) -> RecordedStack:
    """Runs the program for `Pulumi.<stack>.yaml`; `config` overrides its keys (a None value removes one)."""
    merged, name, program = stack_inputs(stack, config=config, root=root)
    return run_config(merged, stack=name, preview=preview, program=program)


def stack_inputs(
    stack: str, *, config: dict[str, Any] | None = None, root: Path = ROOT
) -> tuple[dict[str, Any], str, Path]:
    """What `run_stack` gives `run_config`: the stack file's config with `config` applied, the stack's name, the
    program."""
    merged = load_stack_file(stack, root)
    for key, value in (config or {}).items():
        if value is None:
            merged.pop(key, None)
        else:
            merged[key] = value
    name = Path(stack).stem.removeprefix("Pulumi.") if stack.endswith((".yaml", ".yml")) else stack
    return merged, name, root / "__main__.py"


def _unless_never_retrieved(loop: asyncio.AbstractEventLoop, context: dict[str, Any]) -> None:
    """The run's loop's handler of errors nobody awaited: all but "exception was never retrieved" go to asyncio's.

    A failed registration fails every output that depends on it. The run reports the failure once
    (`RecordedStack.error`); the others would each be logged, with a traceback, whenever the collector frees them, at
    any later point in the process. Python 3.11 formats such a traceback with `ast.parse`, and inside another
    `ast.parse` that raises SystemError ("AST constructor recursion depth mismatch").
    """
    if not str(context.get("message", "")).endswith("exception was never retrieved"):
        loop.default_exception_handler(context)


def _run_in_new_loop(
    config: dict[str, Any],
    stack: str,
    preview: bool,
    program: Path,
    project: str = PROJECT,
    stacks: Mapping[str, Mapping[str, Any]] | None = None,
) -> RecordedStack:
    # A run allocates tens of thousands of short-lived tasks and futures. Collections in between rescan every
    # object the process holds (the SDKs' modules: most of them), which cost a third of a run; the collector
    # catches up after the run. The policy pack's AnalyzeStack pauses it the same way.
    collecting = gc.isenabled()
    gc.disable()
    loop = asyncio.new_event_loop()
    loop.set_exception_handler(_unless_never_retrieved)
    asyncio.set_event_loop(loop)
    try:
        return loop.run_until_complete(_run(config, stack, preview, program, project, stacks))
    finally:
        # A failed program leaves outputs that will never resolve; cancel them rather than leak them.
        pending = asyncio.all_tasks(loop)
        for task in pending:
            task.cancel()
        loop.run_until_complete(asyncio.gather(*pending, return_exceptions=True))
        asyncio.set_event_loop(None)
        loop.close()
        if collecting:
            gc.enable()


async def _settle() -> None:
    """Waits for the program's outstanding RPCs and outputs in rounds, until all are done or one has failed.

    The SDK's `wait_for_rpcs`, which the run still ends with, re-reads every outstanding output each time one of
    them completes: thousands of times a run, a fifth of its cost. Waiting here changes nothing it decides. A
    completed output leaves the SDK's set by itself; a failed one stays there, and a failed RPC is kept as the
    run's unhandled exception, for `wait_for_rpcs` to raise as it always does; at the first failure this wait
    hands over to it at once.
    """
    rpcs = pulumi_settings._get_rpc_manager()
    while rpcs.unhandled_exception is None:
        pending = [task for task in (*pulumi_settings.SETTINGS.outputs, *rpcs.rpcs) if not task.done()]
        if not pending:
            return
        done, _ = await asyncio.wait(pending, return_when=asyncio.FIRST_EXCEPTION)
        if any(not task.cancelled() and task.exception() is not None for task in done):
            return


async def _run(
    config: dict[str, Any],
    stack: str,
    preview: bool,
    program: Path,
    project: str = PROJECT,
    stacks: Mapping[str, Mapping[str, Any]] | None = None,
) -> RecordedStack:
    mocks = AzureNativeMocks(preview=preview, stacks=stacks)
    monitor = monitors.RecordingMonitor(mocks)
    logs = _LogCollector()
    # A logger of the run's own, outside logging's registry: one from getLogger would stay registered for the life
    # of the process (a run's worth of warnings kept per run), and every handler attached to all loggers (pytest's
    # log capture, at each test phase) would visit each one.
    logger = logging.Logger(f"kms_aks_tools.offline.mock_engine.run-{id(monitor)}")
    logger.addHandler(logs)

    monitors.trace_unknowns()
    monitors._TRACING_UNKNOWNS.set(True)
    config, secret_keys, secret_notes = with_secret_stand_ins(config)
    set_all_config({key: _as_engine_value(value) for key, value in config.items()}, secret_keys)
    # MockSettings sets only some settings; the rest (pending outputs, locks, package refs) would fall
    # back to values shared across runs. A full reset first gives this run its own.
    pulumi_settings.reset_options(project=project, stack=stack, preview=preview)
    pulumi.runtime.set_mocks(mocks, project=project, stack=stack, preview=preview, logger=logger, monitor=monitor)
    recorded = RecordedStack(project=project, stack=stack, resources=monitor.recorded, warnings=logs.messages)
    logs.messages.extend(secret_notes)

    project_dir = str(program.parent)
    if project_dir not in sys.path:
        sys.path.insert(0, project_dir)
    try:
        runpy.run_path(str(program), run_name="__main__")
        await _settle()  # the bulk of the waiting, cheaply
        await wait_for_rpcs()  # then the SDK's own end of a program, as the language host runs it
    except pulumi.RunError as error:
        recorded.error = str(error)
        return recorded
    except Exception as error:  # a program bug: reported with its message, not a traceback
        recorded.error = f"{type(error).__name__}: {error}"
        return recorded

    root = pulumi.runtime.get_root_resource()
    secret: set[str] = set()
    for name, value in getattr(root, "outputs", {}).items():
        output = pulumi.Output.from_input(value)
        known = await output.is_known()
        recorded.outputs[name] = await output.future() if known else UNKNOWN
        if await output.is_secret():
            secret.add(name)
    recorded.secret_outputs = frozenset(secret)
    return recorded


__all__ = [
    "DEPLOYER_CLIENT_ID",
    "DEPLOYER_OBJECT_ID",
    "ROOT",
    "SUBSCRIPTION_ID",
    "TENANT_ID",
    "run_config",
    "run_stack",
]
