"""Conv+BatchNorm folds of the legacy exporter, recomputed so that their bytes are the same on every CPU.

The TorchScript exporter folds each ``Conv -> BatchNormalization`` pair into one Conv
(``torch/csrc/jit/passes/onnx/eval_peephole.cpp``): ``scale = gamma / sqrt(var + eps)``,
``W' = W * scale``, ``b' = beta - mean * scale`` (``(b - mean) * scale + beta`` with a conv
bias), in float32 ATen kernels. Those kernels are not bit-identical across CPUs: the seeded
tiny wseg export made on an AMD EPYC (AVX2) and on an Intel Xeon (AVX-512) differ only in
the folded ``onnx::Conv_*`` initializers, by one float32 ulp in 17 of 72 to 546 of 2,304
elements of a layer (every other initializer and every node identical). The model's content
hash, and with it every golden set made for it, then depends on the machine.

:func:`refold_exactly` replaces each folded weight and bias by the same formula evaluated with
numpy from the torch model's own float32 parameters (:func:`folded`): the per-channel scale and
the bias in float64, rounded once to float32, the weight as one float32 multiply per value.
Each step is a single IEEE-754 operation, correctly rounded on any x86-64 or ARM CPU whatever
its vector width: the result depends on the parameters only. Every replaced value is first checked to
be within float32 rounding of torch's (a fold mapped to the wrong layers fails loudly).
"""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager

import numpy as np
import onnx
from onnx import numpy_helper

from graphkit.util.errors import GraphkitError

# torch's float32 fold and the float64 one differ by rounding only (measured: at most 2 ulp, far
# below this fraction of the layer's largest value); a fold mapped to the wrong layers by O(1).
_AGREE_RTOL = 1e-5


@contextmanager
def conv_batchnorm_pairs(model) -> Iterator[dict[str, str]]:
    """While active, records which Conv2d's output each BatchNorm2d reads in a forward pass.

    Yields a dict filled during the forward (e.g. the exporter's trace): conv module path ->
    BatchNorm module path, for BatchNorms fed directly by a conv.
    """
    from torch import nn

    pairs: dict[str, str] = {}
    outputs: dict[int, tuple[str, object]] = {}  # id(tensor) -> (conv path, tensor kept alive)
    handles = []

    def conv_hook(name):
        def hook(_module, _inputs, output):
            outputs[id(output)] = (name, output)

        return hook

    def bn_hook(name):
        def hook(_module, inputs):
            source = outputs.get(id(inputs[0]))
            if source is not None and source[1] is inputs[0]:
                pairs[source[0]] = name

        return hook

    for name, module in model.named_modules():
        if isinstance(module, nn.Conv2d):
            handles.append(module.register_forward_hook(conv_hook(name)))
        elif isinstance(module, nn.BatchNorm2d):
            handles.append(module.register_forward_pre_hook(bn_hook(name)))
    try:
        yield pairs
    finally:
        for handle in handles:
            handle.remove()
        outputs.clear()


def module_path(node_name: str) -> str:
    """The module path of an exported node: ``/aspp/global_avg_pool/global_avg_pool.1/Conv`` ->
    ``aspp.global_avg_pool.1`` (a Sequential's child is scoped as ``parent.index``)."""
    parts: list[str] = []
    for scope in node_name.strip("/").split("/")[:-1]:
        if parts and scope.startswith(parts[-1] + "."):
            scope = scope[len(parts[-1]) + 1 :]
        parts.append(scope)
    return ".".join(parts)


def folded(conv_weight, conv_bias, gamma, beta, mean, var, eps: float) -> tuple[np.ndarray, np.ndarray]:
    """The folded (weight, bias) as float32, from float32 parameters, the same on every CPU.

    The per-channel ``scale`` and the bias are computed in float64 and rounded once to float32;
    the weight is ``W * scale`` with one float32 multiply per value. Every step is one
    correctly-rounded IEEE-754 operation, so no vector width or FMA can change a bit (and the
    weight costs no float64 copy: 75 MB layers of the full model stay cheap).
    ``gamma``/``beta`` None mean a BatchNorm without affine parameters (1 and 0).
    """
    var64 = np.asarray(var, dtype=np.float64)
    scale = (np.ones_like(var64) if gamma is None else np.asarray(gamma, np.float64)) / np.sqrt(var64 + np.float64(eps))
    shift = np.zeros_like(var64) if beta is None else np.asarray(beta, np.float64)
    weight = np.asarray(conv_weight, np.float32) * scale.astype(np.float32).reshape(
        -1, *([1] * (np.ndim(conv_weight) - 1))
    )
    if conv_bias is None:
        bias = shift - np.asarray(mean, np.float64) * scale
    else:
        bias = (np.asarray(conv_bias, np.float64) - np.asarray(mean, np.float64)) * scale + shift
    return weight.astype(np.float32, copy=False), bias.astype(np.float32)


def refold_exactly(proto: onnx.ModelProto, model, pairs: dict[str, str]) -> int:
    """Rewrite, in place, the weight and bias of every Conv the exporter folded a BatchNorm into.

    A folded Conv is one whose weight is not a parameter of ``model`` (the exporter names it
    ``onnx::Conv_N``); ``pairs`` (from :func:`conv_batchnorm_pairs`) names its BatchNorm.
    Returns the number of folds rewritten. GraphkitError when a folded Conv cannot be mapped
    to a conv and BatchNorm of ``model``, or when torch's values and the recomputed ones differ
    by more than float32 rounding.
    """
    params = {name: value.detach().cpu().numpy() for name, value in model.state_dict().items()}
    modules = dict(model.named_modules())
    initializers = {tensor.name: tensor for tensor in proto.graph.initializer}
    count = 0
    for node in proto.graph.node:
        if node.op_type != "Conv" or len(node.input) < 3 or node.input[1] in params:
            continue
        if node.input[1] not in initializers or node.input[2] not in initializers:
            continue
        conv_path = module_path(node.name)
        bn_path = pairs.get(conv_path)
        if conv_path not in modules or bn_path is None:
            raise GraphkitError(
                f"export: cannot map the folded Conv '{node.name}' to a conv and BatchNorm of the model "
                f"(conv '{conv_path}', BatchNorm {bn_path!r}); the fold cannot be made CPU-independent"
            )
        bn = modules[bn_path]
        weight, bias = folded(
            params[f"{conv_path}.weight"],
            params.get(f"{conv_path}.bias"),
            params.get(f"{bn_path}.weight"),
            params.get(f"{bn_path}.bias"),
            params[f"{bn_path}.running_mean"],
            params[f"{bn_path}.running_var"],
            bn.eps,
        )
        for name, value in ((node.input[1], weight), (node.input[2], bias)):
            tensor = initializers[name]
            exported = numpy_helper.to_array(tensor)
            if exported.shape != value.shape or (
                exported.size and np.max(np.abs(value - exported)) > _AGREE_RTOL * np.max(np.abs(exported))
            ):
                raise GraphkitError(
                    f"export: the fold of '{bn_path}' into '{conv_path}' ({name}) does not match torch's "
                    "beyond float32 rounding; the fold cannot be made CPU-independent"
                )
            tensor.CopyFrom(numpy_helper.from_array(value.astype(exported.dtype), name))
        count += 1
    return count
