"""Shared fixtures: the real program for the shipped stacks, run once per session under the mock engine."""

from __future__ import annotations

import pytest

from kms_aks_tools.mock_engine import run_stack
from kms_aks_tools.recording import RecordedStack


def _clean(stack: str, *, preview: bool = False) -> RecordedStack:
    recorded = run_stack(stack, preview=preview)
    assert recorded.error is None, recorded.error
    return recorded


@pytest.fixture(scope="session")
def dev_stack() -> RecordedStack:
    return _clean("dev")


@pytest.fixture(scope="session")
def prod_stack() -> RecordedStack:
    return _clean("prod")


@pytest.fixture(scope="session")
def dev_preview() -> RecordedStack:
    return _clean("dev", preview=True)


@pytest.fixture(scope="session")
def prod_preview() -> RecordedStack:
    return _clean("prod", preview=True)
