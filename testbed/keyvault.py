"""A Key Vault data-plane stand-in: versioned RSA keys, created at run time, with encrypt and decrypt.

Only the calls the KMS plugin and the harness make, shaped as Key Vault's REST API (api-version 7.4):

    POST /keys/{name}/create                 a new key, or a new version of an existing key (= a rotation)
    GET  /keys/{name}[/{version}]            the key bundle (the newest version without one)
    POST /keys/{name}/{version}/encrypt      {"alg": "RSA-OAEP-256", "value": base64url} -> {"kid", "value"}
    POST /keys/{name}/{version}/decrypt      the same shape back

As Key Vault does, it wants the `api-version` query parameter and a bearer token (401 without), refuses an
unknown key or version with 404 `KeyNotFound`, an operation the key's `key_ops` do not allow with 403, an
unknown algorithm or a value that is not base64url with 400 `BadParameter`. Key ids are the vault's own
real-looking https URLs (`--vault-url`), not the loopback address it listens on.

Python with `cryptography` (OpenSSL's RSA-OAEP) rather than Go: the stand-in is tooling like the rest of
`kms_aks_tools`, needs no build, and is tested in-process; RSA is the library's, nothing is hand-written.

Run: python testbed/keyvault.py --vault-url URL --token-file F --port-file F
(listens on 127.0.0.1, on a port it picks; writes the port to --port-file once it listens).

With `--cloud-file` (the sandbox's `.sandbox/azure.json`) it is the data plane of the Azure stand-in's cloud
(`CloudKeyStore`): a key version exists exactly when that cloud holds it (the Key resource's create-time version,
or one Key Vault's rotate added: `standin.key_versions`), read afresh on every call, so the control plane and the
data plane are one vault. Versions are created there, not here (`create` is refused). Their RSA material lives
in `--key-material` (mode 0600), made on a version's first use.
"""

from __future__ import annotations

import argparse
import base64
import binascii
import hmac
import json
import os
import re
import signal
import threading
import time
import uuid
from dataclasses import dataclass, field
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any
from urllib.parse import parse_qs, urlsplit

from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import padding, rsa

# Key Vault's key names: 1-127 characters, letters, digits and dashes.
_NAME = r"[0-9A-Za-z-]{1,127}"
_VERSION = r"[0-9a-f]{32}"
_ROUTES = [
    ("POST", re.compile(rf"/keys/(?P<name>{_NAME})/create"), "create"),
    ("POST", re.compile(rf"/keys/(?P<name>{_NAME})/(?P<version>[^/]+)/(?P<op>encrypt|decrypt)"), "operate"),
    ("GET", re.compile(rf"/keys/(?P<name>{_NAME})(?:/(?P<version>[^/]*))?"), "get"),
]


def _oaep(algorithm: hashes.HashAlgorithm) -> padding.OAEP:
    return padding.OAEP(mgf=padding.MGF1(algorithm=algorithm), algorithm=algorithm, label=None)


# The RSA encryption algorithms Key Vault offers for RSA keys (JsonWebKeyEncryptionAlgorithm).
PADDINGS: dict[str, Any] = {
    "RSA-OAEP-256": lambda: _oaep(hashes.SHA256()),
    "RSA-OAEP": lambda: _oaep(hashes.SHA1()),
    "RSA1_5": padding.PKCS1v15,
}


class VaultError(Exception):
    """An error answered as Key Vault answers it: `{"error": {"code", "message"}}` with an HTTP status."""

    def __init__(self, status: int, code: str, message: str) -> None:
        super().__init__(message)
        self.status, self.code, self.message = status, code, message


def b64url_decode(value: object) -> bytes:
    if not isinstance(value, str) or not re.fullmatch(r"[A-Za-z0-9_-]*={0,2}", value):
        raise VaultError(400, "BadParameter", "value must be a base64url string")
    try:
        return base64.urlsafe_b64decode(value + "=" * (-len(value) % 4))
    except (binascii.Error, ValueError) as err:
        raise VaultError(400, "BadParameter", "value must be a base64url string") from err


def b64url(data: bytes) -> str:
    return base64.urlsafe_b64encode(data).rstrip(b"=").decode()


@dataclass
class KeyVersion:
    name: str
    version: str
    private_key: rsa.RSAPrivateKey
    key_ops: list[str]
    created: int


@dataclass
class KeyStore:
    """The vault's keys: each name holds its versions in creation order (the last is the current one)."""

    vault_url: str
    keys: dict[str, list[KeyVersion]] = field(default_factory=dict)
    lock: threading.Lock = field(default_factory=threading.Lock)

    def kid(self, key: KeyVersion) -> str:
        return f"{self.vault_url}keys/{key.name}/{key.version}"

    def create(self, name: str, body: dict[str, Any]) -> dict[str, Any]:
        kty = body.get("kty")
        if kty not in ("RSA", "RSA-HSM"):
            raise VaultError(400, "BadParameter", f"kty must be RSA or RSA-HSM, not {kty!r}")
        size = body.get("key_size", 2048)
        if size not in (2048, 3072, 4096):
            raise VaultError(400, "BadParameter", f"key_size must be 2048, 3072 or 4096, not {size!r}")
        ops = body.get("key_ops", ["encrypt", "decrypt", "sign", "verify", "wrapKey", "unwrapKey"])
        if not isinstance(ops, list) or not all(isinstance(op, str) for op in ops):
            raise VaultError(400, "BadParameter", "key_ops must be a list of operation names")
        key = KeyVersion(name, uuid.uuid4().hex, rsa.generate_private_key(65537, size), ops, int(time.time()))
        with self.lock:
            self.keys.setdefault(name, []).append(key)
        return self.bundle(key)

    def find(self, name: str, version: str | None) -> KeyVersion:
        with self.lock:
            versions = self.keys.get(name, [])
            found = (
                versions[-1:]
                if not version
                else [key for key in versions if key.version == version and re.fullmatch(_VERSION, version)]
            )
        if not found:
            shown = f"{name}/{version}" if version else name
            raise VaultError(
                404,
                "KeyNotFound",
                f"A key with (name/id) {shown} was not found in this key vault. If you recently deleted this "
                "key you may be able to recover it using the correct recovery command.",
            )
        return found[0]

    def bundle(self, key: KeyVersion) -> dict[str, Any]:
        numbers = key.private_key.public_key().public_numbers()
        size = (numbers.n.bit_length() + 7) // 8
        return {
            "key": {
                "kid": self.kid(key),
                "kty": "RSA",
                "key_ops": key.key_ops,
                "n": b64url(numbers.n.to_bytes(size, "big")),
                "e": b64url(numbers.e.to_bytes(3, "big")),
            },
            "attributes": {"enabled": True, "created": key.created, "updated": key.created},
        }

    def operate(self, name: str, version: str, op: str, body: dict[str, Any]) -> dict[str, Any]:
        key = self.find(name, version)
        if op not in key.key_ops:
            raise VaultError(403, "Forbidden", f"Operation {op} is not permitted on this key.")
        alg = body.get("alg")
        if alg not in PADDINGS:
            raise VaultError(400, "BadParameter", f"Invalid algorithm {alg!r}; allowed: {', '.join(PADDINGS)}")
        value = b64url_decode(body.get("value"))
        pad = PADDINGS[alg]()
        try:
            if op == "encrypt":
                result = key.private_key.public_key().encrypt(value, pad)
            else:
                result = key.private_key.decrypt(value, pad)
        except ValueError as err:
            raise VaultError(400, "BadParameter", f"{op} failed: {err}") from err
        return {"kid": self.kid(key), "value": b64url(result)}


@dataclass
class CloudKeyStore(KeyStore):
    """The keys and versions the stand-in's cloud holds (`cloud_file`), their RSA material in `material_file`."""

    cloud_file: Path = Path("azure.json")
    material_file: Path = Path("key-material.json")

    def create(self, name: str, body: dict[str, Any]) -> dict[str, Any]:
        raise VaultError(
            403,
            "Forbidden",
            "Key versions of the sandbox's vault are created in its cloud (`kms-aks sandbox key-version`), "
            "not on this data plane.",
        )

    def _cloud_versions(self, name: str) -> list[tuple[str, int]]:
        """(version, created) of every version of key `name` in this vault that the cloud holds, oldest first."""
        from kms_aks_tools.standin.key_versions import KEY, KEY_VERSION
        from kms_aks_tools.standin.saved import SavedCloudError, load_states

        try:
            states = load_states(self.cloud_file)
        except SavedCloudError as err:
            raise VaultError(500, "InternalServerError", str(err)) from err
        prefix = f"{self.vault_url}keys/{name}/".lower()
        found = [
            str(outputs["keyUriWithVersion"]).rsplit("/", 1)[1]
            for typ, outputs in states.values()
            if typ in (KEY, KEY_VERSION) and str(outputs.get("keyUriWithVersion", "")).lower().startswith(prefix)
        ]
        return [(version, index) for index, version in enumerate(sorted(set(found), key=found.index))]

    def find(self, name: str, version: str | None) -> KeyVersion:
        held = self._cloud_versions(name)
        chosen = held[-1:] if not version else [(v, c) for v, c in held if v == version]
        if not chosen:
            return super().find(name, version)  # Key Vault's KeyNotFound, worded as it words it
        found_version, created = chosen[0]
        with self.lock:
            material = self._material()
            kid = f"{self.vault_url}keys/{name}/{found_version}"
            if kid not in material:
                key = rsa.generate_private_key(65537, 2048)
                material[kid] = key.private_bytes(
                    serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8, serialization.NoEncryption()
                ).decode()
                _write_private_json(self.material_file, material)
            private_key = serialization.load_pem_private_key(material[kid].encode(), password=None)
        assert isinstance(private_key, rsa.RSAPrivateKey)
        return KeyVersion(name, found_version, private_key, ["encrypt", "decrypt", "wrapKey", "unwrapKey"], created)

    def _material(self) -> dict[str, str]:
        if not self.material_file.is_file():
            return {}
        return dict(json.loads(self.material_file.read_text(encoding="utf-8")))


def _write_private_json(path: Path, data: dict[str, str]) -> None:
    """Key material: written whole (a rename), readable by its owner only."""
    tmp = path.with_name(path.name + ".tmp")
    fd = os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
    with os.fdopen(fd, "w", encoding="utf-8") as out:
        json.dump(data, out)
    os.replace(tmp, path)


def make_handler(store: KeyStore, token: str) -> type[BaseHTTPRequestHandler]:
    class Handler(BaseHTTPRequestHandler):
        protocol_version = "HTTP/1.1"

        def log_message(self, format: str, *args: Any) -> None:
            # Method, path and status only: request bodies (DEKs) and headers (the token) are never logged.
            pass

        def _answer(self, status: int, body: dict[str, Any]) -> None:
            data = json.dumps(body).encode()
            self.send_response(status)
            self.send_header("Content-Type", "application/json; charset=utf-8")
            self.send_header("Content-Length", str(len(data)))
            if status == 401:
                self.send_header("WWW-Authenticate", 'Bearer authorization="", resource="https://vault.azure.net"')
            self.end_headers()
            self.wfile.write(data)

        def _handle(self, method: str) -> None:
            try:
                length = int(self.headers.get("Content-Length") or 0)
                raw = self.rfile.read(length) if length else b""
                self._answer(200, self._route(method, raw))
            except VaultError as err:
                self._answer(err.status, {"error": {"code": err.code, "message": err.message}})

        def _route(self, method: str, raw: bytes) -> dict[str, Any]:
            url = urlsplit(self.path)
            if parse_qs(url.query).get("api-version") is None:
                raise VaultError(400, "BadParameter", "The 'api-version' query parameter is required.")
            given = self.headers.get("Authorization", "")
            if not given.startswith("Bearer ") or not hmac.compare_digest(given[len("Bearer ") :], token):
                raise VaultError(401, "Unauthorized", "AKV10000: Request is missing a Bearer or PoP token.")
            routed = [
                (action, match)
                for route_method, pattern, action in _ROUTES
                if route_method == method and (match := pattern.fullmatch(url.path))
            ]
            if not routed:
                raise VaultError(404, "NotFound", f"No such operation: {method} {url.path}")
            action, match = routed[0]
            if action == "get":
                return store.bundle(store.find(match["name"], match["version"]))
            try:
                body = json.loads(raw or b"{}")
            except ValueError as err:
                raise VaultError(400, "BadParameter", "The request body is not JSON.") from err
            if not isinstance(body, dict):
                raise VaultError(400, "BadParameter", "The request body must be a JSON object.")
            if action == "create":
                return store.create(match["name"], body)
            return store.operate(match["name"], match["version"], match["op"], body)

        def do_GET(self) -> None:
            self._handle("GET")

        def do_POST(self) -> None:
            self._handle("POST")

    return Handler


def serve(vault_url: str, token: str, port_file: Path, store: KeyStore | None = None) -> None:
    if not vault_url.startswith("https://") or not vault_url.endswith("/"):
        raise SystemExit(f"--vault-url must be https://<vault host>/ (with the trailing slash), not {vault_url!r}")
    server = ThreadingHTTPServer(("127.0.0.1", 0), make_handler(store or KeyStore(vault_url), token))
    server.daemon_threads = True
    # The port file appears whole (rename), so a reader never sees a half-written port.
    tmp = port_file.with_suffix(".tmp")
    tmp.write_text(str(server.server_address[1]))
    os.replace(tmp, port_file)
    signal.signal(signal.SIGTERM, lambda *_: threading.Thread(target=server.shutdown).start())
    server.serve_forever()


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(
        prog="python testbed/keyvault.py", description=__doc__.split("\n")[0]
    )
    parser.add_argument("--vault-url", required=True, help="the vault's name in key ids: https://<vault host>/")
    parser.add_argument("--token-file", required=True, type=Path, help="the bearer token callers must present")
    parser.add_argument("--port-file", required=True, type=Path, help="written with the port once listening")
    parser.add_argument("--cloud-file", type=Path, help="the stand-in's saved cloud: serve its keys and versions")
    parser.add_argument("--key-material", type=Path, help="with --cloud-file: where the versions' RSA keys are kept")
    args = parser.parse_args(argv)
    store: KeyStore | None = None
    if args.cloud_file is not None:
        if args.key_material is None:
            parser.error("--cloud-file needs --key-material")
        store = CloudKeyStore(args.vault_url, cloud_file=args.cloud_file, material_file=args.key_material)
    serve(args.vault_url, args.token_file.read_text().strip(), args.port_file, store)


if __name__ == "__main__":
    main()
