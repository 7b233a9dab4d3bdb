"""Records the guard's fixtures from the real Pulumi CLI: `make fixtures` (needs the e2e toolchain, as `make e2e`).

Each fixture in `tests/fixtures/recorded/` is the `pulumi preview --json` of one change to a stack that the real
CLI created and `up`ed against the Azure stand-in (tests/e2e/conftest.py: the same toolchain, stand-in and
workspace copy as `make e2e`). A change is a config edit as a reviewer's PR makes it, a test-only entry point
that applies property changes to the real program's resources (`tests/e2e/transformed.py`), or a program that
declares nothing (`tests/e2e/empty_program.py`: every resource deleted).

The preview runs with the flags of the workflows' preview (`.ci/pulumi-stack preview`): `--json --show-sames
--save-plan`, except the policy pack: the pack refuses several of these plans itself (KMS disabled, a
system-assigned identity, ...), and `--json` carries none of its verdicts, so the recorded steps are the same
with or without it. One scenario is also recorded without `--show-sames`, to prove the guard fails closed on
it. Only the preview's `duration` is dropped, so that a re-recording differs only where the plan differs.

    .venv/bin/python -m tests.e2e.record_previews [SCENARIO ...]
"""

from __future__ import annotations

import json
import shutil
import sys
import tempfile
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from kms_aks_tools.offline import realcli
from kms_aks_tools.standin.provider import running_standin
from tests.e2e.conftest import PASSPHRASE, ROOT, Workspace

FIXTURES = ROOT / "tests" / "fixtures" / "recorded"
ENTRY_POINTS = Path(__file__).parent
# The flags of `.ci/pulumi-stack preview`, without the policy pack (see above).
PREVIEW_FLAGS = ("--json", "--show-sames")

NEW_VERSION = "0123456789abcdef0123456789abcdef"
OTHER_TENANT = "99999999-8888-7777-6666-555555555555"
OTHER_PRINCIPAL = "11111111-2222-3333-4444-555555555555"
OTHER_IDENTITY = (
    "/subscriptions/00000000-0000-0000-0000-000000000000/resourceGroups/rg-kms-aks-dev/providers/"
    "Microsoft.ManagedIdentity/userAssignedIdentities/id-aks-kms-dev-kms-2"
)
READER_ROLE = (
    "/subscriptions/00000000-0000-0000-0000-000000000000/providers/Microsoft.Authorization/roleDefinitions/"
    "acdd72a7-3385-48ef-bd42-f606fba81ae7"
)
CLUSTER = "azure-native:containerservice:ManagedCluster"
VAULT = "azure-native:keyvault:Vault"
ACCESS_POLICY = "azure-native:keyvault:AccessPolicy"
ROLE_ASSIGNMENT = "azure-native:authorization:RoleAssignment"


@dataclass(frozen=True)
class Scenario:
    """One change to a stack that was `up`ed: what the PR changes, and the file its preview is saved to."""

    name: str
    stack: str
    config: dict[str, Any] = field(default_factory=dict)
    transforms: list[dict[str, Any]] = field(default_factory=list)
    empty_program: bool = False
    flags: tuple[str, ...] = PREVIEW_FLAGS
    # The preview itself fails (a program error): recorded to prove the guard refuses a failed preview's JSON.
    fails: bool = False
    # Previewed before the stack's first `up`: every resource a create.
    before_up: bool = False


def _kms(**values: Any) -> dict[str, Any]:
    return {f"securityProfile.azureKeyVaultKms.{k}": v for k, v in values.items()}


SCENARIOS = [
    Scenario("dev-create", "dev", before_up=True),
    Scenario("prod-create", "prod", before_up=True),
    # dev: access policies, nothing protected.
    Scenario("dev-no-change", "dev"),
    Scenario("dev-node-count", "dev", config={"cluster.systemNodePool.count": 3}),
    Scenario("dev-key-rotation", "dev", config={"kmsKey.version": NEW_VERSION}),
    Scenario("dev-kms-disabled", "dev", transforms=[{"type": CLUSTER, "set": _kms(enabled=False)}]),
    Scenario(
        "dev-kms-network-private", "dev", transforms=[{"type": CLUSTER, "set": _kms(keyVaultNetworkAccess="Private")}]
    ),
    Scenario(
        "dev-cluster-identity-change",
        "dev",
        transforms=[
            {"type": CLUSTER, "set": {"identity": {"type": "UserAssigned", "userAssignedIdentities": [OTHER_IDENTITY]}}}
        ],
    ),
    Scenario("dev-cluster-rename", "dev", config={"cluster.name": "aks-kms-dev-2"}),
    Scenario("dev-vault-rename", "dev", config={"keyVault.name": "kv-kmsaks-dev-02"}),
    Scenario("dev-key-rename", "dev", config={"kmsKey.name": "aks-kms-dev-2"}),
    Scenario("dev-key-type", "dev", config={"keyVault.sku": "premium", "kmsKey.type": "RSA-HSM"}),
    Scenario("dev-key-expiry", "dev", config={"kmsKey.expiresOn": "2030-01-01"}),
    Scenario("dev-permission-model-rbac", "dev", config={"keyVault.permissionModel": "rbac"}),
    Scenario(
        "dev-permission-model-rbac-without-sames",
        "dev",
        config={"keyVault.permissionModel": "rbac"},
        flags=("--json",),
    ),
    Scenario(
        "dev-access-policy-narrowed",
        "dev",
        transforms=[{"type": ACCESS_POLICY, "set": {"policy.permissions.keys": ["encrypt"]}}],
    ),
    Scenario(
        "dev-access-policy-principal",
        "dev",
        transforms=[{"type": ACCESS_POLICY, "set": {"policy.objectId": OTHER_PRINCIPAL}}],
    ),
    Scenario(
        "dev-vault-public-network-disabled",
        "dev",
        transforms=[{"type": VAULT, "set": {"properties.publicNetworkAccess": "Disabled"}}],
    ),
    Scenario(
        "dev-vault-acl-deny",
        "dev",
        transforms=[{"type": VAULT, "set": {"properties.networkAcls.defaultAction": "Deny"}}],
    ),
    Scenario("dev-vault-tenant", "dev", transforms=[{"type": VAULT, "set": {"properties.tenantId": OTHER_TENANT}}]),
    Scenario("dev-delete-all", "dev", empty_program=True),
    Scenario("dev-program-error", "dev", config={"kmsKey.size": 1000}, fails=True),
    # prod: RBAC, the KMS resources protected, a rotation policy.
    Scenario("prod-no-change", "prod"),
    Scenario("prod-key-rotation", "prod", config={"kmsKey.version": NEW_VERSION}),
    Scenario("prod-rotation-policy", "prod", config={"kmsKey.rotation.rotateAfterDays": 300}),
    Scenario("prod-permission-model-access-policy", "prod", config={"keyVault.permissionModel": "accessPolicy"}),
    Scenario(
        "prod-role-change", "prod", transforms=[{"type": ROLE_ASSIGNMENT, "set": {"roleDefinitionId": READER_ROLE}}]
    ),
    Scenario(
        "prod-role-scope",
        "prod",
        transforms=[{"type": ROLE_ASSIGNMENT, "set": {"scope": "/subscriptions/00000000-0000-0000-0000-000000000000"}}],
    ),
    Scenario(
        "prod-role-principal", "prod", transforms=[{"type": ROLE_ASSIGNMENT, "set": {"principalId": OTHER_PRINCIPAL}}]
    ),
    Scenario("prod-unprotect", "prod", config={"protectKmsResources": False}),
]


def _check(result: Any, what: str) -> None:
    if result.returncode != 0:
        sys.exit(f"{what} failed (exit {result.returncode}):\n{result.stdout[-3000:]}\n{result.stderr[-3000:]}")


def _record(space: Workspace, scenario: Scenario) -> dict[str, Any]:
    stack_file = space.stack_file(scenario.stack)
    project_file = space.path / "Pulumi.yaml"
    saved_stack, saved_project = stack_file.read_text(), project_file.read_text()
    try:
        for key, value in scenario.config.items():
            space.set_config(scenario.stack, key, value)
        if scenario.transforms:
            (space.path / "transforms.json").write_text(json.dumps(scenario.transforms))
            project_file.write_text(saved_project + "main: transformed.py\n")
        elif scenario.empty_program:
            project_file.write_text(saved_project + "main: empty_program.py\n")
        plan = space.out / f"{scenario.name}.plan.json"
        result = space.run(
            "pulumi",
            "preview",
            "--stack",
            scenario.stack,
            "--non-interactive",
            *scenario.flags,
            "--save-plan",
            str(plan),
        )
        if scenario.fails:
            if result.returncode == 0:
                sys.exit(f"preview of {scenario.name} was expected to fail, and passed")
        else:
            _check(result, f"preview of {scenario.name}")
    finally:
        stack_file.write_text(saved_stack)
        project_file.write_text(saved_project)
        (space.path / "transforms.json").unlink(missing_ok=True)
    preview = json.loads(result.stdout)
    preview.pop("duration", None)
    return preview


def main(names: list[str]) -> int:
    chosen = [s for s in SCENARIOS if not names or s.name in names]
    unknown = set(names) - {s.name for s in SCENARIOS}
    if unknown:
        print(f"unknown scenarios: {', '.join(sorted(unknown))}; known: {', '.join(s.name for s in SCENARIOS)}")
        return 2
    bin_dir = realcli.toolchain_bin(show_progress=True)
    FIXTURES.mkdir(parents=True, exist_ok=True)
    with tempfile.TemporaryDirectory(prefix="kms-aks-fixtures-") as temp, running_standin(sleep_cap=1.0) as standin:
        base = Path(temp)
        project = base / "project"
        realcli.copy_project(ROOT, project)
        for entry_point in ("transformed.py", "empty_program.py"):
            shutil.copy(ENTRY_POINTS / entry_point, project / entry_point)
        (base / "state").mkdir()
        env = realcli.cli_environment(
            bin_dir, home=base, backend=base / "state", passphrase=PASSPHRASE, debug_providers=standin.debug_providers
        )
        space = Workspace(path=project, env=env, out=base / "out")
        space.out.mkdir()
        for stack in sorted({s.stack for s in chosen}):
            _check(space.pulumi("stack", "init", stack, "--secrets-provider", "passphrase"), f"stack init {stack}")
            for scenario in (s for s in chosen if s.stack == stack and s.before_up):
                _save(scenario, _record(space, scenario))
            _check(space.pulumi("up", "--stack", stack, "--yes", "--skip-preview"), f"up {stack}")
            print(f"{stack}: created", flush=True)
        for scenario in (s for s in chosen if not s.before_up):
            _save(scenario, _record(space, scenario))
    return 0


def _save(scenario: Scenario, preview: dict[str, Any]) -> None:
    target = FIXTURES / f"{scenario.name}.json"
    target.write_text(json.dumps(preview, indent=2) + "\n")
    ops = sorted({step["op"] for step in preview["steps"]})
    print(
        f"{scenario.name}: {len(preview['steps'])} steps ({', '.join(ops)}) -> {target.relative_to(ROOT)}", flush=True
    )


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
