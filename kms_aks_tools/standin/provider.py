"""A provider-faithful Azure stand-in that the real Pulumi engine talks to: azure-native, azuread, time.

Start it, then point the CLI at it (the engine calls Handshake and Attach, then uses it like a plugin):

    python -m kms_aks_tools.standin.provider            # prints one line, serves until killed
    PULUMI_DEBUG_PROVIDERS=azure-native:41001,azuread:41002,time:41003

Options: `--port-base N` (ports N, N+1, N+2 instead of free ones), `--log FILE` (the RPC log; default
stderr), `--sleep-cap SECONDS` (the longest `time:Sleep` wait, default 3), `--grant-propagation SECONDS` (how long
after its creation a role assignment or access policy takes effect; default half the sleep cap), `--single-port`
(one port for all three packages). In tests:

    with running_standin() as standin:
        standin.debug_providers   # the PULUMI_DEBUG_PROVIDERS value
        standin.ports["azure-native"], standin.cloud.states

Every package has its own port (the engine asks each for GetPluginInfo, whose version is the package's);
all share one in-memory ARM (`Cloud`), so `up`, then `preview`, `refresh` and `destroy` see the same cloud
for as long as the process runs. Outputs come from the mock engine's builders (`kms_aks_tools.offline.fake_azure`);
diff rules and the Key's ARM semantics are in `kms_aks_tools.standin.rules`, azure-native's Check (defaults and
schema) in `kms_aks_tools.standin.schema`, what ARM refuses at PUT time (AKS's KMS checks) in
`kms_aks_tools.standin.arm`.
"""

from __future__ import annotations

import argparse
import contextlib
import logging
import signal
import sys
import threading
from collections.abc import Iterator
from concurrent import futures
from dataclasses import dataclass, field
from typing import Any

import grpc
from pulumi.runtime.proto import provider_pb2_grpc

from kms_aks_tools.standin.server import PACKAGES, SLEEP_CAP_SECONDS, Cloud, StandinProvider

LOG = logging.getLogger("kms_aks_tools.standin")


@dataclass
class Standin:
    """A running stand-in: one gRPC server per package over one shared cloud."""

    cloud: Cloud
    servers: dict[str, grpc.Server] = field(default_factory=dict)
    ports: dict[str, int] = field(default_factory=dict)

    @property
    def debug_providers(self) -> str:
        """The value of PULUMI_DEBUG_PROVIDERS that attaches the engine to this stand-in."""
        return ",".join(f"{package}:{port}" for package, port in self.ports.items())

    def stop(self, grace: float | None = 0.5) -> None:
        for server in {id(server): server for server in self.servers.values()}.values():
            server.stop(grace)


def start(
    port_base: int = 0,
    sleep_cap: float = SLEEP_CAP_SECONDS,
    host: str = "127.0.0.1",
    single_port: bool = False,
    grant_propagation: float | None = None,
    states: dict[str, Any] | None = None,
) -> Standin:
    """Starts the stand-in; with `port_base` 0 every package gets a free port.

    `single_port` serves all packages on one port (GetPluginInfo then reports no version). `grant_propagation`:
    seconds before a new grant takes effect (None: half of `sleep_cap`). `states` is a cloud an earlier stand-in
    saved (`kms_aks_tools.standin.saved`); without it the cloud starts empty.
    """
    standin = Standin(cloud=Cloud(sleep_cap=sleep_cap, grant_propagation=grant_propagation, states=states))
    groups: list[tuple[str | None, tuple[str, ...]]] = (
        [(None, tuple(PACKAGES))] if single_port else [(package, (package,)) for package in PACKAGES]
    )
    for offset, (package, served) in enumerate(groups):
        server = grpc.server(futures.ThreadPoolExecutor(max_workers=8, thread_name_prefix=f"standin-{package}"))
        provider_pb2_grpc.add_ResourceProviderServicer_to_server(StandinProvider(package, standin.cloud), server)
        port = server.add_insecure_port(f"{host}:{port_base + offset if port_base else 0}")
        if port == 0:
            standin.stop(None)
            raise OSError(f"cannot listen on {host}:{port_base + offset} for {', '.join(served)}")
        server.start()
        for name in served:
            standin.servers[name], standin.ports[name] = server, port
    return standin


@contextlib.contextmanager
def running_standin(
    sleep_cap: float = SLEEP_CAP_SECONDS,
    single_port: bool = False,
    grant_propagation: float | None = None,
    states: dict[str, Any] | None = None,
) -> Iterator[Standin]:
    """The stand-in on free ports for the duration of the block (over `states`, a saved cloud, when given)."""
    standin = start(sleep_cap=sleep_cap, single_port=single_port, grant_propagation=grant_propagation, states=states)
    try:
        yield standin
    finally:
        standin.stop()


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--port-base", type=int, default=0, help="ports N, N+1, N+2 (default: free ports)")
    parser.add_argument("--log", help="write the RPC log to this file (default: stderr)")
    parser.add_argument("--sleep-cap", type=float, default=SLEEP_CAP_SECONDS, help="longest time:Sleep wait (s)")
    parser.add_argument(
        "--grant-propagation", type=float, help="seconds before a new grant takes effect (default: half the sleep cap)"
    )
    parser.add_argument("--single-port", action="store_true", help="serve every package on one port")
    args = parser.parse_args(argv)

    handler: logging.Handler = logging.FileHandler(args.log) if args.log else logging.StreamHandler(sys.stderr)
    handler.setFormatter(logging.Formatter("%(asctime)s %(message)s"))
    LOG.addHandler(handler)
    LOG.setLevel(logging.INFO)

    standin = start(
        port_base=args.port_base,
        sleep_cap=args.sleep_cap,
        single_port=args.single_port,
        grant_propagation=args.grant_propagation,
    )
    print(f"PULUMI_DEBUG_PROVIDERS={standin.debug_providers}", flush=True)
    stopped = threading.Event()
    for signum in (signal.SIGINT, signal.SIGTERM):
        signal.signal(signum, lambda *_: stopped.set())
    stopped.wait()
    standin.stop()
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
