"""A real Kubernetes control plane on loopback: etcd, kube-apiserver, our KMS v2 plugin, a Key Vault stand-in.

    with ControlPlane.start(tmp_path) as cp:
        v1 = cp.current_version
        ...write Secrets through cp.kubeconfig / cp.context...
        raw = cp.etcd_get("/registry/secrets/default/s1")   # bytes, read from etcd, not through the API
        v2 = cp.create_key_version()
        cp.use_key_version(v2)                                # returns once the API server uses v2

The binaries come from `e2e/k8s/build.sh` (built from their Go modules once, then reused). Every process
listens on 127.0.0.1 on a port picked free, keeps its state under `workdir`, and logs to `workdir/logs/`.
Teardown is certain: `stop()` (the context manager's exit) ends every process, and each child also gets
SIGKILL from the kernel if the Python process that started it dies (PR_SET_PDEATHSIG), so a killed test run
leaves no etcd or kube-apiserver behind (only the plugin's socket folder, /tmp/kmsaks-*, is left).

Secrets (the admin token, the vault token, key material) live in 0600 files under `workdir`; nothing here
logs them, and the processes' own logs do not contain them.
"""

from __future__ import annotations

import base64
import json
import os
import secrets
import shutil
import subprocess
import sys
import tempfile
import time
from collections.abc import Callable, Iterator, Sequence
from pathlib import Path
from types import TracebackType

import requests
import yaml

from azure_facts.key_ids import metric_key_id_hash, plugin_key_id
from kms_aks_tools.cluster.metrics import status_key_id_hash
from kms_aks_tools.project.stack_file import PACKAGE_ROOT
from testbed.loadbalancer import RoundRobinProxy
from testbed.pki import write_pki
from testbed.processes import Process, free_port, write_atomic, write_private

ROOT = PACKAGE_ROOT
BUILD_SCRIPT = ROOT / "e2e" / "k8s" / "build.sh"
# The vault the key ids name (the plugin hashes these URLs); requests go to the stand-in on loopback.
DEFAULT_VAULT_URL = "https://kms-aks-dev.vault.azure.net/"
DEFAULT_KEY_NAME = "kms-key"
# Key Vault's REST API version, as the plugin sends it (e2e/k8s/kmsplugin/vault.go).
KEY_VAULT_API_VERSION = "7.4"
# The KMS provider's name in the EncryptionConfiguration, hence the etcd prefix k8s:enc:kms:v2:<provider>:.
PROVIDER = "kms-aks"
CONTEXT = "kms-aks-e2e"
SECRETS_PREFIX = "/registry/secrets/"
# The API server polls the plugin's Status once a minute, and again on a kms-providers health check once the
# last answer is 20 s old (k8s.io/apiserver encryptionconfig/config.go: kmsv2PluginHealthzPositiveInterval,
# kmsPluginHealthzPositiveTTL); use_key_version asks for that check every second, so a new key shows in
# about 20 s. Startup on a busy 2-core machine can take a minute.
KEY_SWITCH_TIMEOUT = 120.0
START_TIMEOUT = 180.0


class ControlPlaneError(RuntimeError):
    """A part of the control plane did not start or answer; the message names it and its log."""


def build_binaries() -> Path:
    """The bin folder with kube-apiserver, etcd and kmsplugin: `e2e/k8s/build.sh` (builds only when stale).

    KMS_AKS_K8S_BIN, when set, names a folder to use instead (nothing is built then).
    """
    if os.environ.get("KMS_AKS_K8S_BIN"):
        return Path(os.environ["KMS_AKS_K8S_BIN"])
    result = subprocess.run(["bash", str(BUILD_SCRIPT)], stdout=subprocess.PIPE, text=True, check=False)
    if result.returncode != 0:
        raise ControlPlaneError(f"{BUILD_SCRIPT} failed with exit {result.returncode} (its progress is above)")
    return Path(result.stdout.strip().splitlines()[-1])


def _b64(data: bytes) -> str:
    return base64.b64encode(data).decode()


def _prefix_end(prefix: bytes) -> bytes:
    """etcd's range_end for "every key starting with prefix"."""
    return prefix[:-1] + bytes([prefix[-1] + 1])


class ControlPlane:
    """etcd + kube-apiserver (KMS v2 for Secrets, identity as the read fallback) + kmsplugin + Key Vault stand-in.

    Attributes for clients: `kubeconfig` (a file with one context, `context`), `server` (https URL), `token`
    (an admin, group system:masters), `unprivileged_token` (authenticates, may do nothing: RBAC denies it),
    `operator_token` (user `kms-aks-operator`, no groups: may do what a test grants it with RBAC),
    `apiserver_urls` (each kube-apiserver; with `apiservers=2`, `server` is a round-robin TCP load balancer
    in front of them, as AKS has one endpoint for its replicas),
    `vault_url` (the vault the key ids name), `key_name`, `provider` (the EncryptionConfiguration's KMS name),
    `current_version` / `previous_version` (the plugin's two key slots), `workdir`, `logs`.
    """

    def __init__(
        self,
        workdir: Path | str,
        bin_dir: Path,
        *,
        vault_url: str = DEFAULT_VAULT_URL,
        key_name: str = DEFAULT_KEY_NAME,
        apiservers: int = 1,
        apiserver_args: Sequence[str] = (),
        context: str = CONTEXT,
        cloud: tuple[Path, Path] | None = None,
        detached: bool = False,
        server_name: str | None = None,
    ) -> None:
        self.workdir = Path(workdir).resolve()
        # The host name the API server's certificate carries and the kubeconfig verifies (`tls-server-name`), as
        # an AKS cluster's certificate carries its `fqdn`; None: 127.0.0.1 only.
        self.server_name = server_name
        self.apiserver_args = list(apiserver_args)
        self.bin_dir = bin_dir
        self.vault_url = vault_url
        self.key_name = key_name
        self.provider = PROVIDER
        self.context = context
        # (saved cloud, key material): the Key Vault stand-in is that cloud's data plane (keyvault.CloudKeyStore),
        # and the key's versions are the cloud's; else it makes its own versions.
        self.cloud = cloud
        self.detached = detached
        self.logs = self.workdir / "logs"
        self.token = secrets.token_urlsafe(32)
        self.unprivileged_token = secrets.token_urlsafe(32)
        self.operator_token = secrets.token_urlsafe(32)
        self.apiserver_count = apiservers
        self.apiserver_urls: list[str] = []
        self._proxy: RoundRobinProxy | None = None
        self._vault_token = secrets.token_urlsafe(32)
        self.kubeconfig = self.workdir / "kubeconfig"
        self.server = ""
        self.ca_file = self.workdir / "pki" / "ca.crt"
        self.vault_endpoint = ""
        self.etcd_url = ""
        self.current_version = ""
        self.previous_version: str | None = None
        # A short folder for the plugin's socket: a unix socket path must fit in 108 bytes, a pytest tmp_path may not.
        self._socket_dir = Path(tempfile.mkdtemp(prefix="kmsaks-"))
        self.plugin_socket = self._socket_dir / "kms.sock"
        self._slots_file = self.workdir / "key-slots.json"
        self._processes: dict[str, Process] = {}
        self._http = requests.Session()

    # --- lifecycle ---------------------------------------------------------------------------------------

    @classmethod
    def start(
        cls,
        workdir: Path | str,
        *,
        bin_dir: Path | None = None,
        vault_url: str = DEFAULT_VAULT_URL,
        key_name: str = DEFAULT_KEY_NAME,
        apiservers: int = 1,
        apiserver_args: Sequence[str] = (),
        context: str = CONTEXT,
        cloud: tuple[Path, Path] | None = None,
        first_version: str | None = None,
        detached: bool = False,
        server_name: str | None = None,
    ) -> ControlPlane:
        """Starts everything (building the binaries first if they are stale) and returns once the API servers
        are ready and write Secrets under the key's first version (`current_version`: `first_version`, a version
        the `cloud` holds, or a new one). With `apiservers` > 1, each runs with a host name of its own (so an
        identity of its own) on the one etcd and plugin. `apiserver_args` are added to kube-apiserver's flags
        (e.g. `--etcd-compaction-interval=10s`). A `detached` plane outlives this process: `save()` it, and
        `attach()` to it from another."""
        plane = cls(
            workdir,
            bin_dir or build_binaries(),
            vault_url=vault_url,
            key_name=key_name,
            apiservers=apiservers,
            apiserver_args=apiserver_args,
            context=context,
            cloud=cloud,
            detached=detached,
            server_name=server_name,
        )
        try:
            plane._start(first_version)
        except BaseException:
            plane.stop()
            raise
        return plane

    # What `save` keeps for `attach`: everything but the processes and the HTTP session. Tokens stay in the
    # 0600 files the plane already writes (tokens.csv, vault-token, the kubeconfig), never in this file.
    _SAVED = ("vault_url", "key_name", "context", "server", "vault_endpoint", "etcd_url", "current_version",
              "previous_version", "server_name", "apiserver_urls")

    def save(self) -> Path:
        """Writes `workdir/plane.json` (ports, keys, pids): what `attach` needs to reach and stop this plane."""
        state = {name: getattr(self, name) for name in self._SAVED}
        state["socket_dir"] = str(self._socket_dir)
        state["pids"] = {name: process.pid for name, process in self._processes.items()}
        state["bin_dir"] = str(self.bin_dir)
        path = self.workdir / "plane.json"
        write_atomic(path, json.dumps(state, indent=2) + "\n")
        return path

    @classmethod
    def attach(cls, workdir: Path | str) -> ControlPlane:
        """The detached plane `save` described in `workdir` (its processes may have ended: `running()` says)."""
        workdir = Path(workdir).resolve()
        state = json.loads((workdir / "plane.json").read_text())
        plane = cls(workdir, Path(state["bin_dir"]), detached=True)
        shutil.rmtree(plane._socket_dir, ignore_errors=True)  # the saved plane's socket folder is the one
        for name in cls._SAVED:
            setattr(plane, name, state.get(name))
        # A detached plane has one API server (the sandbox's): it is the endpoint.
        plane.apiserver_urls = plane.apiserver_urls or [plane.server]
        plane._socket_dir = Path(state["socket_dir"])
        plane.plugin_socket = plane._socket_dir / "kms.sock"
        tokens = (workdir / "tokens.csv").read_text().splitlines()
        plane.token, plane.unprivileged_token = (line.split(",", 1)[0] for line in tokens[:2])
        plane._vault_token = (workdir / "vault-token").read_text().strip()
        for name, pid in state["pids"].items():
            process = Process(name, [], plane.logs / f"{name}.log", detached=True)
            process.pid = pid
            plane._processes[name] = process
        return plane

    def running(self) -> bool:
        """Every process is alive and the API server answers."""
        if not all(process.alive() for process in self._processes.values()):
            return False
        try:
            return self.api_get("/livez", timeout=5).status_code == 200
        except requests.RequestException:
            return False

    def __enter__(self) -> ControlPlane:
        return self

    def __exit__(
        self, exc_type: type[BaseException] | None, exc: BaseException | None, tb: TracebackType | None
    ) -> None:
        self.stop()

    def stop(self) -> None:
        """Ends every process (API server first, Key Vault last) and removes the socket folder. Idempotent."""
        if self._proxy is not None:
            self._proxy.stop()
        apiservers = [n for n in self._processes if n.startswith("kube-apiserver")]
        for name in (*apiservers, "kmsplugin", "etcd", "keyvault"):
            process = self._processes.get(name)
            if process is not None:
                process.stop()
        self._http.close()
        shutil.rmtree(self._socket_dir, ignore_errors=True)

    def _start(self, first_version: str | None = None) -> None:
        for folder in (self.logs, self.workdir / "pki", self.workdir / "etcd-data"):
            folder.mkdir(parents=True, exist_ok=True)
        self._start_keyvault()
        self.current_version = first_version or self.create_key_version()
        self._write_slots()
        self._start_plugin()
        self._start_etcd()
        self._write_pki()
        self._write_apiserver_config()
        self._start_apiserver()
        self._write_kubeconfig()

    def _spawn(
        self, name: str, argv: list[str], env: dict[str, str] | None = None, hostname: str | None = None
    ) -> Process:
        process = Process(name, argv, self.logs / f"{name}.log", env, hostname, detached=self.detached)
        self._processes[name] = process
        process.start()
        return process

    def _wait(self, name: str, ready: Callable[[], bool], timeout: float = START_TIMEOUT) -> None:
        process = self._processes[name]
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            if not process.alive():
                raise ControlPlaneError(f"{name} exited while starting; {process.log}:\n{process.log_tail()}")
            try:
                if ready():
                    return
            except (requests.RequestException, OSError):
                pass
            time.sleep(0.2)
        raise ControlPlaneError(f"{name} not ready after {timeout:.0f} s; {process.log}:\n{process.log_tail()}")

    # --- Key Vault stand-in and plugin -------------------------------------------------------------------

    def _start_keyvault(self) -> None:
        token_file = self.workdir / "vault-token"
        write_private(token_file, self._vault_token)
        port_file = self.workdir / "keyvault.port"
        port_file.unlink(missing_ok=True)  # a workdir used before holds the port of a stand-in that is gone
        self._spawn(
            "keyvault",
            [
                sys.executable,
                str(Path(__file__).with_name("keyvault.py")),  # a script: the test bed is not an installed package
                "--vault-url",
                self.vault_url,
                "--token-file",
                str(token_file),
                "--port-file",
                str(port_file),
                *(["--cloud-file", str(self.cloud[0]), "--key-material", str(self.cloud[1])] if self.cloud else []),
            ],
        )
        self._wait("keyvault", port_file.exists, timeout=60)
        self.vault_endpoint = f"http://127.0.0.1:{port_file.read_text().strip()}"

    def key_id(self, version: str) -> str:
        """The versioned key URL (Key Vault's `kid`) of one version of the key."""
        return f"{self.vault_url}keys/{self.key_name}/{version}"

    def create_key_version(self) -> str:
        """A new version of the key in the Key Vault stand-in (Key Vault's create-key on an existing name)."""
        response = self._http.post(
            f"{self.vault_endpoint}/keys/{self.key_name}/create",
            params={"api-version": KEY_VAULT_API_VERSION},
            headers={"Authorization": f"Bearer {self._vault_token}"},
            json={"kty": "RSA", "key_size": 2048, "key_ops": ["encrypt", "decrypt"]},
            timeout=30,
        )
        if response.status_code != 200:
            raise ControlPlaneError(f"Key Vault stand-in: create key: HTTP {response.status_code} {response.text}")
        return str(response.json()["key"]["kid"]).rsplit("/", 1)[1]

    def _write_slots(self) -> None:
        slots = {
            "current": self.key_id(self.current_version),
            "previous": self.key_id(self.previous_version) if self.previous_version else None,
        }
        write_atomic(self._slots_file, json.dumps(slots, indent=2) + "\n")

    def _start_plugin(self) -> None:
        token_file = self.workdir / "vault-token"
        self._spawn(
            "kmsplugin",
            [
                str(self.bin_dir / "kmsplugin"),
                "--listen",
                str(self.plugin_socket),
                "--key-slots",
                str(self._slots_file),
                "--vault-endpoint",
                self.vault_endpoint,
                "--vault-token-file",
                str(token_file),
            ],
        )
        self._wait("kmsplugin", self.plugin_socket.exists, timeout=60)

    def stop_plugin(self) -> None:
        """Stops the KMS plugin (the API server goes on, with the DEKs it holds; see docs/real-cluster.md)."""
        self._processes["kmsplugin"].stop()

    def start_plugin(self) -> None:
        """Starts the KMS plugin again on the same socket, with the same key slots."""
        self._start_plugin()

    def use_key_version(self, version: str, *, wait: bool = True) -> None:
        """Points the plugin at `version` as AKS does after an `up` with a new key id: the old current key
        becomes the previous slot (still decrypts), the one before it drops out (its data can no longer be
        read once the API server's DEK cache forgets it).

        The API server is not restarted. It learns the new key id from the plugin's Status; with `wait`, this
        returns once its Status metric reports the new key and its kms-providers health check passes (the
        check that rotated the write DEK), so the next write is under `version`.
        """
        if version != self.current_version:
            self.previous_version, self.current_version = self.current_version, version
        self._write_slots()
        if wait:
            self._wait_for_status_key(plugin_key_id(self.key_id(version)))

    def _wait_for_status_key(self, key_id: str) -> None:
        expected = metric_key_id_hash(key_id)
        deadline = time.monotonic() + KEY_SWITCH_TIMEOUT
        while time.monotonic() < deadline:
            try:
                # The health check makes the API server call Status once its last answer is 20 s old.
                # A health check that passes after the metric shows means the DEK rotation succeeded too.
                for url in self.apiserver_urls:
                    self.api_get("/healthz/kms-providers", server=url)
                if all(
                    status_key_id_hash(self.metrics(index), self.provider) == expected
                    and self.api_get("/healthz/kms-providers", server=url).status_code == 200
                    for index, url in enumerate(self.apiserver_urls)
                ):
                    return
            except requests.RequestException:
                pass
            time.sleep(1.0)
        raise ControlPlaneError(
            f"the API server did not report key {expected} within {KEY_SWITCH_TIMEOUT:.0f} s; "
            f"{self.logs / 'kmsplugin.log'}:\n{self._processes['kmsplugin'].log_tail()}"
        )

    # --- etcd --------------------------------------------------------------------------------------------

    def _start_etcd(self) -> None:
        client, peer = free_port(), free_port()
        self.etcd_url = f"http://127.0.0.1:{client}"
        peer_url = f"http://127.0.0.1:{peer}"
        self._spawn(
            "etcd",
            [
                str(self.bin_dir / "etcd"),
                "--name",
                "kms-aks",
                "--data-dir",
                str(self.workdir / "etcd-data"),
                "--listen-client-urls",
                self.etcd_url,
                "--advertise-client-urls",
                self.etcd_url,
                "--listen-peer-urls",
                peer_url,
                "--initial-advertise-peer-urls",
                peer_url,
                "--initial-cluster",
                f"kms-aks={peer_url}",
                "--initial-cluster-state",
                "new",
                # A throwaway data dir: no fsync keeps thousands of writes fast on a shared disk.
                "--unsafe-no-fsync",
                "--log-level",
                "warn",
            ],
        )
        self._wait("etcd", lambda: self._http.get(f"{self.etcd_url}/health", timeout=2).json().get("health") == "true")

    def _etcd_range(self, key: bytes, range_end: bytes | None, limit: int, revision: int = 0) -> dict:
        body: dict[str, object] = {"key": _b64(key), "limit": limit}
        if range_end is not None:
            body["range_end"] = _b64(range_end)
        if revision:
            body["revision"] = revision
        response = self._http.post(f"{self.etcd_url}/v3/kv/range", json=body, timeout=30)
        response.raise_for_status()
        return response.json()

    def etcd_get(self, key: str) -> bytes | None:
        """The raw value etcd holds for `key` (e.g. /registry/secrets/<ns>/<name>), or None."""
        kvs = self._etcd_range(key.encode(), None, 1).get("kvs", [])
        return base64.b64decode(kvs[0].get("value", "")) if kvs else None

    def etcd_items(self, prefix: str = "", *, page: int = 500) -> Iterator[tuple[str, bytes]]:
        """Every (key, raw value) under `prefix` ("" = the whole keyspace), page by page, at one revision."""
        start = prefix.encode() or b"\x00"
        end = _prefix_end(prefix.encode()) if prefix else b"\x00"
        revision = 0
        while True:
            answer = self._etcd_range(start, end, page, revision)
            revision = revision or int(answer["header"]["revision"])
            kvs = answer.get("kvs", [])
            for kv in kvs:
                yield base64.b64decode(kv["key"]).decode(), base64.b64decode(kv.get("value", ""))
            if not answer.get("more") or not kvs:
                return
            start = base64.b64decode(kvs[-1]["key"]) + b"\x00"

    def etcd_secrets(self) -> Iterator[tuple[str, str, bytes]]:
        """(namespace, name, raw value) of every Secret in etcd, page by page."""
        for key, value in self.etcd_items(SECRETS_PREFIX):
            namespace, _, name = key[len(SECRETS_PREFIX) :].partition("/")
            yield namespace, name, value

    # --- kube-apiserver ----------------------------------------------------------------------------------

    def _write_pki(self) -> None:
        """A CA, the API server's serving certificate for 127.0.0.1, and the service-account signing key."""
        write_pki(self.workdir / "pki", self.ca_file, self.server_name)

    def _write_apiserver_config(self) -> None:
        encryption = {
            "apiVersion": "apiserver.config.k8s.io/v1",
            "kind": "EncryptionConfiguration",
            "resources": [
                {
                    "resources": ["secrets"],
                    "providers": [
                        {
                            "kms": {
                                "apiVersion": "v2",
                                "name": self.provider,
                                "endpoint": f"unix://{self.plugin_socket}",
                                "timeout": "10s",
                            }
                        },
                        {"identity": {}},
                    ],
                }
            ],
        }
        (self.workdir / "encryption-config.yaml").write_text(yaml.safe_dump(encryption, sort_keys=False))
        # --token-auth-file: token,user,uid,"group,..."
        write_private(
            self.workdir / "tokens.csv",
            f'{self.token},kms-aks-admin,uid-admin,"system:masters"\n'
            f"{self.unprivileged_token},kms-aks-nobody,uid-nobody\n"
            f"{self.operator_token},kms-aks-operator,uid-operator\n",
        )

    def _apiserver_argv(self, port: int) -> list[str]:
        pki = self.workdir / "pki"
        return [
            str(self.bin_dir / "kube-apiserver"),
            "--etcd-servers",
            self.etcd_url,
            "--bind-address",
            "127.0.0.1",
            "--advertise-address",
            "127.0.0.1",
            "--secure-port",
            str(port),
            "--tls-cert-file",
            str(pki / "apiserver.crt"),
            "--tls-private-key-file",
            str(pki / "apiserver.key"),
            "--token-auth-file",
            str(self.workdir / "tokens.csv"),
            "--authorization-mode",
            "Node,RBAC",
            "--service-account-issuer",
            "https://kubernetes.default.svc.cluster.local",
            "--service-account-key-file",
            str(pki / "sa.key"),
            "--service-account-signing-key-file",
            str(pki / "sa.key"),
            "--service-cluster-ip-range",
            "10.96.0.0/16",
            "--encryption-provider-config",
            str(self.workdir / "encryption-config.yaml"),
            # No kubelets or nodes here: the `kubernetes` Service's endpoints would name a loopback address.
            "--endpoint-reconciler-type",
            "none",
            "--profiling=false",
            *self.apiserver_args,
        ]

    @staticmethod
    def _apiserver_name(index: int) -> str:
        return "kube-apiserver" if index == 0 else f"kube-apiserver-{index}"

    def _start_apiserver(self) -> None:
        ports = [free_port() for _ in range(self.apiserver_count)]
        self.apiserver_urls = [f"https://127.0.0.1:{port}" for port in ports]
        for index, port in enumerate(ports):
            hostname = f"kms-aks-apiserver-{index}" if self.apiserver_count > 1 else None
            self._spawn(self._apiserver_name(index), self._apiserver_argv(port), hostname=hostname)
        for index, url in enumerate(self.apiserver_urls):
            self._wait(
                self._apiserver_name(index),
                lambda url=url: self.api_get("/readyz", timeout=5, server=url).status_code == 200,
            )
        if self.apiserver_count > 1:
            self._proxy = RoundRobinProxy([("127.0.0.1", port) for port in ports]).start()
            self.server = f"https://127.0.0.1:{self._proxy.port}"
        else:
            self.server = self.apiserver_urls[0]

    def restart_apiserver(self, *, ready: bool = True, timeout: float = START_TIMEOUT) -> None:
        """Stops the API server and starts it again on the same port, with the same flags.

        Returns once it is ready (`/readyz`), or with `ready=False` once it serves at all (`/livez`): an API
        server that cannot decrypt a stored Secret never becomes ready (its Secrets watch cache cannot fill).
        It asks the plugin's Status at once, so it writes with the plugin's current key from the start.
        """
        process = self._processes["kube-apiserver"]
        process.stop()
        url = self.apiserver_urls[0]
        self._spawn("kube-apiserver", self._apiserver_argv(int(url.rsplit(":", 1)[1])), hostname=process.hostname)
        probe = "/readyz" if ready else "/livez"
        self._wait("kube-apiserver", lambda: self.api_get(probe, timeout=5, server=url).status_code == 200, timeout)

    def api_get(self, path: str, *, timeout: float = 30, server: str | None = None) -> requests.Response:
        """An authenticated (admin) GET on the API server (`server`: one kube-apiserver's URL; default the
        endpoint clients use), e.g. `/readyz?verbose`; the response as it came."""
        return self._http.get(
            f"{server or self.server}{path}",
            headers={"Authorization": f"Bearer {self.token}"},
            verify=str(self.ca_file),
            timeout=timeout,
        )

    def metrics(self, index: int = 0) -> str:
        """The /metrics text (Prometheus exposition format) of kube-apiserver number `index`, asked directly."""
        response = self.api_get("/metrics", server=self.apiserver_urls[index])
        response.raise_for_status()
        return response.text

    def _write_kubeconfig(self) -> None:
        config = {
            "apiVersion": "v1",
            "kind": "Config",
            "clusters": [
                {
                    "name": self.context,
                    "cluster": {
                        "server": self.server,
                        "certificate-authority-data": _b64(self.ca_file.read_bytes()),
                        **({"tls-server-name": self.server_name} if self.server_name else {}),
                    },
                }
            ],
            "users": [{"name": "kms-aks-admin", "user": {"token": self.token}}],
            "contexts": [{"name": self.context, "context": {"cluster": self.context, "user": "kms-aks-admin"}}],
            "current-context": self.context,
        }
        write_private(self.kubeconfig, yaml.safe_dump(config, sort_keys=False))
