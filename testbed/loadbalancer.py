"""A TCP load balancer on loopback for the test control plane: one endpoint in front of several kube-apiservers.

AKS puts its API server replicas behind one endpoint, and a client cannot choose which replica answers. This
stand-in does the same at the TCP level: each new connection goes to the next backend in turn (TLS passes
through untouched, so the client still verifies the API server's certificate). A client that keeps its
connections alive keeps its replica; a request on a fresh connection may reach another one.
"""

from __future__ import annotations

import contextlib
import itertools
import socket
import threading

_CHUNK = 65536


class RoundRobinProxy:
    """Listens on 127.0.0.1:`port` (0: a free one); `start()` serves in a daemon thread, `stop()` ends it."""

    def __init__(self, backends: list[tuple[str, int]], port: int = 0) -> None:
        self.backends = backends
        self._turn = itertools.count()
        self._listener = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
        self._listener.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        self._listener.bind(("127.0.0.1", port))
        self._listener.listen(128)
        self._listener.settimeout(0.5)
        self.port = int(self._listener.getsockname()[1])
        self._stopping = threading.Event()
        self._thread = threading.Thread(target=self._serve, name="round-robin-proxy", daemon=True)
        self.connections = 0  # how many connections it has passed on (to tell the test it balanced at all)

    def start(self) -> RoundRobinProxy:
        self._thread.start()
        return self

    def stop(self) -> None:
        self._stopping.set()
        self._thread.join(timeout=5)
        self._listener.close()

    def _serve(self) -> None:
        while not self._stopping.is_set():
            try:
                client, _ = self._listener.accept()
            except TimeoutError:
                continue
            except OSError:
                return
            backend = self.backends[next(self._turn) % len(self.backends)]
            self.connections += 1
            threading.Thread(target=self._connect, args=(client, backend), daemon=True).start()

    def _connect(self, client: socket.socket, backend: tuple[str, int]) -> None:
        try:
            upstream = socket.create_connection(backend, timeout=10)
        except OSError:
            client.close()
            return
        upstream.settimeout(None)
        client.settimeout(None)
        threading.Thread(target=_pump, args=(upstream, client), daemon=True).start()
        _pump(client, upstream)


def _pump(source: socket.socket, target: socket.socket) -> None:
    """Copies bytes one way until either side closes, then closes both."""
    try:
        while data := source.recv(_CHUNK):
            target.sendall(data)
    except OSError:
        pass
    finally:
        for sock in (source, target):
            with contextlib.suppress(OSError):
                sock.shutdown(socket.SHUT_RDWR)
            sock.close()
