"""The plan says where an unknown value comes from: the resources that very value is computed from, not every
dependency of the top-level property it sits in."""

from __future__ import annotations

import json

from kms_aks_tools.offline.plan import highlights
from kms_aks_tools.offline.recording import UNKNOWN, RecordedStack
from tests.graph import CLUSTER

KEY_ID = "securityProfile.azureKeyVaultKms.keyId"
DEFENDER_WORKSPACE = "securityProfile.defender.logAnalyticsWorkspaceResourceId"


def test_the_prod_key_id_comes_from_the_key_only(prod_preview: RecordedStack) -> None:
    names = {r.urn: r.name for r in prod_preview.resources}
    cluster = prod_preview.one(CLUSTER)
    assert cluster.inputs["securityProfile"]["azureKeyVaultKms"]["keyId"] == UNKNOWN
    # The engine's dependencies of securityProfile name the workspace too (Defender's workspace sits under it) ...
    engine = {names[u] for u in cluster.property_dependencies["securityProfile"]}
    assert engine == {"kms-key", "monitoring-workspace"}
    # ... but the key id is computed from the key alone, and Defender's workspace id from the workspace alone.
    assert [names[u] for u in cluster.unknown_sources[KEY_ID]] == ["kms-key"]
    assert [names[u] for u in cluster.unknown_sources[DEFENDER_WORKSPACE]] == ["monitoring-workspace"]
    assert highlights(cluster, names)["key id"] == "(known after apply, from kms-key)"


def test_the_tracing_never_reaches_what_the_engine_or_the_pack_sees(prod_preview: RecordedStack) -> None:
    recorded = json.dumps([[r.inputs, r.outputs] for r in prod_preview.resources])
    assert "#from:" not in recorded
    assert UNKNOWN in recorded
