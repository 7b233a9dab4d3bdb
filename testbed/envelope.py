"""What etcd holds for a KMS v2 encrypted object.

A Secret's value in etcd is `k8s:enc:kms:v2:<provider>:` followed by a protobuf `EncryptedObject`
(k8s.io/apiserver `pkg/storage/value/encrypt/envelope/kmsv2/v2/api.proto`: field 1 encryptedData, 2 keyID,
3 encryptedDEKSource, 4 annotations, 5 encryptedDEKSourceType). Kubernetes' own test reads the keyID the same
way: strip the prefix and unmarshal (`test/integration/controlplane/transformation/kmsv2_transformation_test.go`,
k8s.io/kubernetes v1.34.4). The message is decoded by the protobuf library from a descriptor built here (no
generated stub of it is published for Python), never by hand.

The key ids around it (the plugin's key id that keyID holds, and the API server's metric label of it) are
`kms_aks_tools.cluster.keys`' `plugin_key_id` and `metric_key_id_hash`.
"""

from __future__ import annotations

from dataclasses import dataclass

from google.protobuf import descriptor_pb2, descriptor_pool, message_factory
from google.protobuf.message import DecodeError

KMS_V2_PREFIX = b"k8s:enc:kms:v2:"


def _encrypted_object_class() -> type:
    """The `EncryptedObject` message class, from a descriptor equal to the .proto's, in a private pool."""
    fdp = descriptor_pb2.FileDescriptorProto(name="kms_aks/kmsv2/api.proto", package="v2", syntax="proto3")
    F = descriptor_pb2.FieldDescriptorProto
    enum = fdp.enum_type.add(name="EncryptedDEKSourceType")
    enum.value.add(name="AES_GCM_KEY", number=0)
    enum.value.add(name="HKDF_SHA256_XNONCE_AES_GCM_SEED", number=1)
    msg = fdp.message_type.add(name="EncryptedObject")
    msg.field.add(name="encryptedData", number=1, type=F.TYPE_BYTES, label=F.LABEL_OPTIONAL)
    msg.field.add(name="keyID", number=2, type=F.TYPE_STRING, label=F.LABEL_OPTIONAL)
    msg.field.add(name="encryptedDEKSource", number=3, type=F.TYPE_BYTES, label=F.LABEL_OPTIONAL)
    entry = msg.nested_type.add(name="AnnotationsEntry")
    entry.options.map_entry = True
    entry.field.add(name="key", number=1, type=F.TYPE_STRING, label=F.LABEL_OPTIONAL)
    entry.field.add(name="value", number=2, type=F.TYPE_BYTES, label=F.LABEL_OPTIONAL)
    msg.field.add(
        name="annotations",
        number=4,
        type=F.TYPE_MESSAGE,
        label=F.LABEL_REPEATED,
        type_name=".v2.EncryptedObject.AnnotationsEntry",
    )
    msg.field.add(
        name="encryptedDEKSourceType",
        number=5,
        type=F.TYPE_ENUM,
        label=F.LABEL_OPTIONAL,
        type_name=".v2.EncryptedDEKSourceType",
    )
    pool = descriptor_pool.DescriptorPool()
    pool.Add(fdp)
    return message_factory.GetMessageClass(pool.FindMessageTypeByName("v2.EncryptedObject"))


EncryptedObject = _encrypted_object_class()


@dataclass(frozen=True)
class Envelope:
    """A KMS v2 envelope as stored in etcd."""

    provider: str
    key_id: str
    encrypted_data: bytes
    encrypted_dek_source: bytes
    dek_source_type: str  # AES_GCM_KEY or HKDF_SHA256_XNONCE_AES_GCM_SEED
    annotations: dict[str, bytes]


def parse_envelope(raw: bytes) -> Envelope | None:
    """The envelope in an etcd value; None when the value is not KMS v2 (e.g. stored in plain, `identity`).

    A value with the KMS v2 prefix that does not decode as an EncryptedObject with a keyID raises ValueError:
    what cannot be read is never taken for "not encrypted".
    """
    if not raw.startswith(KMS_V2_PREFIX):
        return None
    provider, sep, payload = raw[len(KMS_V2_PREFIX) :].partition(b":")
    if not sep or not provider:
        raise ValueError("a KMS v2 value without `<provider>:` after k8s:enc:kms:v2:")
    obj = EncryptedObject()
    try:
        obj.ParseFromString(payload)
    except DecodeError as err:
        raise ValueError(
            f"a KMS v2 value of provider {provider.decode(errors='replace')!r} is not an EncryptedObject: {err}"
        ) from err
    if not obj.keyID:
        raise ValueError(f"a KMS v2 value of provider {provider.decode(errors='replace')!r} has no keyID")
    return Envelope(
        provider=provider.decode(),
        key_id=obj.keyID,
        encrypted_data=obj.encryptedData,
        encrypted_dek_source=obj.encryptedDEKSource,
        dek_source_type=EncryptedObject.DESCRIPTOR.fields_by_name["encryptedDEKSourceType"]
        .enum_type.values_by_number[obj.encryptedDEKSourceType]
        .name,
        annotations=dict(obj.annotations),
    )


def envelope_key_id(raw: bytes) -> str | None:
    """The keyID of a KMS v2 envelope in etcd, or None when the value is not KMS v2 encrypted."""
    envelope = parse_envelope(raw)
    return envelope.key_id if envelope else None
