"""docs/sandbox.md's rotation rehearsal, followed word for word: the whole key lifecycle, twice, offline, with no
waiver and no hand-made record, asserting on etcd's own bytes at each step; then the outage the gate prevents.

The commands are read from the page's "Rehearsing a key rotation" section (its `sh` blocks, in order) and run as a
user types them, each its own process, in a scratch copy of the project (`kms-aks` on PATH, the copy the working
directory). The edits the page describes in words (pin the version, the override) are made as it says. Secrets
are written with the official Kubernetes client through the sandbox's kubeconfig; etcd's bytes are read from etcd
directly (`ControlPlane.attach`), never through the API server. The test does not know the key versions in
advance: `sandbox key-version` prints them, and the cluster's first one is the stand-in Key's.
"""

from __future__ import annotations

import json
import os
import re
import shlex
import subprocess
from collections.abc import Iterator
from pathlib import Path

import pytest
import yaml
from kubernetes import client, config

from kms_aks_tools.cluster.keys import plugin_key_id
from kms_aks_tools.offline import realcli
from testbed import ControlPlane, build_binaries, envelope_key_id

ROOT = realcli.ROOT
PAGE = (ROOT / "docs" / "sandbox.md").read_text()
SECTION = PAGE[PAGE.index("## Rehearsing a key rotation") :].split("\n## ", 1)[0]
COMMANDS = [
    line.strip()
    for block in re.findall(r"^ *```sh\n(.*?)^ *```", SECTION, re.M | re.S)
    for line in block.splitlines()
    if line.strip()
]
CONTEXT = "sandbox-dev"
SECRETS = 12


def test_the_page_walks_the_loop_in_this_order() -> None:
    """What the scenario below runs, step by step: a change to the page shows here first."""
    assert [c.split(" --", 1)[0] for c in COMMANDS] == [
        "kms-aks sandbox up",
        "kms-aks sandbox key-version",
        "kms-aks sandbox preview",
        "kms-aks reencrypt",
        "kms-aks sandbox preview",
        "kms-aks sandbox up",
        "kms-aks reencrypt",
        "kms-aks key-status",
    ]


class User:
    """A user in a scratch copy of the project, typing the page's commands."""

    def __init__(self, project: Path) -> None:
        self.project = project
        self.env = {
            **os.environ,
            "PATH": f"{ROOT / '.venv' / 'bin'}{os.pathsep}{os.environ['PATH']}",
            "LANG": "C.UTF-8",
            "COLUMNS": "300",
        }
        self.transcript: list[str] = []

    def type(self, command: str, expected: int, **placeholders: str) -> str:
        for name, value in placeholders.items():
            command = command.replace(f"<{name.replace('_', ' ')}>", value)
        assert "<" not in command, f"a placeholder is left in {command!r}"
        result = subprocess.run(
            shlex.split(command), cwd=self.project, env=self.env, capture_output=True, text=True, timeout=1800
        )
        output = result.stdout + result.stderr
        self.transcript.append(f"$ {command} -> {result.returncode}\n{output[-3000:]}")
        assert result.returncode == expected, "\n".join(self.transcript[-3:])
        return " ".join(output.split())  # rich wraps long lines; the words are what matter

    def pin(self, key_id: str) -> None:
        """The page's step 2 edit: kms-aks:kmsKey.version and the pack's pinnedKeyIds."""
        realcli.set_stack_config(self.project / "Pulumi.dev.yaml", "kmsKey.version", key_id.rsplit("/", 1)[1])
        policy = self.project / "policies" / "config" / "dev.json"
        policy.write_text(
            json.dumps({**json.loads(policy.read_text()), "aks-kms-key-source": {"pinnedKeyIds": [key_id]}}, indent=2)
        )

    def override(self, urn: str, new_key_id: str, waiver_for: str | None = None) -> None:
        """The page's step 3 edit (guard-overrides.yaml, as rotation.md shows it); a waiver only where said."""
        document: dict = {"keyRotations": [{"urn": urn, "newKeyId": new_key_id, "reason": "rehearsal"}]}
        if waiver_for:
            document["reencryptionWaivers"] = [{"urn": urn, "currentKeyId": waiver_for, "reason": "forced outage"}]
        (self.project / "guard-overrides.yaml").write_text(yaml.safe_dump(document, sort_keys=False))

    def plane(self) -> ControlPlane:
        return ControlPlane.attach(self.project / ".sandbox" / "clusters" / "dev")

    def etcd_keys(self) -> dict[str, str | None]:
        """Each Secret's envelope key id, read from etcd's own bytes."""
        return {f"{ns}/{name}": envelope_key_id(raw) for ns, name, raw in self.plane().etcd_secrets()}


@pytest.fixture(scope="module")
def user(tmp_path_factory: pytest.TempPathFactory) -> Iterator[User]:
    os.environ.setdefault("KMS_AKS_K8S_BIN", str(build_binaries()))
    project = tmp_path_factory.mktemp("sandbox-loop") / "project"
    realcli.copy_project(ROOT, project)
    user = User(project)
    yield user
    # The commands and what they printed (their timings included), for the record of the run.
    (project.parent / "transcript.txt").write_text("\n".join(user.transcript))
    subprocess.run(
        [str(ROOT / ".venv" / "bin" / "kms-aks"), "sandbox", "reset", "--cwd", str(project)],
        capture_output=True,
        timeout=300,
        check=False,
    )


def core(user: User) -> client.CoreV1Api:
    api = config.new_client_from_config(str(user.project / ".sandbox" / "kubeconfig"), context=CONTEXT)
    return client.CoreV1Api(api)


def write_secrets(user: User, prefix: str, count: int = SECRETS) -> None:
    api = core(user)
    for index in range(count):
        body = client.V1Secret(
            metadata=client.V1ObjectMeta(name=f"{prefix}-{index}"), string_data={"password": f"p-{prefix}-{index}"}
        )
        api.create_namespaced_secret("default", body)


def under(user: User, key_id: str) -> set[str]:
    return {name for name, key in user.etcd_keys().items() if key == plugin_key_id(key_id)}


def urn_of(output: str) -> str:
    return re.search(r"REFUSED \[kms-key-change\] (\S+)", output)[1]  # type: ignore[index]


def new_version(user: User) -> str:
    printed = user.type(COMMANDS[1], 0)
    return re.search(r"(https://kv-kmsaks-dev-01\.vault\.azure\.net/keys/aks-kms-dev/[0-9a-f]{32})", printed)[1]  # type: ignore[index]


def test_two_rotations_by_the_page_with_records_and_no_waiver(user: User) -> None:
    # 1. Deploy; the cluster starts on the Key's first version. Secrets are written: etcd holds them under it.
    out = user.type(COMMANDS[0], 0)
    assert f"sandbox cluster {CONTEXT}: ready at https://127.0.0.1:" in out
    plane = user.plane()
    v1 = plane.key_id(plane.current_version)
    write_secrets(user, "first")
    assert len(under(user, v1)) == SECRETS == len(user.etcd_keys())

    for rotation in (1, 2):
        current = user.plane().key_id(user.plane().current_version)
        # 2. A new key version; the page's edits; the guard refuses twice.
        v_next = new_version(user)
        user.pin(v_next)
        out = user.type(COMMANDS[2], 1)
        if rotation == 1:
            assert "REFUSED [kms-key-change]" in out and "REFUSED [rotation-without-reencryption]" in out
            urn = urn_of(out)
            # 3. The override; the gate asks for the current key's record, naming the command that writes it.
            user.override(urn, v_next)
            out = user.type(COMMANDS[4], 1)
            assert "REFUSED [kms-key-change]" not in out and "REFUSED [rotation-without-reencryption]" in out
            assert f"kms-aks reencrypt --stack dev --key-id {current} --context" in out
            assert "no verified re-encryption record of this cluster in rotations/dev.yaml" in out
            # 4. reencrypt on the sandbox's cluster writes the record into the working tree; the gate passes.
            user.type(COMMANDS[3], 0, current_key_id=current)
            records = yaml.safe_load((user.project / "rotations" / "dev.yaml").read_text())["records"]
            assert [(r["keyId"], r["complete"]) for r in records] == [(current, True)]
            assert records[0]["apiServer"]["metricsServed"] is True
            assert len(under(user, current)) == len(user.etcd_keys())
        else:
            # The second rotation passes the gate on the record step 5 wrote (the override moved to the new key).
            user.override(urn, v_next)
        assert "reencryptionWaivers" not in (user.project / "guard-overrides.yaml").read_text()
        out = user.type(COMMANDS[4], 0)
        assert "plan guard: passed" in out and f"ALLOWED [kms-key-change] {urn}" in out

        # 5. up: the plugin switches key; the old Secrets stay under the previous key until re-encrypted.
        before = set(user.etcd_keys())
        out = user.type(COMMANDS[5], 0)
        assert f"the KMS plugin switched key: current {v_next}, previous {current}" in out
        assert "outage" not in out
        assert under(user, current) == before
        write_secrets(user, f"after-{rotation}", 2)
        assert {f"default/after-{rotation}-{i}" for i in range(2)} <= under(user, v_next)
        # 6. reencrypt (the stack pins the new key) and key-status: every Secret under it, exit 0.
        user.type(COMMANDS[6], 0)
        assert under(user, v_next) == set(user.etcd_keys())
        user.type(COMMANDS[7], 0)
    # Every Secret still reads, with its own value.
    assert core(user).read_namespaced_secret("first-0", "default").data["password"] == "cC1maXJzdC0w"


def test_a_second_rotation_without_reencryption_drops_the_key_and_the_cluster_fails_as_aks_would(user: User) -> None:
    plane = user.plane()
    current = plane.key_id(plane.current_version)
    records = yaml.safe_load((user.project / "rotations" / "dev.yaml").read_text())["records"]
    urn = yaml.safe_load((user.project / "guard-overrides.yaml").read_text())["keyRotations"][0]["urn"]
    assert records[-1]["keyId"] == current, "the loop above left every Secret re-encrypted and recorded"
    stored_under = current

    # A rotation with a record: fine. Its Secrets stay under `stored_under`, now the previous key.
    v_a = new_version(user)
    user.pin(v_a)
    user.override(urn, v_a)
    user.type(COMMANDS[4], 0)
    assert "outage" not in user.type(COMMANDS[5], 0)
    # Another one at once, with no re-encryption: the gate refuses; a waiver forces it.
    v_b = new_version(user)
    user.pin(v_b)
    user.override(urn, v_b)
    out = user.type(COMMANDS[4], 1)
    assert f"REFUSED [rotation-without-reencryption] {urn}" in out
    user.override(urn, v_b, waiver_for=v_a)
    user.type(COMMANDS[4], 0)
    out = user.type(COMMANDS[5], 0)
    assert f"dropped {stored_under}" in out
    # etcd's bytes: the Secrets are still under the key the plugin no longer has.
    slots = json.loads((user.project / ".sandbox" / "clusters" / "dev" / "key-slots.json").read_text())
    assert slots == {"current": v_b, "previous": v_a}
    assert under(user, stored_under) == set(user.etcd_keys()) and user.etcd_keys()
    # What a user of the cluster sees: readyz fails on the informer sync, lists of Secrets are refused.
    assert "GET /readyz: HTTP 500" in out and "informer-sync" in out
    assert "GET /api/v1/secrets: HTTP 429" in out and "outage" in out
    plane = user.plane()
    assert plane.api_get("/readyz").status_code != 200
    assert plane.api_get("/api/v1/namespaces/default/secrets").status_code == 429
