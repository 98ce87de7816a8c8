"""What the pass manager keeps of a model before a pass, so that a failed pass leaves no trace.

A pass must not edit the model it is given; a buggy or hostile one may (a dim baked into the
input declaration, a node renamed) and then fail. :class:`ModelSnapshot` makes the rollback
exact either way, at a cost that stays small on large models:

- **Small models** (weights under :data:`COPY_LIMIT_BYTES`): the pass gets a full copy; the
  manager's model is never handed to it. Nothing to restore.
- **Large models**: a full copy would cost a second copy of the weights in memory and about a
  second per 500 MB. The pass gets the model itself; the snapshot keeps everything *but* the
  initializers (the skeleton: nodes, I/O, value_info, metadata, opsets, functions; kilobytes).
  After the pass, an edited skeleton is put back field by field; edited initializers cannot be
  (their old bytes were not kept): the content hash then still differs and the run must stop
  without writing a model.

Either way the manager compares content hashes afterwards: a restored model is byte-identical
to the one before the pass.
"""

from __future__ import annotations

import math

import onnx

from graphkit.ir.model_io import copy_field, without_initializers

COPY_LIMIT_BYTES = 64 * 2**20  # below this much initializer data a pass simply gets a copy


def initializer_bytes(model: onnx.ModelProto) -> int:
    """Declared size of the initializers' data (from dims and type; reads no tensor data)."""
    total = 0
    for tensor in model.graph.initializer:
        try:
            itemsize = onnx.helper.tensor_dtype_to_np_dtype(tensor.data_type).itemsize
        except (KeyError, TypeError, ValueError):
            itemsize = 8
        total += math.prod(tensor.dims) * itemsize
    return total


class ModelSnapshot:
    """Taken before a pass: :meth:`for_pass` gives the model the pass may receive,
    :meth:`restore` puts back what the pass edited in place (see the module docstring)."""

    def __init__(self, model: onnx.ModelProto, copy_limit: int = COPY_LIMIT_BYTES):
        self.model = model
        self.copied = initializer_bytes(model) < copy_limit
        self._skeleton = b"" if self.copied else without_initializers(model).SerializeToString(deterministic=True)

    def for_pass(self) -> onnx.ModelProto:
        """A copy of the model (small models) or the model itself (large ones)."""
        if not self.copied:
            return self.model
        copy = onnx.ModelProto()
        copy.CopyFrom(self.model)
        return copy

    def restore(self, given: onnx.ModelProto) -> None:
        """Undo in-place edits of ``given`` (what :meth:`for_pass` returned) on the snapshot's
        model. The caller checks the content hash afterwards: edited initializers of a large model
        cannot be put back (their old bytes were not kept)."""
        if self.copied:
            return  # the pass never saw self.model
        if without_initializers(given).SerializeToString(deterministic=True) != self._skeleton:
            saved = onnx.ModelProto.FromString(self._skeleton)
            for descriptor, _ in given.ListFields():
                if descriptor.name != "graph":
                    given.ClearField(descriptor.name)
            for descriptor, _ in given.graph.ListFields():
                if descriptor.name != "initializer":
                    given.graph.ClearField(descriptor.name)
            for descriptor, value in saved.ListFields():
                if descriptor.name != "graph":
                    copy_field(given, descriptor, value)
            for descriptor, value in saved.graph.ListFields():
                copy_field(given.graph, descriptor, value)
