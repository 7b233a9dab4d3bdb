"""`kms-aks plan` on the real program with its azure-native resources declared under another type-token form, as a
program built on azure-native v2's versioned modules or on a package added with `pulumi package add azure-native
<module> <version>` registers them: planned, ordered, highlighted and judged like the plain form; the ARM export
takes the API version from the token; an unknown form of a KMS type is refused by the pack (exit 1).

The forms are written out in tests/policy_support.py from the provider's token scheme, not from azure_facts.tokens.
"""

from __future__ import annotations

import json
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

import pulumi
import pytest

from kms_aks_tools.offline.mock_engine import run_stack
from tests.conftest import KmsAks
from tests.policy_support import CLUSTER, KEY, TOKEN_FORMS, VAULT, token_in_form

# The API versions every form pins for the cluster and the key vault (policy_support.API_VERSIONS), in ARM spelling.
CLUSTER_API_VERSION = "2024-08-01"
KEYVAULT_API_VERSION = "2023-07-01"


@contextmanager
def declared_as(change: Callable[[str], str]) -> Iterator[None]:
    """Every custom resource the program creates registers `change(<its type token>)`: what the generated classes of
    a versioned module or of a `pulumi package add` package pass to `CustomResource.__init__`."""
    original = pulumi.CustomResource.__init__

    def register(self: pulumi.CustomResource, t: str, *args: Any, **kwargs: Any) -> None:
        original(self, change(t), *args, **kwargs)

    pulumi.CustomResource.__init__ = register  # type: ignore[method-assign]
    try:
        yield
    finally:
        pulumi.CustomResource.__init__ = original  # type: ignore[method-assign]


def plan_json(kms_aks: KmsAks, *args: str) -> tuple[int, dict[str, Any]]:
    result = kms_aks("plan", "--stack", "dev", "--json", "-", *args)
    return result.returncode, json.loads(result.stdout)


def reviewed(plan: dict[str, Any]) -> dict[str, Any]:
    """What a reviewer reads in a plan, by resource name (URNs carry the token, names do not)."""
    names = {r["urn"]: r["name"] for r in plan["resources"]}
    return {
        "resources": [
            (r["name"], r["protect"], r["highlights"], [names[d] for d in r["dependencies"]], r["inputs"])
            for r in plan["resources"]
        ],
        "waves": plan["waves"],
        "critical_path": plan["critical_path"],
        "violations": [(v["policy"], v["enforcementLevel"], v["resource"]) for v in plan["violations"]],
        "verdict": plan["verdict"],
    }


_PLAIN: dict[str, dict[str, Any]] = {}


def plain_plan(kms_aks: KmsAks) -> dict[str, Any]:
    """dev's plan as the program declares it (plain tokens), made once: every form is compared with it."""
    if "dev" not in _PLAIN:
        code, _PLAIN["dev"] = plan_json(kms_aks)
        assert code == 0
    return _PLAIN["dev"]


@pytest.mark.parametrize("form", TOKEN_FORMS)
def test_a_program_on_another_token_form_plans_like_the_plain_form(kms_aks: KmsAks, form: str) -> None:
    with declared_as(lambda t: token_in_form(t, form)):
        code, plan = plan_json(kms_aks)
    assert code == 0
    [cluster] = [r for r in plan["resources"] if r["type"] == token_in_form(CLUSTER, form)]
    # The plan shows the token the program declared, and reads the cluster as a KMS cluster.
    assert cluster["type"] == token_in_form(CLUSTER, form) != CLUSTER
    assert cluster["highlights"]["KMS enabled"] == "yes"
    assert cluster["highlights"]["key id"].startswith("(known after apply, from ")
    # dev's one finding (its key, vault and identity are unprotected, advisory there) is still found.
    assert {(v["policy"], v["enforcementLevel"]) for v in plan["violations"]} == {
        ("aks-kms-deletion-protection", "advisory")
    }
    assert len(plan["violations"]) == 3
    assert reviewed(plan) == reviewed(plain_plan(kms_aks))


@pytest.mark.parametrize(
    ("token", "plain_type"),
    [
        ("azure-native:containerservice/latest:ManagedCluster", CLUSTER),
        ("azure-native_containerservice_v20240801:keyvault:Key", KEY),
    ],
)
def test_an_unknown_form_of_a_kms_type_is_refused_by_the_plan(kms_aks: KmsAks, token: str, plain_type: str) -> None:
    with declared_as(lambda t: token if t == plain_type else t):
        code, plan = plan_json(kms_aks)
    assert code == 1
    assert plan["verdict"] == "blocked"
    [refusal] = [v for v in plan["violations"] if v["policy"] == "aks-kms-recognised-types"]
    assert refusal["enforcementLevel"] == "mandatory"
    assert [r["name"] for r in plan["resources"] if r["type"] == token] == [refusal["resource"]]
    assert token in refusal["message"] and "azure-native:<module>/<version>:<Name>" in refusal["message"]


@pytest.mark.parametrize("form", TOKEN_FORMS)
def test_the_arm_export_takes_the_api_version_from_the_token(kms_aks: KmsAks, tmp_path: Path, form: str) -> None:
    plain_file, form_file = tmp_path / "plain.json", tmp_path / "form.json"
    assert kms_aks("plan", "--stack", "dev", "--arm", str(plain_file)).returncode == 0
    with declared_as(lambda t: token_in_form(t, form)):
        assert kms_aks("plan", "--stack", "dev", "--arm", str(form_file)).returncode == 0
    plain, formed = json.loads(plain_file.read_text()), json.loads(form_file.read_text())
    versions = {r["type"]: r["apiVersion"] for r in formed["resources"]}
    assert versions["Microsoft.ContainerService/managedClusters"] == CLUSTER_API_VERSION
    assert versions["Microsoft.KeyVault/vaults"] == KEYVAULT_API_VERSION
    assert versions["Microsoft.KeyVault/vaults/keys"] == KEYVAULT_API_VERSION
    assert versions["Microsoft.KeyVault/vaults/accessPolicies"] == KEYVAULT_API_VERSION
    # Everything else is the plain form's template: same resources, names, properties and dependencies (the
    # template lists them in registration order, which is a race: compared by type and name).

    def without_versions(template: dict[str, Any]) -> list[dict[str, Any]]:
        return sorted(({**r, "apiVersion": None} for r in template["resources"]), key=lambda r: (r["type"], r["name"]))

    assert without_versions(formed) == without_versions(plain)
    # What the template leaves out is named by the token the program declared.
    assert sorted(formed["metadata"].pop("notExported")) == sorted(
        f"{token_in_form(entry.split()[0], form)} {entry.split()[1]}" for entry in plain["metadata"].pop("notExported")
    )
    assert formed["metadata"] == plain["metadata"]


def test_the_mock_provider_answers_a_versioned_token_like_the_plain_one() -> None:
    plain = run_stack("dev")
    with declared_as(lambda t: token_in_form(t, "versioned-module")):
        formed = run_stack("dev")
    assert plain.error is None and formed.error is None
    for plain_type in (CLUSTER, VAULT, KEY):
        [before] = [r for r in plain.resources if r.type == plain_type]
        [after] = [r for r in formed.resources if r.type == token_in_form(plain_type, "versioned-module")]
        assert after.id == before.id
        # The provider reports the API version it used: the one the token pins.
        pinned = CLUSTER_API_VERSION if plain_type == CLUSTER else KEYVAULT_API_VERSION
        assert after.outputs["azureApiVersion"] == pinned != before.outputs["azureApiVersion"]
        assert {**after.outputs, "azureApiVersion": None} == {**before.outputs, "azureApiVersion": None}
