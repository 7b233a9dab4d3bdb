"""One connection to a cluster's API server, from a kubeconfig and a context as kubectl takes them.

Everything that keeps a command from starting (no kubeconfig, an unknown context, an API server that does not
answer, credentials it refuses, a user who may not list or update Secrets) is a `ClusterInputError` with one
message, raised before anything is written. The official `kubernetes` client does the talking.
"""

from __future__ import annotations

import os
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any
from urllib.parse import urlsplit, urlunsplit

import urllib3
from kubernetes import client, config
from kubernetes.client.rest import ApiException
from kubernetes.config.config_exception import ConfigException

from kms_aks_tools.cli.exits import UserError

# Connect quickly, read patiently: a list page of 500 Secrets takes a while on a busy API server.
REQUEST_TIMEOUT = (10, 60)
# How often the kubeconfig's credentials are looked at again (an exec plugin's token renewed once it nears its
# expiry; the client treats a token as expired 5 minutes early, so 10 s is always in time).
CREDENTIALS_CHECK_EVERY = 10.0


class ClusterInputError(UserError):
    """The cluster cannot be used as given: one message, exit status 2, nothing written."""


@dataclass
class Cluster:
    """A connected cluster: the client, and which context and server it is (for messages and the record)."""

    api: Any  # kubernetes.client.ApiClient
    context: str
    server: str
    kubeconfig: str

    @property
    def core(self) -> client.CoreV1Api:
        return client.CoreV1Api(self.api)

    def close(self) -> None:
        self.api.close()


def default_kubeconfig() -> str:
    """kubectl's choice: the first file of $KUBECONFIG, else ~/.kube/config."""
    env = os.environ.get("KUBECONFIG", "")
    first = next((p for p in env.split(os.pathsep) if p), None)
    return first or str(Path.home() / ".kube" / "config")


def connect(kubeconfig: str | None, context: str | None, *, pool_size: int = 4) -> Cluster:
    """A client for `context` of `kubeconfig` (kubectl's defaults for either when None); nothing is sent yet."""
    path = kubeconfig or default_kubeconfig()
    if not Path(path).is_file():
        raise ClusterInputError(f"kubeconfig {path} does not exist (pass --kubeconfig, or set KUBECONFIG)")
    try:
        contexts, active = config.list_kube_config_contexts(config_file=path)
    except (ConfigException, OSError, ValueError) as error:
        raise ClusterInputError(f"kubeconfig {path} cannot be read: {error}") from None
    names = [c["name"] for c in contexts or []]
    chosen = context or (active or {}).get("name")
    if not chosen:
        raise ClusterInputError(f"kubeconfig {path} has no current context; pass --context (contexts: {_list(names)})")
    if chosen not in names:
        raise ClusterInputError(f"context {chosen!r} is not in kubeconfig {path}; contexts: {_list(names)}")
    configuration = client.Configuration()
    try:
        config.load_kube_config(
            config_file=path, context=chosen, client_configuration=configuration, persist_config=False
        )
    except (ConfigException, OSError, ValueError) as error:
        raise ClusterInputError(f"context {chosen!r} of kubeconfig {path} cannot be used: {error}") from None
    # One attempt per request: an unreachable API server is reported at once, and the re-encryption's own
    # bounded retries decide what is retried.
    configuration.retries = False
    configuration.connection_pool_maxsize = max(pool_size, 1)
    if configuration.refresh_api_key_hook is not None:
        configuration.refresh_api_key_hook = _at_most_every(CREDENTIALS_CHECK_EVERY, configuration.refresh_api_key_hook)
    return Cluster(
        api=client.ApiClient(configuration),
        context=chosen,
        server=_verified_server(configuration.host, configuration.tls_server_name),
        kubeconfig=path,
    )


def _verified_server(url: str, tls_server_name: str | None) -> str:
    """The API server as its certificate names it: `url`, with the host replaced by the kubeconfig's
    `tls-server-name` when it has one. The client verifies the server's certificate against that name (urllib3
    `server_hostname`), so it is the name the server proved, and the one a re-encryption record carries: a
    cluster reached through a tunnel or a local port still names its own host (an AKS cluster's `fqdn`)."""
    if not tls_server_name:
        return url
    parts = urlsplit(url)
    port = f":{parts.port}" if parts.port else ""
    return urlunsplit((parts.scheme, f"{tls_server_name}{port}", parts.path, parts.query, parts.fragment))


def _at_most_every(seconds: float, hook: Callable[[Any], None]) -> Callable[[Any], None]:
    """`hook`, called at most once every `seconds`. The client calls the kubeconfig loader's refresh hook before
    every request, and it rebuilds the whole configuration each time (the proxy settings from the environment
    among it): about 1.5 ms of CPU a request, more than the rest of the request on a busy machine."""
    lock = threading.Lock()
    last = [-seconds]

    def throttled(configuration: Any) -> None:
        with lock:
            now = time.monotonic()
            if now - last[0] < seconds:
                return
            last[0] = now
            hook(configuration)

    return throttled


def request_raw(
    cluster: Cluster,
    method: str,
    path: str,
    *,
    path_params: dict[str, str] | None = None,
    query: list[tuple[str, str]] | None = None,
    body: dict[str, Any] | None = None,
    accept: str = "application/json",
    headers: dict[str, str] | None = None,
) -> bytes:
    """One request through the client's own serializer and transport (auth, TLS, proxy), with a plain JSON body.

    The generated methods of `kubernetes` >= 35 validate a body into their pydantic model, which keeps only the
    fields the model knows; a replace must send the Secret back exactly as the API server gave it. This is the
    path those methods take themselves (`param_serialize`, then `call_api`), minus that validation.
    """
    headers = {**(headers or {}), "Accept": accept}
    if body is not None:
        headers["Content-Type"] = "application/json"
    request = cluster.api.param_serialize(
        method=method,
        resource_path=path,
        path_params=path_params or {},
        query_params=query or [],
        header_params=headers,
        body=body,
        auth_settings=["BearerToken"],
    )
    response = cluster.api.call_api(*request, _request_timeout=REQUEST_TIMEOUT)
    data = response.read()
    if not 200 <= response.status <= 299:
        raise ApiException.from_response(http_resp=response, body=None, data=None)
    return data


def _list(names: list[str]) -> str:
    return ", ".join(names) if names else "none"


def describe_api_error(error: ApiException) -> str:
    """`HTTP <code> <reason>: <the API server's message>`; the response body is read only for its Status message."""
    import json

    message = ""
    try:
        status = json.loads(error.body or "{}")
        if isinstance(status, dict) and status.get("kind") == "Status":
            message = str(status.get("message") or "")
    except (ValueError, TypeError):
        pass
    text = f"HTTP {error.status} {error.reason or ''}".strip()
    return f"{text}: {message}" if message else text


def connection_problem(error: BaseException) -> str | None:
    """A short description of a transport failure (refused, DNS, TLS, timeout), or None if it is not one."""
    if isinstance(error, urllib3.exceptions.MaxRetryError) and error.reason is not None:
        error = error.reason
    if isinstance(error, urllib3.exceptions.SSLError):
        return f"TLS failed: {error}"
    if isinstance(error, urllib3.exceptions.NewConnectionError):
        detail = str(error).split(": ", 1)[-1]
        return f"cannot connect ({detail})"
    if isinstance(error, urllib3.exceptions.TimeoutError):
        return "timed out"
    if isinstance(error, urllib3.exceptions.ProtocolError | urllib3.exceptions.HTTPError | ConnectionError):
        return f"connection failed ({error})"
    return None


def preflight(cluster: Cluster, *, verbs: tuple[str, ...]) -> None:
    """Proves, before anything is written, that the API server answers, accepts the credentials, and lets this
    user do `verbs` on Secrets in every namespace (a SelfSubjectAccessReview, as `kubectl auth can-i` asks)."""
    where = f"the API server {cluster.server} (context {cluster.context!r})"
    try:
        client.VersionApi(cluster.api).get_code(_request_timeout=REQUEST_TIMEOUT)
        denied = []
        for verb in verbs:
            review = client.V1SelfSubjectAccessReview(
                spec=client.V1SelfSubjectAccessReviewSpec(
                    resource_attributes=client.V1ResourceAttributes(verb=verb, resource="secrets", group="")
                )
            )
            answer = client.AuthorizationV1Api(cluster.api).create_self_subject_access_review(
                review, _request_timeout=REQUEST_TIMEOUT
            )
            if not answer.status.allowed:
                denied.append(verb)
    except ApiException as error:
        if error.status == 0:  # the client's own wrapping of a TLS failure
            raise ClusterInputError(f"cannot reach {where}: {error.reason}".replace("\n", ": ")) from None
        if error.status == 401:
            raise ClusterInputError(
                f"{where} refused the credentials of the context (HTTP 401 Unauthorized): the token or certificate "
                "is wrong or expired; get fresh credentials (az aks get-credentials) and retry"
            ) from None
        raise ClusterInputError(f"{where} answered {describe_api_error(error)}") from None
    except (urllib3.exceptions.HTTPError, OSError) as error:
        raise ClusterInputError(f"cannot reach {where}: {connection_problem(error) or error}") from None
    if denied:
        raise ClusterInputError(
            f"{where}: this user may not {' or '.join(denied)} Secrets in all namespaces (kubectl auth can-i "
            f"{denied[0]} secrets --all-namespaces says no); use a context with those rights"
        )
