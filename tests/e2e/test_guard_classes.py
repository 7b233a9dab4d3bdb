"""Issue 21's classes under the real CLI: a change a user would make, previewed by the real engine the way the
workflows preview (`.ci/pulumi-stack preview`: the pack, then `kms-aks guard` on `pulumi preview --json
--show-sames`), and judged by the guard. Each names the rule that refuses it; a harmless change beside them passes.

- class 1: the Vault's own `properties.accessPolicies` written (emptied) wipes the KMS identity's separate grant;
- class 4: the resource group deleted while the vault, key, identity and cluster stay (moved to its literal name);
- class 6: a key stack without the cluster: deleting the KMS grant is refused, as a cluster elsewhere uses it.
"""

from __future__ import annotations

import json
import re
import shutil
from collections.abc import Iterator
from pathlib import Path

import pytest

from tests.e2e.conftest import Workspace

HERE = Path(__file__).parent
STACK = "guardcls"  # the project's program, deployed once for classes 1 and 4
KEY_STACK = "guardkeys"  # a key stack without the cluster (key_stack.py), for class 6
VAULT = "azure-native:keyvault:Vault"
GROUP = "azure-native:resources:ResourceGroup"
ACCESS_POLICY = "azure-native:keyvault:AccessPolicy"


def _type(urn: str) -> str:
    return urn.split("::")[2].split("$")[-1]


def _new_stack(space: Workspace, stack: str, config: dict[str, object]) -> None:
    """Pulumi.<stack>.yaml from dev's (its own vault and cluster names: Key Vault names are global), dev's pack
    config, and the stack created, as a team adds a stack."""
    text = re.sub(r"(?m)^encryptionsalt:.*\n", "", (space.path / "Pulumi.dev.yaml").read_text())
    space.stack_file(stack).write_text(text)
    for key, value in config.items():
        space.set_config(stack, key, value)
    shutil.copy(space.path / "policies" / "config" / "dev.json", space.path / "policies" / "config" / f"{stack}.json")
    created = space.pulumi("stack", "init", stack, "--secrets-provider", "passphrase")
    assert created.returncode == 0, created.stderr


def _variant(workspace: Workspace, base: Path, *entry_points: str) -> Workspace:
    space = Workspace(path=base / "project", env=workspace.env, out=base / "out", standin=workspace.standin)
    shutil.copytree(workspace.path, space.path, symlinks=True)
    for entry_point in entry_points:
        shutil.copy(HERE / entry_point, space.path / entry_point)
    return space


def _deploy(space: Workspace, stack: str) -> None:
    out = space.out / f"{stack}-first"
    previewed = space.ci("preview", stack, str(out))
    assert previewed.returncode == 0, previewed.stdout[-3000:] + previewed.stderr[-3000:]
    applied = space.ci("up", stack, str(out))
    assert applied.returncode == 0, applied.stdout[-3000:] + applied.stderr[-3000:]


def _remove(space: Workspace, stack: str) -> None:
    space.pulumi("destroy", "--stack", stack, "--yes", "--skip-preview")
    space.pulumi("stack", "rm", stack, "--yes", "--force")


class Previewed:
    """One preview of a change, and the guard's verdict on it (run again here, as the workflow runs it)."""

    def __init__(self, space: Workspace, stack: str, name: str) -> None:
        self.out = space.out / name
        self.ci = space.ci("preview", stack, str(self.out))
        self.preview = json.loads((self.out / "preview.json").read_text())
        self.guard = space.run("kms-aks", "guard", str(self.out / "preview.json"), "--json", str(self.out / "g.json"))
        self.verdict = json.loads((self.out / "g.json").read_text())

    def ops(self, type_token: str) -> list[str]:
        return [s["op"] for s in self.preview["steps"] if _type(s["urn"]) == type_token]

    def refused(self) -> list[tuple[str, str, str]]:
        return sorted((f["rule"], _type(f["urn"]), f["path"]) for f in self.verdict["findings"])


def _preview(space: Workspace, stack: str, name: str, *, main: str | None = None, **files: str) -> Previewed:
    """Previews `stack` with the program's entry point switched to `main` and `files` written (each restored)."""
    project = space.path / "Pulumi.yaml"
    saved = project.read_text()
    if main is not None:
        project.write_text(saved + f"main: {main}\n")
    for file_name, text in files.items():
        (space.path / file_name.replace("__", ".")).write_text(text)
    try:
        return Previewed(space, stack, name)
    finally:
        project.write_text(saved)
        for file_name in files:
            (space.path / file_name.replace("__", ".")).unlink(missing_ok=True)


@pytest.fixture(scope="module")
def deployed(workspace: Workspace, tmp_path_factory: pytest.TempPathFactory) -> Iterator[Workspace]:
    space = _variant(workspace, tmp_path_factory.mktemp("guard-classes"), "transformed.py", "literal_group.py")
    _new_stack(space, STACK, {"keyVault.name": "kv-kmsaks-gcls-01", "cluster.name": "aks-kms-gcls"})
    try:
        _deploy(space, STACK)
        yield space
    finally:
        _remove(space, STACK)


def test_a_harmless_change_beside_them_passes(deployed: Workspace) -> None:
    stack_file = deployed.stack_file(STACK)
    saved = stack_file.read_text()
    deployed.set_config(STACK, "cluster.systemNodePool.count", 3)
    try:
        run = Previewed(deployed, STACK, "control")
    finally:
        stack_file.write_text(saved)
    assert run.ci.returncode == 0, run.ci.stdout[-3000:] + run.ci.stderr[-3000:]
    assert run.guard.returncode == 0 and run.verdict["status"] == "passed"
    assert run.ops("azure-native:containerservice:ManagedCluster") == ["update"]


def test_class_1_the_vaults_own_access_policies_written_are_refused(deployed: Workspace) -> None:
    # The program's Vault given `properties.accessPolicies: []`, as code that mixes the two styles does.
    transforms = json.dumps([{"type": VAULT, "set": {"properties.accessPolicies": []}}])
    run = _preview(deployed, STACK, "class-1", main="transformed.py", transforms__json=transforms)
    assert run.ops(VAULT) == ["update"] and set(run.ops(ACCESS_POLICY)) == {"same"}
    assert run.ci.returncode == 1 and run.guard.returncode == 1, run.guard.stdout[-3000:]
    assert run.refused() == [("vault-access-policies-change", VAULT, "properties.accessPolicies")]
    assert "REFUSED [vault-access-policies-change]" in (run.out / "guard.txt").read_text()


def test_class_4_the_resource_group_deleted_under_the_kms_resources_is_refused(deployed: Workspace) -> None:
    run = _preview(deployed, STACK, "class-4", main="literal_group.py")
    assert run.ops(GROUP) == ["delete"]
    # Everything else stays: it names the same group, now as a literal.
    assert {s["op"] for s in run.preview["steps"] if _type(s["urn"]) != GROUP} <= {"same"}
    assert run.ci.returncode == 1 and run.guard.returncode == 1, run.guard.stdout[-3000:]
    assert run.refused() == [("destructive-op", GROUP, "op=delete")]
    assert "resource group that holds the cluster's KMS resources" in " ".join(run.guard.stdout.split())


@pytest.fixture(scope="module")
def key_stack(workspace: Workspace, tmp_path_factory: pytest.TempPathFactory) -> Iterator[Workspace]:
    space = _variant(workspace, tmp_path_factory.mktemp("guard-key-stack"), "key_stack.py")
    project = space.path / "Pulumi.yaml"
    project.write_text(project.read_text() + "main: key_stack.py\n")
    space.stack_file(KEY_STACK).write_text("config:\n  azure-native:location: westeurope\n")
    policies = space.path / "policies" / "config"
    shutil.copy(policies / "dev.json", policies / f"{KEY_STACK}.json")
    assert space.pulumi("stack", "init", KEY_STACK, "--secrets-provider", "passphrase").returncode == 0
    try:
        _deploy(space, KEY_STACK)
        yield space
    finally:
        _remove(space, KEY_STACK)


def _key_stack_preview(space: Workspace, name: str, key: str, value: str) -> Previewed:
    stack_file = space.stack_file(KEY_STACK)
    saved = stack_file.read_text()
    stack_file.write_text(saved.replace("config:\n", f"config:\n  kms-aks:{key}: {value}\n", 1))
    try:
        return Previewed(space, KEY_STACK, name)
    finally:
        stack_file.write_text(saved)


def test_class_6_in_a_key_stack_without_the_cluster_deleting_the_kms_grant_is_refused(key_stack: Workspace) -> None:
    steps = json.loads((key_stack.out / f"{KEY_STACK}-first" / "preview.json").read_text())["steps"]
    assert not any("ManagedCluster" in s["urn"] for s in steps), "the key stack holds no cluster"
    run = _key_stack_preview(key_stack, "class-6", "kmsGrant", "false")
    assert run.ops(ACCESS_POLICY) == ["delete"]
    assert run.ci.returncode == 1 and run.guard.returncode == 1, run.guard.stdout[-3000:]
    assert run.refused() == [("kms-grant-removed", ACCESS_POLICY, "op=delete")]
    assert "a cluster in another stack may use its key" in " ".join(run.guard.stdout.split())


def test_in_the_key_stack_a_tags_change_passes(key_stack: Workspace) -> None:
    run = _key_stack_preview(key_stack, "key-stack-tags", "team", "payments")
    assert run.ci.returncode == 0, run.ci.stdout[-3000:] + run.ci.stderr[-3000:]
    assert run.guard.returncode == 0 and run.verdict["status"] == "passed"
    assert run.ops(GROUP) == ["update"]
    assert {s["op"] for s in run.preview["steps"] if _type(s["urn"]) != GROUP} == {"same"}
