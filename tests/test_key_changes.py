"""An existing Key's create-time settings (expiry, size, rotation policy) are shown for what they are: the plan
labels them, the guard refuses a change of them with the data-plane path (tests/test_guard.py has the refusals)."""

from __future__ import annotations

import copy
import dataclasses

from kms_aks_tools import guard
from kms_aks_tools.offline import plan
from kms_aks_tools.offline.recording import RecordedStack

KEY = "azure-native:keyvault:Key"


def test_plan_labels_the_keys_create_time_settings(prod_stack: RecordedStack) -> None:
    (key,) = [r for r in prod_stack.resources if r.type == KEY]
    names = {r.urn: r.name for r in prod_stack.resources}
    # prod plans expiry through the rotation policy only; an absolute expiry (kmsKey.expiresOn) shows as a date.
    inputs = copy.deepcopy(key.inputs)
    inputs["properties"].setdefault("attributes", {})["expires"] = 1861920000
    assert plan.highlights(dataclasses.replace(key, inputs=inputs), names)["expires"] == "2029-01-01 00:00 UTC"
    shown = plan.highlights(key, names)
    assert "expires" not in shown
    assert shown["rotation expiry"].startswith("P")
    note = shown["create-time only"]
    assert "expiry and rotation policy" in note and "not applied" in note and "data plane" in note
    assert "pulumi refresh" in note


def test_every_setting_the_plan_calls_create_time_only_is_one_the_guard_watches() -> None:
    # The plan's note and the guard's list must not drift apart.
    labels = set(guard.KEY_CREATE_TIME_SETTINGS.values())
    for word in ("expiry", "key type", "key size", "key operations", "rotation policy"):
        assert word in labels
    assert {("properties", "attributes", "expires"), ("properties", "rotationPolicy")} <= set(
        guard.KEY_CREATE_TIME_SETTINGS
    )
