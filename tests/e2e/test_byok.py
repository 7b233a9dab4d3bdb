"""A bring-your-own-key stack under the real CLI: its vault and key live outside the stack, declared as another
team's resources (`sandbox-azure.yaml`, `kms_aks_tools.standin.outside`), so AKS's checks in the stand-in find
them. It deploys, and rotates to the key's next version, as a created key does."""

from __future__ import annotations

import json
import re
import shutil

from kms_aks_tools.standin.outside import OUTSIDE_FILE, add_outside
from tests.e2e.conftest import Workspace

STACK = "byok"
VAULT_ID = (
    "/subscriptions/11111111-2222-3333-4444-555555555555/resourceGroups/rg-team-keys"
    "/providers/Microsoft.KeyVault/vaults/kv-team-keys-01"
)
KEY_URI = "https://kv-team-keys-01.vault.azure.net/keys/aks-etcd"
V1, V2, UNDECLARED = "1a" * 16, "2b" * 16, "3c" * 16
CLUSTER_TYPE = "azure-native:containerservice:ManagedCluster"


def test_a_byok_stack_deploys_and_rotates_on_a_key_declared_outside_it(workspace: Workspace) -> None:
    assert workspace.standin is not None
    space = workspace
    (space.path / OUTSIDE_FILE).write_text(
        "# Another team's vault and key (bring your own key), reviewed like code.\n"
        f"vaults:\n  - id: {VAULT_ID}\n    permissionModel: rbac\n    keys:\n"
        f"      - name: aks-etcd\n        versions: ['{V1}', '{V2}']\n"
    )
    with space.standin.cloud.lock:
        added = add_outside(space.standin.cloud.states, space.path / OUTSIDE_FILE)
    assert VAULT_ID in added
    stack_text = (
        "config:\n  azure-native:location: westeurope\n  kms-aks:location: westeurope\n"
        "  kms-aks:protectKmsResources: false\n  kms-aks:existingKey:\n"
        f"    keyId: {KEY_URI}/{V1}\n    keyVaultResourceId: {VAULT_ID}\n    permissionModel: rbac\n"
        '  kms-aks:cluster:\n    name: aks-byok\n    kubernetesVersion: "1.33"\n'
        "    apiServerAuthorizedIpRanges: [198.51.100.0/24]\n"
    )
    space.stack_file(STACK).write_text(stack_text)
    policy = space.path / "policies" / "config" / f"{STACK}.json"
    shutil.copy(space.path / "policies" / "config" / "dev.json", policy)
    # A key the stack does not create is pinned in the pack's config (aks-kms-key-source), as the docs say.
    policy.write_text(
        json.dumps({**json.loads(policy.read_text()), "aks-kms-key-source": {"pinnedKeyIds": [f"{KEY_URI}/{V1}"]}})
    )
    overrides = space.path / "guard-overrides.yaml"
    try:
        assert space.pulumi("stack", "init", STACK, "--secrets-provider", "passphrase").returncode == 0
        out = space.out / STACK
        previewed = space.ci("preview", STACK, str(out))
        assert previewed.returncode == 0, previewed.stdout[-3000:] + previewed.stderr[-3000:]
        applied = space.ci("up", STACK, str(out))
        assert applied.returncode == 0, applied.stdout[-3000:] + applied.stderr[-3000:]
        cluster = next(r for r in space.export(STACK)["deployment"]["resources"] if r["type"] == CLUSTER_TYPE)
        assert cluster["outputs"]["securityProfile"]["azureKeyVaultKms"]["keyId"] == f"{KEY_URI}/{V1}"

        # The rotation to the key's next version, reviewed: the override, and (the cluster's only key so far)
        # a waiver of the re-encryption record.
        space.stack_file(STACK).write_text(stack_text.replace(f"{KEY_URI}/{V1}", f"{KEY_URI}/{V2}"))
        policy.write_text(
            json.dumps({**json.loads(policy.read_text()), "aks-kms-key-source": {"pinnedKeyIds": [f"{KEY_URI}/{V2}"]}})
        )
        overrides.write_text(
            f'keyRotations:\n  - urn: "{cluster["urn"]}"\n    newKeyId: "{KEY_URI}/{V2}"\n    reason: "e2e BYOK"\n'
            f'reencryptionWaivers:\n  - urn: "{cluster["urn"]}"\n    currentKeyId: "{KEY_URI}/{V1}"\n'
            '    reason: "e2e: the cluster has only ever used this key"\n'
        )
        previewed = space.ci("preview", STACK, str(out))
        assert previewed.returncode == 0, previewed.stdout[-3000:] + previewed.stderr[-3000:]
        assert f"ALLOWED [kms-key-change] {cluster['urn']}" in previewed.stdout.splitlines()
        applied = space.ci("up", STACK, str(out))
        assert applied.returncode == 0, applied.stdout[-3000:] + applied.stderr[-3000:]
        rotated = next(r for r in space.export(STACK)["deployment"]["resources"] if r["type"] == CLUSTER_TYPE)
        assert rotated["outputs"]["securityProfile"]["azureKeyVaultKms"]["keyId"] == f"{KEY_URI}/{V2}"

        # A version nobody declared does not exist: AKS's own KeyNotFound, nothing applied.
        space.stack_file(STACK).write_text(stack_text.replace(f"{KEY_URI}/{V1}", f"{KEY_URI}/{UNDECLARED}"))
        pinned = {"aks-kms-key-source": {"pinnedKeyIds": [f"{KEY_URI}/{UNDECLARED}"]}}
        policy.write_text(json.dumps({**json.loads(policy.read_text()), **pinned}))
        overrides.write_text(
            f'keyRotations:\n  - urn: "{cluster["urn"]}"\n    newKeyId: "{KEY_URI}/{UNDECLARED}"\n'
            '    reason: "e2e"\n'
            f'reencryptionWaivers:\n  - urn: "{cluster["urn"]}"\n    currentKeyId: "{KEY_URI}/{V2}"\n'
            '    reason: "e2e"\n'
        )
        assert space.ci("preview", STACK, str(out)).returncode == 0
        refused = space.ci("up", STACK, str(out))
        assert refused.returncode != 0 and re.search(r'Code="?\\?"?KeyNotFound', refused.stdout + refused.stderr)
    finally:
        overrides.unlink(missing_ok=True)
        space.pulumi("destroy", "--stack", STACK, "--yes", "--skip-preview")
        space.pulumi("stack", "rm", STACK, "--yes", "--force")
        (space.path / OUTSIDE_FILE).unlink(missing_ok=True)
