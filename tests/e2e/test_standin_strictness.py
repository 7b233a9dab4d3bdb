"""The stricter Azure stand-in, proven under the real Pulumi CLI and engine (docs/real-cli.md).

Each scenario runs in its own copy of the session's workspace with its own stack (and its own vault, key and
cluster names, since the stand-in is one Azure for the whole session), so it never touches the dev and prod stacks
of test_real_cli.py. The refusals asserted are the stand-in's renderings of azure-native's Check failures and of
Azure's own errors (kms_aks_tools/standin/schema.py and arm.py cite where each comes from).
"""

from __future__ import annotations

import re
import shutil
from pathlib import Path

from tests.e2e.conftest import Workspace

ENTRY_POINT = Path(__file__).parent / "strictness_variants.py"


def _variant(workspace: Workspace, tmp_path: Path, stack: str, variant: str = "") -> Workspace:
    """A copy of the workspace with stack `stack` made from dev's config, its names unique in the stand-in."""
    env = {**workspace.env, "KMS_AKS_E2E_VARIANT": variant} if variant else workspace.env
    space = Workspace(path=tmp_path / stack, env=env, out=tmp_path / "out")
    shutil.copytree(workspace.path, space.path, symlinks=True)
    if variant:
        shutil.copy(ENTRY_POINT, space.path / ENTRY_POINT.name)
        project = space.path / "Pulumi.yaml"
        project.write_text(project.read_text() + f"main: {ENTRY_POINT.name}\n")
    dev = (workspace.path / "Pulumi.dev.yaml").read_text()
    space.stack_file(stack).write_text(re.sub(r"(?m)^encryptionsalt:.*\n", "", dev))
    space.set_config(stack, "keyVault.name", f"kv-kmsaks-{stack}")
    space.set_config(stack, "kmsKey.name", f"aks-kms-{stack}")
    space.set_config(stack, "cluster.name", f"aks-kms-{stack}")
    created = space.pulumi("stack", "init", stack, "--secrets-provider", "passphrase")
    assert created.returncode == 0, created.stderr
    return space


def _output(result: object) -> str:
    return result.stdout + result.stderr  # type: ignore[attr-defined]


def test_up_without_the_propagation_wait_fails_with_azures_permission_error(
    workspace: Workspace, tmp_path: Path
) -> None:
    space = _variant(workspace, tmp_path, "nowait", "no-grant-wait")
    assert workspace.standin is not None
    cloud = workspace.standin.cloud
    session_delay = cloud.grant_propagation
    # A delay no engine step on this loaded 2-core machine outlasts (the session's is half the 1 s Sleep cap): the
    # scenario must show the missing wait, not the machine's speed. The wait itself covering the delay is shown by
    # every other `up` here and by tests/test_standin_provider.py.
    cloud.grant_propagation = 30.0
    try:
        applied = space.pulumi("up", "--stack", "nowait", "--yes", "--skip-preview")
        assert applied.returncode != 0, _output(applied)[-3000:]
        assert "AzureKeyVaultKmsValidateIdentityPermissionCustomerError" in _output(applied), _output(applied)[-3000:]
        # Everything but the cluster exists: the refusal is the cluster's create, nothing of it is in the state.
        state = space.export("nowait")["deployment"].get("resources", [])
        types = {r["type"] for r in state}
        assert "azure-native:containerservice:ManagedCluster" not in types
        assert {"azure-native:keyvault:Key", "azure-native:keyvault:AccessPolicy"} <= types
    finally:
        cloud.grant_propagation = session_delay
        space.pulumi("destroy", "--stack", "nowait", "--yes")


def test_a_schema_refused_input_fails_preview_with_azure_natives_message(
    workspace: Workspace, tmp_path: Path
) -> None:
    space = _variant(workspace, tmp_path, "badname", "bad-vault-name")
    previewed = space.pulumi("preview", "--stack", "badname")
    assert previewed.returncode != 0
    output = _output(previewed)
    # azure-native's Check failure, as the engine prints a CheckFailure without a property path.
    assert "azure-native:keyvault:Vault resource" in output, output[-3000:]
    assert "'vaultName' does not match expression '^[a-zA-Z0-9-]{3,24}$'" in output, output[-3000:]
    assert "Traceback" not in output, output[-5000:]


def test_public_to_private_on_an_existing_kms_cluster_is_refused_on_update(
    workspace: Workspace, tmp_path: Path
) -> None:
    space = _variant(workspace, tmp_path, "netswitch")
    try:
        created = space.pulumi("up", "--stack", "netswitch", "--yes", "--skip-preview")
        # With the propagation wait in place the stricter stand-in creates the KMS cluster.
        assert created.returncode == 0, _output(created)[-3000:]
        space.set_config("netswitch", "keyVaultNetworkAccess", "Private")
        space.set_config(
            "netswitch",
            "network",
            {
                "vnetAddressSpace": "10.20.0.0/22",
                "apiServerSubnetPrefix": "10.20.0.0/28",
                "nodeSubnetPrefix": "10.20.1.0/24",
            },
        )
        switched = space.pulumi("up", "--stack", "netswitch", "--yes", "--skip-preview")
        output = _output(switched)
        assert switched.returncode != 0, output[-3000:]
        refusal = "from Public to Private is not supported while KMS is enabled: disable KMS first"
        assert refusal in output, output[-3000:]
        cluster = next(
            r for r in space.export("netswitch")["deployment"]["resources"]
            if r["type"] == "azure-native:containerservice:ManagedCluster"
        )
        assert cluster["outputs"]["securityProfile"]["azureKeyVaultKms"]["keyVaultNetworkAccess"] == "Public"
    finally:
        space.pulumi("destroy", "--stack", "netswitch", "--yes")
