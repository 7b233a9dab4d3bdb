"""Property-based tests of the guard's fail-closed design (issue 21), on mutations of previews the real CLI recorded.

- every change of a property of a KMS closure member that is not on the known-safe list is refused, also when
  its values are masked;
- every change the known-safe list allows passes;
- every rule still refuses its recorded case, on every token form and in any step order.

Fixed seed (`derandomize`), bounded examples, no example database: the same cases run on every machine.
"""

from __future__ import annotations

import copy
from typing import Any

from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from azure_facts.property_paths import leaves as _leaves
from kms_aks_tools.guard.known_safe import KNOWN_SAFE, known_safe
from tests.test_guard import (
    DEV_ACCESS_POLICY,
    DEV_CLUSTER,
    DEV_GROUP,
    DEV_IDENTITY,
    DEV_KEY,
    DEV_VAULT,
    EXPECTED,
    FORMS,
    in_form,
    judge,
    recorded,
    set_op,
    step_of,
    verdicts,
)

BOUNDED = settings(
    max_examples=40, derandomize=True, database=None, deadline=None, suppress_health_check=[HealthCheck.too_slow]
)
CANONICAL = {
    DEV_CLUSTER: "azure-native:containerservice:ManagedCluster",
    DEV_VAULT: "azure-native:keyvault:Vault",
    DEV_KEY: "azure-native:keyvault:Key",
    DEV_IDENTITY: "azure-native:managedidentity:UserAssignedIdentity",
    DEV_ACCESS_POLICY: "azure-native:keyvault:AccessPolicy",
    DEV_GROUP: "azure-native:resources:ResourceGroup",
}
BASE = recorded("dev-no-change")


def _paths(urn: str) -> list[tuple[str, ...]]:
    return [p for p in _leaves(step_of(BASE, urn)["newState"]["inputs"], ()) if p]


MEMBER_PATHS = [(urn, path) for urn in CANONICAL for path in _paths(urn)]
UNSAFE = [(urn, path) for urn, path in MEMBER_PATHS if known_safe(CANONICAL[urn], path, None) is None]


def _set(target: Any, path: tuple[str, ...], value: Any) -> None:
    for segment in path[:-1]:
        target = target[int(segment)] if isinstance(target, list) else target[segment]
    if isinstance(target, list):
        target[int(path[-1])] = value
    else:
        target[path[-1]] = value


def _get(target: Any, path: tuple[str, ...]) -> Any:
    for segment in path:
        target = target[int(segment)] if isinstance(target, list) else target[segment]
    return target


def _mutated(urn: str, path: tuple[str, ...], value: Any, *, masked: bool = False) -> dict[str, Any]:
    doc = copy.deepcopy(BASE)
    step = step_of(doc, urn)
    set_op(doc, step, "update")
    _set(step["newState"]["inputs"], path, value)
    if masked:
        for state in ("oldState", "newState"):
            _set(step[state]["inputs"], path, "[secret]")
    step["detailedDiff"] = {".".join(path): {"kind": "update", "inputDiff": True}}
    step["diffReasons"] = [path[0]]
    return doc


VALUES = st.one_of(st.text(min_size=1, max_size=12), st.integers(-5, 10_000), st.booleans())


@BOUNDED
@given(target=st.sampled_from(UNSAFE), value=VALUES, masked=st.booleans())
def test_every_change_outside_the_known_safe_list_on_the_closure_is_refused(
    target: tuple[str, tuple[str, ...]], value: Any, masked: bool
) -> None:
    urn, path = target
    if value == _get(step_of(BASE, urn)["newState"]["inputs"], path):
        value = f"{value}-changed"
    findings = judge(_mutated(urn, path, value, masked=masked)).findings
    assert [f for f in findings if f.urn == urn], (urn, path, value, masked)


SAFE_CASES = [
    (urn, entry)
    for entry in KNOWN_SAFE
    for urn, canonical in CANONICAL.items()
    if entry.type in ("*", canonical) and canonical != "azure-native:keyvault:Key"  # a Key's tags: its own rule
]


@BOUNDED
@given(case=st.sampled_from(SAFE_CASES), data=st.data())
def test_every_known_safe_change_passes(case: tuple[str, Any], data: st.DataObject) -> None:
    urn, entry = case
    path = tuple("0" if segment == "*" else segment for segment in entry.pattern)
    if entry.to is not None:
        value: Any = data.draw(
            st.sampled_from(sorted(entry.to)).map(lambda v: data.draw(st.sampled_from([v, v.title()])))
        )
    elif path[-1] == "tags":
        value = data.draw(st.dictionaries(st.text("abcdef", min_size=1, max_size=5), st.text(max_size=8), max_size=3))
    elif path[-1] in ("secrets", "certificates", "storage"):
        value = data.draw(st.lists(st.sampled_from(["get", "list", "set", "delete"]), max_size=4))
    elif path[-1] in ("count", "minCount", "maxCount"):
        value = data.draw(st.integers(1, 100))
    elif path[-1] == "enableAutoScaling" or (path[0] == "properties" and path[-1].startswith("enabled")):
        value = data.draw(st.booleans())
    else:
        value = data.draw(st.text(min_size=1, max_size=12))
    doc = copy.deepcopy(BASE)
    step = step_of(doc, urn)
    set_op(doc, step, "update")
    target = step["newState"]["inputs"]
    for segment in path[:-1]:
        target = target[int(segment)] if isinstance(target, list) else target.setdefault(segment, {})
    target[path[-1]] = value
    step["detailedDiff"] = {".".join(path): {"kind": "update", "inputDiff": True}}
    assert judge(doc).findings == [], (urn, entry.pattern, value)


REFUSED = sorted(name for name, expected in EXPECTED.items() if expected)


@BOUNDED
@given(name=st.sampled_from(REFUSED), form=st.sampled_from(sorted(FORMS)), order=st.randoms(use_true_random=False))
def test_every_rule_refuses_its_recorded_case_on_every_token_form_in_any_order(
    name: str, form: str, order: Any
) -> None:
    doc = in_form(recorded(name), form)
    order.shuffle(doc["steps"])
    expected = sorted((rule, in_form(urn, form), path) for rule, urn, path in EXPECTED[name])
    assert verdicts(judge(doc)) == expected
