"""Names known at preview: a resource's literal name that still carries the dependency on the resource."""

from __future__ import annotations

import pulumi


def known_at_preview(resource: pulumi.Resource, name: str) -> pulumi.Output[str]:
    """`name` (the literal the resource was declared with), depending on `resource`.

    `resource.name`-style outputs of a resource created in the same run are unknown at preview, which is where the
    policy pack decides (pulumi/pulumi#3366); the URN is known at preview, so this is known too, and a consumer still
    waits for `resource`.
    """
    return resource.urn.apply(lambda _: name)
