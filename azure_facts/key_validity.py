"""Whether a Key Vault key can encrypt on a given day: one implementation for `kms-aks rotate-check` and the pack.

Key Vault refuses every operation with a key version outside its validity window: before `nbf` (notBefore) and
from `exp` (expires) on (Key Vault's key attributes: "nbf: not before date", "exp: expiry date"; an operation
outside them fails). An AKS cluster whose KMS key version cannot encrypt cannot write a Secret, and one that
cannot decrypt cannot read any. So a key is unusable for KMS when, on the day of the plan:

- it has expired (`expires` on or before that day);
- it is not valid yet (`notBefore` after that day);
- it expires no later than its first automatic rotation (the cluster's version expires before a successor exists).

Standard library only: the policy pack imports this (see `azure_facts/__init__.py`).
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from datetime import UTC, date, datetime, timedelta
from typing import Any

EXPIRED = "expired"
NOT_YET_VALID = "not-yet-valid"
EXPIRES_BEFORE_ROTATION = "expires-before-rotation"


@dataclass(frozen=True)
class Blocker:
    """Why a key cannot encrypt: `code`, and the dates the message names."""

    code: str
    day: date
    first_rotation: date | None = None


_DURATION = re.compile(r"^P(?:(?P<years>\d+)Y)?(?:(?P<months>\d+)M)?(?:(?P<weeks>\d+)W)?(?:(?P<days>\d+)D)?$")


def duration_days(value: Any) -> int | None:
    """Days of an ISO 8601 duration as Key Vault writes them (P90D, P3M, P1Y); months count 30 days, years 365."""
    if not isinstance(value, str):
        return None
    match = _DURATION.match(value.strip().upper())
    if match is None or not any(match.groupdict().values()):
        return None
    parts = {k: int(v) for k, v in match.groupdict().items() if v}
    return parts.get("years", 0) * 365 + parts.get("months", 0) * 30 + parts.get("weeks", 0) * 7 + parts.get("days", 0)


def rotation_triggers(policy: Any) -> tuple[int | None, int | None]:
    """(rotate after creation, rotate before expiry) in days, from a key's rotationPolicy."""
    after = before = None
    actions = policy.get("lifetimeActions") if isinstance(policy, dict) else None
    for action in actions if isinstance(actions, list) else []:
        kind = str(((action or {}).get("action") or {}).get("type") or "").lower()
        trigger = (action or {}).get("trigger") or {}
        if kind == "rotate" and isinstance(trigger, dict):
            after = duration_days(trigger.get("timeAfterCreate"))
            before = duration_days(trigger.get("timeBeforeExpiry"))
    return after, before


def unix_date(value: Any) -> date | None:
    """A Key Vault attribute (seconds since the epoch, as ARM and azure-native write it) as a date."""
    if isinstance(value, bool) or not isinstance(value, int | float):
        return None
    return datetime.fromtimestamp(value, tz=UTC).date()


def first_rotation(
    created: date, expires: date | None, rotate_after_days: int | None, rotate_before_expiry_days: int | None
) -> date | None:
    """When the rotation policy first rotates the key: after creation, or before the first version's expiry."""
    if rotate_after_days is not None:
        return created + timedelta(days=rotate_after_days)
    if rotate_before_expiry_days is not None and expires is not None:
        return expires - timedelta(days=rotate_before_expiry_days)
    return None


def encrypt_blockers(
    *,
    as_of: date,
    expires: date | None,
    not_before: date | None = None,
    created: date | None = None,
    rotate_after_days: int | None = None,
    rotate_before_expiry_days: int | None = None,
) -> list[Blocker]:
    """Every reason the key cannot encrypt on `as_of`, or on the day its first rotation is due."""
    blockers: list[Blocker] = []
    if not_before is not None and not_before > as_of:
        blockers.append(Blocker(NOT_YET_VALID, not_before))
    if expires is None:
        return blockers
    if expires <= as_of:
        blockers.append(Blocker(EXPIRED, expires))
        return blockers
    rotation = first_rotation(created or as_of, expires, rotate_after_days, rotate_before_expiry_days)
    if rotation is not None and expires <= rotation:
        blockers.append(Blocker(EXPIRES_BEFORE_ROTATION, expires, rotation))
    return blockers
