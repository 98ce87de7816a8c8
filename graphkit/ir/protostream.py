"""Read and write ONNX model files a tensor at a time, so memory stays near the model's size.

``onnx.load`` holds the file's bytes and the parsed model at once (2x the file size), and
``SerializeToString`` holds the model, an internal buffer and the bytes (3x). These functions
walk the protobuf wire format of ``ModelProto.graph`` themselves: every initializer is parsed
from (or serialized to) its own small buffer, and everything else (nodes, I/O, metadata) is
handed to protobuf in one small buffer. Peak memory is the model plus its largest tensor.

The wire format is protobuf's: a field is a varint key ``number << 3 | wire_type`` followed by
a varint, 8 bytes, 4 bytes, or a varint length and that many bytes. Field order does not matter
to a parser, so the graph is written last; the content is the same as ``SerializeToString``.

Every length field is checked against the bytes that remain in its enclosing message (and in
the file) before anything is read or allocated: a corrupt 10-byte file whose length field
claims gigabytes is a :class:`WireFormatError`, not a MemoryError.
"""

from __future__ import annotations

from typing import BinaryIO

import onnx

from graphkit.ir import external_data
from graphkit.ir.external_data import expected_bytes, is_external, is_mapped, mapped_chunks, mapped_span

MODEL_GRAPH_FIELD = 7  # ModelProto.graph
GRAPH_INITIALIZER_FIELD = 5  # GraphProto.initializer
LENGTH_DELIMITED = 2
TENSOR_RAW_DATA_FIELD = 9  # TensorProto.raw_data


class WireFormatError(ValueError):
    """The bytes are not a well-formed protobuf message (truncated or not ONNX)."""


def _varint(value: int) -> bytes:
    out = bytearray()
    while True:
        byte = value & 0x7F
        value >>= 7
        if value:
            out.append(byte | 0x80)
        else:
            out.append(byte)
            return bytes(out)


def _read_varint(stream: BinaryIO) -> tuple[int, bytes] | None:
    """(value, raw bytes) of the next varint, or None at a clean end of stream."""
    raw = bytearray()
    value = shift = 0
    while True:
        byte = stream.read(1)
        if not byte:
            if raw:
                raise WireFormatError("truncated varint")
            return None
        raw += byte
        value |= (byte[0] & 0x7F) << shift
        if not byte[0] & 0x80:
            return value, bytes(raw)
        shift += 7
        if shift > 63:
            raise WireFormatError("varint too long")


def _read_exact(stream: BinaryIO, size: int) -> bytes:
    data = stream.read(size)
    if len(data) != size:
        raise WireFormatError(f"truncated: expected {size} bytes, got {len(data)}")
    return data


def _fields(stream: BinaryIO, end: int):
    """Yield (field number, wire type, raw key+length bytes, payload) until offset ``end``.

    For a length-delimited field the payload is its length, checked to fit before ``end``, and
    the bytes stay in the stream for the caller to read.
    """
    while stream.tell() < end:
        key = _read_varint(stream)
        if key is None:
            raise WireFormatError("truncated message")
        number, wire_type = key[0] >> 3, key[0] & 7
        if number == 0:
            raise WireFormatError("field number 0 (corrupt data)")
        if wire_type == 0:
            value = _read_varint(stream)
            if value is None:
                raise WireFormatError("truncated varint field")
            yield number, wire_type, key[1], value[1]
        elif wire_type == 1:
            yield number, wire_type, key[1], _read_exact(stream, 8)
        elif wire_type == 5:
            yield number, wire_type, key[1], _read_exact(stream, 4)
        elif wire_type == LENGTH_DELIMITED:
            length = _read_varint(stream)
            if length is None:
                raise WireFormatError("truncated length")
            remaining = end - stream.tell()
            if length[0] > remaining:
                raise WireFormatError(
                    f"field {number} claims {length[0]} bytes but only {max(remaining, 0)} remain (truncated or corrupt)"
                )
            yield number, wire_type, key[1] + length[1], length[0]  # payload left in the stream
        else:
            raise WireFormatError(f"unsupported wire type {wire_type} for field {number}")
        if stream.tell() > end:
            raise WireFormatError(f"field {number} overruns its message")


def _stream_end(stream: BinaryIO) -> int:
    """Offset of the end of ``stream`` (the stream position is kept)."""
    here = stream.tell()
    end = stream.seek(0, 2)
    stream.seek(here)
    return end


def read_model(stream: BinaryIO, mapped_file: str | None = None) -> onnx.ModelProto:
    """Parse a ModelProto from a seekable binary file object, one initializer at a time.

    With ``mapped_file`` (the stream's file name), each main-graph initializer whose
    ``raw_data`` holds at least :data:`graphkit.ir.external_data.MAP_MIN_BYTES` is not read: it becomes an external-data
    stub over that byte range of the file (which
    :func:`graphkit.ir.external_data.map_external_data` then checks and maps like any other).
    """
    model = onnx.ModelProto()
    rest = bytearray()
    for number, wire_type, head, payload in _fields(stream, _stream_end(stream)):
        if wire_type != LENGTH_DELIMITED:
            rest += head + payload
        elif number == MODEL_GRAPH_FIELD:
            _read_graph(stream, payload, model.graph, mapped_file)
        else:
            rest += head + _read_exact(stream, payload)
    model.MergeFromString(bytes(rest))
    return model


def _read_graph(stream: BinaryIO, length: int, graph: onnx.GraphProto, mapped_file: str | None = None) -> None:
    end = stream.tell() + length
    rest = bytearray()
    for number, wire_type, head, payload in _fields(stream, end):
        if wire_type != LENGTH_DELIMITED:
            rest += head + payload
        elif number == GRAPH_INITIALIZER_FIELD and mapped_file is not None and payload >= external_data.MAP_MIN_BYTES:
            _read_tensor_mapped(stream, payload, graph.initializer.add(), mapped_file)
        elif number == GRAPH_INITIALIZER_FIELD:
            graph.initializer.add().ParseFromString(_read_exact(stream, payload))
        else:
            rest += head + _read_exact(stream, payload)
    graph.MergeFromString(bytes(rest))


def _read_tensor_mapped(stream: BinaryIO, length: int, tensor: onnx.TensorProto, mapped_file: str) -> None:
    """Parse a TensorProto, leaving its ``raw_data`` in the file as a mapped stub (when it holds
    exactly what the dims and type need; otherwise it is read, for the model check to judge)."""
    end = stream.tell() + length
    rest = bytearray()
    raw: tuple[int, int] | None = None
    for number, wire_type, head, payload in _fields(stream, end):
        if wire_type != LENGTH_DELIMITED:
            rest += head + payload
        elif number == TENSOR_RAW_DATA_FIELD:
            raw = (stream.tell(), payload)
            stream.seek(payload, 1)
        else:
            rest += head + _read_exact(stream, payload)
    tensor.MergeFromString(bytes(rest))
    if raw is None:
        return
    offset, size = raw
    if is_external(tensor) or expected_bytes(tensor) != size:
        here = stream.tell()
        stream.seek(offset)
        tensor.raw_data = _read_exact(stream, size)
        stream.seek(here)
        return
    tensor.data_location = onnx.TensorProto.EXTERNAL
    for key, value in (("location", mapped_file), ("offset", str(offset)), ("length", str(size))):
        tensor.external_data.add(key=key, value=value)


def _without(message, skip: str):
    """A shallow copy of ``message`` with every field except ``skip`` (copies small fields only)."""
    copy = type(message)()
    for field, value in message.ListFields():
        if field.name != skip:
            copy_field(copy, field, value)
    return copy


def copy_field(target, descriptor, value) -> None:
    """Set field ``descriptor`` of protobuf message ``target`` to ``value`` (repeated: extended)."""
    if descriptor.is_repeated:
        getattr(target, descriptor.name).extend(value)
    elif descriptor.type == descriptor.TYPE_MESSAGE:
        getattr(target, descriptor.name).CopyFrom(value)
    else:
        setattr(target, descriptor.name, value)


def write_model(model: onnx.ModelProto, stream: BinaryIO) -> None:
    """Serialize ``model`` to a binary file object, one initializer at a time.

    A mapped stub (:func:`graphkit.ir.external_data.is_mapped`) is written as the tensor it
    stands for: its header, then its bytes streamed from their file into ``raw_data``.
    """
    stream.write(_without(model, "graph").SerializeToString())
    graph_head = _without(model.graph, "initializer").SerializeToString()
    init_key = _varint(GRAPH_INITIALIZER_FIELD << 3 | LENGTH_DELIMITED)
    parts = [_mapped_parts(tensor) if is_mapped(tensor) else None for tensor in model.graph.initializer]
    sizes = [
        tensor.ByteSize() if part is None else len(part[0]) + len(_raw_key(part[1])) + part[1] + len(part[2])
        for tensor, part in zip(model.graph.initializer, parts)
    ]
    graph_length = len(graph_head) + sum(len(init_key) + len(_varint(n)) + n for n in sizes)
    stream.write(_varint(MODEL_GRAPH_FIELD << 3 | LENGTH_DELIMITED) + _varint(graph_length))
    stream.write(graph_head)
    for tensor, part, size in zip(model.graph.initializer, parts, sizes):
        stream.write(init_key + _varint(size))
        if part is None:
            stream.write(tensor.SerializeToString())  # one tensor's bytes at a time
            continue
        low, length, high = part
        stream.write(low)
        stream.write(_raw_key(length))
        for piece in mapped_chunks(tensor):
            stream.write(piece)
        stream.write(high)


def _mapped_parts(tensor: onnx.TensorProto) -> tuple[bytes, int, bytes]:
    """A mapped stub's serialization as the tensor it stands for, around its bytes: the fields
    before ``raw_data``, the bytes' length, the fields after it; in field order, as ``onnx.load``
    + ``SerializeToString`` give the same weight loaded into the proto (``data_location`` DEFAULT)."""
    low, high = onnx.TensorProto(), onnx.TensorProto()
    for field, value in tensor.ListFields():
        if field.name not in ("external_data", "data_location"):
            copy_field(low if field.number < TENSOR_RAW_DATA_FIELD else high, field, value)
    high.data_location = onnx.TensorProto.DEFAULT
    return low.SerializeToString(), mapped_span(tensor)[2], high.SerializeToString()


def _raw_key(length: int) -> bytes:
    return _varint(TENSOR_RAW_DATA_FIELD << 3 | LENGTH_DELIMITED) + _varint(length)
