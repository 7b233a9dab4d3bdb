"""The pack's process, started as the Pulumi CLI starts it: the interpreter its manifest names, the port it prints,
a connected client, and its end."""

from __future__ import annotations

import os
import shutil
import subprocess
import threading
import weakref
from collections.abc import Iterator, Mapping
from contextlib import contextmanager, suppress
from pathlib import Path
from typing import Any

import grpc
import yaml
from google.protobuf import empty_pb2
from pulumi.runtime.proto import analyzer_pb2_grpc

from kms_aks_tools.offline.policy_pack.client import DEFAULT_RPC_TIMEOUT, PolicyClient, PolicyPackError
from kms_aks_tools.offline.policy_pack.config import POLICY_PACK_DIR, load_policy_config

# pulumi.policy never connects to it; a port nothing listens on makes that visible if it ever did.
UNUSED_ENGINE_ADDRESS = "127.0.0.1:0"
# The pack's server accepts 400 MB (pulumi_policy's own limit); a 100k-resource AnalyzeStack is ~40 MB.
MAX_MESSAGE_BYTES = 400 * 1024 * 1024
_CHANNEL_OPTIONS = [
    ("grpc.max_send_message_length", MAX_MESSAGE_BYTES),
    ("grpc.max_receive_message_length", MAX_MESSAGE_BYTES),
]
DEFAULT_START_TIMEOUT = 60.0
_STDERR_KEEP = 64 * 1024


def pack_channel(port: int) -> grpc.Channel:
    """A channel to a pack listening on `port`, taking messages as large as the pack's server does."""
    return grpc.insecure_channel(f"127.0.0.1:{port}", options=_CHANNEL_OPTIONS)


def resolve_python(pack_dir: Path = POLICY_PACK_DIR) -> str:
    """The interpreter the Pulumi CLI runs the pack with, resolved as its Python toolchain does, no fallback.

    `virtualenv: <dir>` in PulumiPolicy.yaml: `<pack>/<dir>/bin/python`, which must exist: for `--policy-pack
    <dir>` the CLI installs nothing, it starts that interpreter (python/toolchain/pip.go, Command). Without the
    option: `python3`, else `python`, from PATH. A missing virtualenv is a PolicyPackError saying how to create
    it, where a silent fallback to this interpreter would pass here and fail in CI.
    """
    manifest = Path(pack_dir) / "PulumiPolicy.yaml"
    try:
        document = yaml.safe_load(manifest.read_text()) or {}
    except (OSError, yaml.YAMLError) as error:
        raise PolicyPackError(f"{manifest}: cannot read the policy pack manifest: {error}") from None
    runtime = document.get("runtime")
    options = runtime.get("options") if isinstance(runtime, dict) else None
    virtualenv = options.get("virtualenv") if isinstance(options, dict) else None
    if not virtualenv:
        found = shutil.which("python3") or shutil.which("python")
        if found is None:
            raise PolicyPackError("no python3 or python on PATH to run the policy pack with")
        return found
    venv = Path(pack_dir) / str(virtualenv)
    for candidate in (venv / "bin" / "python", venv / "Scripts" / "python.exe"):
        if candidate.is_file():
            return str(candidate)
    raise PolicyPackError(
        f"the policy pack's virtualenv {venv} does not exist: {manifest.name} sets `virtualenv: {virtualenv}`, so "
        f"the Pulumi CLI runs the pack with {venv / 'bin' / 'python'}. Create it with `.ci/pulumi-stack policy-venv` "
        "(make does this), or `pulumi install` in the pack's folder."
    )


def _stop(process: subprocess.Popen[bytes]) -> None:
    # The pack holds no state worth a graceful stop: SIGKILL ends it at once, where SIGTERM would wait
    # about 0.2 s for gRPC's server shutdown on every `make plan`.
    if process.poll() is None:
        process.kill()
        process.wait()
    for stream in (process.stdout, process.stderr):
        if stream is not None:
            stream.close()


class PolicyPackProcess:
    """The pack as a subprocess started like the CLI starts it; `start()` returns at once, `wait_ready()`
    waits for the port and connects. `close()` (or leaving the `with` block) always ends the process."""

    def __init__(
        self,
        pack_dir: Path | str = POLICY_PACK_DIR,
        *,
        python: str | os.PathLike[str] | None = None,
        engine_address: str = UNUSED_ENGINE_ADDRESS,
        env: Mapping[str, str] | None = None,
        rpc_timeout: float | None = DEFAULT_RPC_TIMEOUT,
    ) -> None:
        self.pack_dir = Path(pack_dir).resolve()
        self._python = str(python) if python is not None else None
        self.engine_address = engine_address
        self._env = dict(env) if env is not None else None
        self._rpc_timeout = rpc_timeout
        self._process: subprocess.Popen[bytes] | None = None
        self._finalizer: weakref.finalize | None = None
        self._ready = threading.Event()
        self._port_line: bytes | None = None
        self._stdout_rest = bytearray()
        self._stderr = bytearray()
        self._stderr_done = threading.Event()
        self._channel: grpc.Channel | None = None
        self._client: PolicyClient | None = None

    @property
    def command(self) -> list[str]:
        """The command line, as the CLI's python analyzer shim runs it."""
        python = self._python or resolve_python(self.pack_dir)
        return [python, "-u", "-m", "pulumi.policy", self.engine_address, str(self.pack_dir)]

    @property
    def pid(self) -> int | None:
        return self._process.pid if self._process else None

    @property
    def returncode(self) -> int | None:
        return self._process.poll() if self._process else None

    @property
    def port(self) -> int | None:
        line = self._port_line
        return int(line) if line is not None and line.strip().isdigit() else None

    def stderr(self) -> str:
        """What the pack wrote to stderr so far (the last 64 KB)."""
        return self._stderr.decode(errors="replace")

    def start(self) -> PolicyPackProcess:
        """Starts the pack and returns without waiting for it."""
        if self._process is not None:
            raise PolicyPackError("the policy pack is already started")
        if not (self.pack_dir / "PulumiPolicy.yaml").is_file():
            raise PolicyPackError(f"{self.pack_dir} is not a policy pack: it has no PulumiPolicy.yaml")
        try:
            self._process = subprocess.Popen(
                self.command,
                cwd=self.pack_dir,
                stdin=subprocess.DEVNULL,
                stdout=subprocess.PIPE,
                stderr=subprocess.PIPE,
                env=self._env,
            )
        except OSError as error:
            raise PolicyPackError(f"cannot start the policy pack ({' '.join(self.command)}): {error}") from None
        # A safety net: the process ends with this object or the interpreter even without close().
        self._finalizer = weakref.finalize(self, _stop, self._process)
        threading.Thread(target=self._read_stdout, name="policy-pack-stdout", daemon=True).start()
        threading.Thread(target=self._read_stderr, name="policy-pack-stderr", daemon=True).start()
        return self

    def _read_stdout(self) -> None:
        assert self._process is not None and self._process.stdout is not None
        stream = self._process.stdout
        try:
            # Like the CLI: the first line of stdout is the port.
            self._port_line = stream.readline()
            self._ready.set()
            while chunk := stream.read1(65536):
                self._stdout_rest.extend(chunk[-_STDERR_KEEP:])
        except (OSError, ValueError):
            pass  # the stream was closed by close()
        finally:
            self._ready.set()

    def _read_stderr(self) -> None:
        assert self._process is not None and self._process.stderr is not None
        try:
            while chunk := self._process.stderr.read1(65536):
                self._stderr.extend(chunk)
                if len(self._stderr) > _STDERR_KEEP:
                    del self._stderr[: len(self._stderr) - _STDERR_KEEP]
        except (OSError, ValueError):
            pass
        finally:
            self._stderr_done.set()

    def _failure(self, what: str) -> PolicyPackError:
        if self.returncode is not None:
            self._stderr_done.wait(timeout=5)
        stderr = self.stderr().strip()
        output = bytes(self._stdout_rest).decode(errors="replace").strip()
        message = f"policy pack {self.pack_dir} {what}"
        if stderr:
            message += f"\nstderr:\n{stderr}"
        if output:
            message += f"\nstdout:\n{output}"
        return PolicyPackError(message)

    def wait_ready(self, timeout: float = DEFAULT_START_TIMEOUT) -> PolicyClient:
        """Waits for the port, connects and returns the client; ends the process if it does not come up."""
        if self._client is not None:
            return self._client
        if self._process is None:
            self.start()
        if not self._ready.wait(timeout):
            self.close()
            raise self._failure(f"printed no port within {timeout:.0f} s")
        port = self.port
        if port is None:
            line = (self._port_line or b"").decode(errors="replace").strip()
            # A pack that printed nothing is exiting: wait for its exit code and stderr. One that printed
            # something else is refused as it is, without waiting for an exit that may never come.
            if not line:
                with suppress(subprocess.TimeoutExpired):
                    self._process.wait(timeout=5)  # type: ignore[union-attr]
            code = self.returncode
            what = (
                f"exited with code {code} before printing its port"
                if code is not None and not line
                else f'printed "{line}" where its port belongs'
            )
            self.close()
            raise self._failure(what)
        self._channel = pack_channel(port)
        # Ready when it answers a call. grpc.channel_ready_future would leave a thread polling the channel's state
        # every 0.2 s, which close() then waits for: a fifth of a second on every `kms-aks plan`.
        try:
            analyzer_pb2_grpc.AnalyzerStub(self._channel).GetPluginInfo(
                empty_pb2.Empty(), timeout=timeout, wait_for_ready=True
            )
        except grpc.RpcError as error:
            if error.code() in (grpc.StatusCode.DEADLINE_EXCEEDED, grpc.StatusCode.UNAVAILABLE):
                self.close()
                raise self._failure(f"did not accept connections on port {port} within {timeout:.0f} s") from None
        self._client = PolicyClient(self._channel, timeout=self._rpc_timeout, diagnostics=self.stderr)
        return self._client

    @property
    def client(self) -> PolicyClient:
        """The connected client (`wait_ready()` first)."""
        if self._client is None:
            raise PolicyPackError("the policy pack is not ready: call wait_ready() first")
        return self._client

    def close(self) -> None:
        """Closes the channel and ends the process."""
        if self._channel is not None:
            self._channel.close()
            self._channel = None
        self._client = None
        if self._finalizer is not None:
            self._finalizer()  # runs _stop once

    def __enter__(self) -> PolicyPackProcess:
        self.wait_ready()
        return self

    def __exit__(self, *_exc: object) -> None:
        self.close()


@contextmanager
def running_policy_pack(
    pack_dir: Path | str = POLICY_PACK_DIR,
    *,
    stack: str | None = None,
    config: Mapping[str, Any] | None = None,
    timeout: float = DEFAULT_START_TIMEOUT,
    **process_options: Any,
) -> Iterator[PolicyClient]:
    """A started, configured pack: `config`, else the config file of `stack`, else every default."""
    if config is None and stack is not None:
        config = load_policy_config(stack, Path(pack_dir))
    process = PolicyPackProcess(pack_dir, **process_options).start()
    try:
        client = process.wait_ready(timeout)
        client.configure(config)
        yield client
    finally:
        process.close()
