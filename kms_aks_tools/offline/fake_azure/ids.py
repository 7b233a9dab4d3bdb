"""Who the fake Azure deploys as, and the ids it makes: fixed, so that plans and tests are reproducible."""

from __future__ import annotations

import hashlib
import uuid

# The identity the mock engine deploys as; fixed so that plans and tests are reproducible.
SUBSCRIPTION_ID = "6b1d2f5e-3c4a-4e8b-9a7d-1f2e3d4c5b6a"
TENANT_ID = "72f988bf-86f1-41af-91ab-2d7cd011db47"
DEPLOYER_CLIENT_ID = "0d4a5b6c-7e8f-4a1b-9c2d-3e4f5a6b7c8d"
DEPLOYER_OBJECT_ID = "e1f2a3b4-c5d6-4e7f-8a9b-0c1d2e3f4a5b"

_NAMESPACE = uuid.UUID("5f0c6e1a-2b3d-4c5e-8f9a-0b1c2d3e4f5a")


def guid(*parts: str) -> str:
    return str(uuid.uuid5(_NAMESPACE, "/".join(parts)))


def hex_digest(length: int, *parts: str) -> str:
    return hashlib.sha256("/".join(parts).encode()).hexdigest()[:length]


def rg_id(resource_group: str) -> str:
    return f"/subscriptions/{SUBSCRIPTION_ID}/resourceGroups/{resource_group}"
