"""The stand-in's edge: a request's Struct decoded once into plain values (a secret as `Secret`), encoded once back
into the engine's form, byte for byte what the engine sent."""

from __future__ import annotations

from pulumi.runtime.proto import provider_pb2

from azure_facts.engine import SECRET_SIG, SECRET_SIG_KEY, UNKNOWN, Secret
from kms_aks_tools.standin import wire

ENGINE_FORM = {
    "name": "kv",
    "tags": {"team": "x", "token": {SECRET_SIG_KEY: SECRET_SIG, "value": "s3cr3t"}},
    "properties": {"receivers": [{"uri": {SECRET_SIG_KEY: SECRET_SIG, "value": {"url": "https://hook"}}}]},
    "later": UNKNOWN,
    "gone": None,
}


def test_decode_marks_each_secret_once_and_encode_gives_the_engine_its_own_form_back() -> None:
    values = wire.decode(wire.to_struct(ENGINE_FORM))
    assert values["tags"]["token"] == Secret("s3cr3t")
    assert values["properties"]["receivers"][0]["uri"] == Secret({"url": "https://hook"})
    assert values["later"] == UNKNOWN and values["gone"] is None
    assert wire.encode(values) == wire.to_struct(ENGINE_FORM)
    assert "gone" not in wire.decode(wire.to_struct(ENGINE_FORM), skip_nulls=True)
    assert wire.from_struct(wire.encode(values, skip_nulls=True)) == {k: v for k, v in ENGINE_FORM.items() if v}


def test_plain_values_carry_no_marker_and_outputs_that_carry_a_secret_are_marked_again() -> None:
    values = wire.decode(wire.to_struct(ENGINE_FORM))
    assert wire.plain(values)["tags"] == {"team": "x", "token": "s3cr3t"}
    outputs = {"name": "kv", "tags": {"team": "x", "token": "s3cr3t"}, "id": "/kv", "url": "https://x?t=s3cr3t"}
    marked = wire.mark_secrets(outputs, values)
    assert marked["tags"] == Secret({"team": "x", "token": "s3cr3t"})  # a top-level input holding a secret
    assert marked["url"] == Secret("https://x?t=s3cr3t")  # an output carrying a secret input's value
    assert marked["name"] == "kv" and marked["id"] == "/kv"
    assert "s3cr3t" not in repr(marked)


def test_the_stand_in_answers_a_check_with_the_secrets_it_was_sent() -> None:
    # Check returns its inputs: a secret the engine sent comes back marked, never in plain text.
    from kms_aks_tools.standin.server import Cloud, StandinProvider

    provider = StandinProvider("azure-native", Cloud(sleep_cap=0))
    news = {"resourceGroupName": "rg", "location": "westeurope", "tags": {"t": wire.secret("s3cr3t")}}
    request = provider_pb2.CheckRequest(
        urn="urn:pulumi:dev::p::azure-native:resources:ResourceGroup::rg",
        type="azure-native:resources:ResourceGroup",
        news=wire.to_struct(news),
        randomSeed=b"seed",
    )
    checked = wire.from_struct(provider.Check(request, None).inputs)
    assert checked["tags"] == {"t": {SECRET_SIG_KEY: SECRET_SIG, "value": "s3cr3t"}}
