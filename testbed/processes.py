"""The control plane's processes: each started with its log, ended for certain (it also gets SIGKILL from the kernel
when the Python process that started it dies: PR_SET_PDEATHSIG), optionally in a UTS namespace of its own (a host
name of its own); and the small file and port helpers they share."""

from __future__ import annotations

import contextlib
import ctypes
import os
import signal
import socket
import subprocess
import time
from pathlib import Path

_PR_SET_PDEATHSIG = 1
_CLONE_NEWUSER, _CLONE_NEWUTS = 0x10000000, 0x04000000


def die_with_parent() -> None:
    """In the child, before exec: the kernel kills it when the starting process dies (Linux)."""
    with contextlib.suppress(OSError, AttributeError):  # not Linux: stop() still ends it
        ctypes.CDLL(None, use_errno=True).prctl(_PR_SET_PDEATHSIG, signal.SIGKILL)


def own_hostname(hostname: str) -> None:
    """In the child, before exec: a UTS namespace of its own with `hostname`. kube-apiserver derives its identity
    (its Lease's name, the `apiserver_id_hash` of its metrics) from the host name (k8s.io/apiserver
    pkg/server/config.go, NewConfig), so two on one machine need two host names. As root, a UTS namespace;
    otherwise a user namespace too, with this user as its root."""
    libc = ctypes.CDLL(None, use_errno=True)
    if libc.unshare(_CLONE_NEWUTS) != 0:
        uid, gid = os.getuid(), os.getgid()
        if libc.unshare(_CLONE_NEWUSER | _CLONE_NEWUTS) != 0:
            raise OSError(ctypes.get_errno(), "unshare(CLONE_NEWUSER|CLONE_NEWUTS) refused")
        for name, text in (("setgroups", "deny"), ("uid_map", f"0 {uid} 1"), ("gid_map", f"0 {gid} 1")):
            with open(f"/proc/self/{name}", "w") as handle:
                handle.write(text)
    name = hostname.encode()
    if libc.sethostname(name, len(name)) != 0:
        raise OSError(ctypes.get_errno(), "sethostname refused")


def free_port() -> int:
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


def write_private(path: Path, data: str | bytes) -> None:
    """A file only its owner reads (tokens, keys), written whole."""
    fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
    with os.fdopen(fd, "wb") as f:
        f.write(data.encode() if isinstance(data, str) else data)


def write_atomic(path: Path, text: str) -> None:
    tmp = path.with_name(path.name + ".tmp")
    tmp.write_text(text)
    os.replace(tmp, path)


class Process:
    """One process of the control plane (etcd, a kube-apiserver, the plugin, the Key Vault stand-in)."""

    def __init__(
        self,
        name: str,
        argv: list[str],
        log: Path,
        env: dict[str, str] | None = None,
        hostname: str | None = None,
        *,
        detached: bool = False,
    ) -> None:
        self.name, self.argv, self.log, self.env, self.hostname = name, argv, log, env, hostname
        self.detached = detached
        self.popen: subprocess.Popen[bytes] | None = None
        self.pid: int | None = None  # of a detached process started by an earlier command (`ControlPlane.attach`)

    def _child_setup(self) -> None:
        if not self.detached:
            die_with_parent()
        if self.hostname is not None:
            own_hostname(self.hostname)

    def start(self) -> None:
        with open(self.log, "ab") as log:
            self.popen = subprocess.Popen(
                self.argv,
                stdin=subprocess.DEVNULL,
                stdout=log,
                stderr=subprocess.STDOUT,
                env=self.env,
                start_new_session=True,  # a Ctrl-C in the terminal reaches us, and we stop them in order
                # A detached plane outlives the command that started it (the sandbox's cluster); `stop` ends it.
                preexec_fn=self._child_setup,
            )
            self.pid = self.popen.pid

    def alive(self) -> bool:
        if self.popen is not None:
            return self.popen.poll() is None
        if self.pid is None:
            return False
        try:
            os.kill(self.pid, 0)
        except OSError:
            return False
        return True

    def stop(self, timeout: float = 15.0) -> None:
        if self.popen is None and self.pid is not None:
            # Started by an earlier process: not our child, so no wait(); poll until it is gone.
            with contextlib.suppress(OSError):
                os.kill(self.pid, signal.SIGTERM)
            deadline = time.monotonic() + timeout
            while self.alive() and time.monotonic() < deadline:
                time.sleep(0.1)
            if self.alive():
                with contextlib.suppress(OSError):
                    os.kill(self.pid, signal.SIGKILL)
            self.pid = None
            return
        if self.popen is None:
            return
        if self.popen.poll() is None:
            self.popen.terminate()
            try:
                self.popen.wait(timeout)
            except subprocess.TimeoutExpired:
                self.popen.kill()
                self.popen.wait()
        self.popen = None
        self.pid = None

    def log_tail(self, lines: int = 30) -> str:
        try:
            return "\n".join(self.log.read_text(errors="replace").splitlines()[-lines:])
        except OSError:
            return "(no log)"
