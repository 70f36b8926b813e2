"""Hypothesis strategies for any protobuf message, driven by its descriptor: every field
present or not, integers at the edges of their type's range (where range checks slip), odd
strings, and a caller's list of known values (real addresses, ids) mixed in."""

from google.protobuf.descriptor import Descriptor, FieldDescriptor
from google.protobuf.message import Message
from hypothesis import strategies as st

INT_RANGES = {
    FieldDescriptor.TYPE_INT32: (-(1 << 31), (1 << 31) - 1),
    FieldDescriptor.TYPE_SINT32: (-(1 << 31), (1 << 31) - 1),
    FieldDescriptor.TYPE_SFIXED32: (-(1 << 31), (1 << 31) - 1),
    FieldDescriptor.TYPE_ENUM: (-(1 << 31), (1 << 31) - 1),
    FieldDescriptor.TYPE_INT64: (-(1 << 63), (1 << 63) - 1),
    FieldDescriptor.TYPE_SINT64: (-(1 << 63), (1 << 63) - 1),
    FieldDescriptor.TYPE_SFIXED64: (-(1 << 63), (1 << 63) - 1),
    FieldDescriptor.TYPE_UINT32: (0, (1 << 32) - 1),
    FieldDescriptor.TYPE_FIXED32: (0, (1 << 32) - 1),
    FieldDescriptor.TYPE_UINT64: (0, (1 << 64) - 1),
    FieldDescriptor.TYPE_FIXED64: (0, (1 << 64) - 1),
}


def int_values(low: int, high: int) -> st.SearchStrategy[int]:
    """Where range checks slip (the type's bounds, a byte's, the sign, small values), then
    anything in the type's range."""
    edges = [v for v in (low, low + 1, -1, 0, 1, 255, 256, high - 1, high) if low <= v <= high]
    return st.sampled_from(edges) | st.integers(max(low, -8), min(high, 2000)) \
        | st.integers(low, high)


def field_values(field: FieldDescriptor, known: list[str], depth: int) -> st.SearchStrategy:
    if field.type in INT_RANGES:
        return int_values(*INT_RANGES[field.type])
    if field.type == FieldDescriptor.TYPE_BOOL:
        return st.booleans()
    if field.type in (FieldDescriptor.TYPE_DOUBLE, FieldDescriptor.TYPE_FLOAT):
        return st.floats(width=32 if field.type == FieldDescriptor.TYPE_FLOAT else 64)
    if field.type == FieldDescriptor.TYPE_STRING:
        return st.one_of(st.sampled_from(known), st.text(max_size=80),
                         st.text(alphabet="infer1qpzry9x8gf2tvdw0s3jn54khce6mua7l", max_size=70),
                         st.just("x" * 5000))
    if field.type == FieldDescriptor.TYPE_BYTES:
        return st.binary(max_size=80)
    return messages(field.message_type, known, depth + 1)


def messages(descriptor: Descriptor, known: list[str], depth: int = 0
             ) -> st.SearchStrategy[dict]:
    """Field values for a message of ``descriptor``, each field present or not."""
    if depth > 2:
        return st.just({})
    fields = {}
    for field in descriptor.fields:
        values = field_values(field, known, depth)
        if field.label == FieldDescriptor.LABEL_REPEATED:
            values = st.lists(values, max_size=3)
        fields[field.name] = st.none() | values
    return st.fixed_dictionaries(fields).map(
        lambda chosen: {k: v for k, v in chosen.items() if v is not None})


def build(message_type: type[Message], values: dict) -> Message | None:
    """The message, or None where protobuf itself refuses the values (e.g. a map entry)."""
    try:
        return message_type(**values)
    except (TypeError, ValueError):
        return None
