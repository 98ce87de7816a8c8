"""A harness for pass authors: tiny graphs in code, one pass, real assertions.

Typical test::

    model = parse_model('''<ir_version: 8, opset_import: ["" : 13]>
        g (float[2,3] x) => (float[2,3] y) { t = Identity(x)  y = Relu(t) }''')
    result = assert_pass_rewrites(EliminateNoops(), model, atol=0, rtol=0)
    assert_op_types(result.model, ["Relu"])
    assert_idempotent(EliminateNoops(), result.model)

Numerics run onnxruntime on CPU with graph optimizations disabled, with the tolerances the
caller states (there are no loose defaults).
"""

from __future__ import annotations

import os
import subprocess
import sys
from collections import Counter
from collections.abc import Iterable, Mapping

import numpy as np
import onnx
import onnx.parser

from graphkit.model import check_model, content_hash, op_counts
from graphkit.pass_base import Pass, PassResult
from graphkit.runtime.feeds import random_feeds
from graphkit.runtime.ort import run_ort


def parse_model(text: str) -> onnx.ModelProto:
    """A model from ONNX textual syntax (``onnx.parser``), checked."""
    model = onnx.parser.parse_model(text)
    onnx.checker.check_model(model)
    return model


def make_model(
    nodes: Iterable[onnx.NodeProto],
    inputs: Iterable[onnx.ValueInfoProto],
    outputs: Iterable[onnx.ValueInfoProto],
    initializers: Iterable[onnx.TensorProto] = (),
    opset: int = 13,
    ir_version: int = 8,
) -> onnx.ModelProto:
    """A one-graph model from helper-made nodes and value infos."""
    graph = onnx.helper.make_graph(list(nodes), "test", list(inputs), list(outputs), list(initializers))
    model = onnx.helper.make_model(graph, opset_imports=[onnx.helper.make_opsetid("", opset)])
    model.ir_version = ir_version
    return model


def run_pass(pass_: Pass, model: onnx.ModelProto) -> PassResult:
    """Run ``pass_`` and assert it left its input untouched and returned a checker-valid model."""
    before = content_hash(model)
    result = pass_(model)
    assert content_hash(model) == before, f"pass '{pass_.name}' mutated its input model"
    assert_checker_valid(result.model)
    changed = content_hash(result.model) != before
    assert result.modified == changed, f"pass '{pass_.name}' reported modified={result.modified} but changed={changed}"
    return result


def assert_checker_valid(model: onnx.ModelProto) -> None:
    """The ONNX checker accepts the model and strict shape inference succeeds."""
    check_model(model)
    onnx.shape_inference.infer_shapes(model, check_type=True, strict_mode=True)


def assert_op_types(model: onnx.ModelProto, expected: Iterable[str] | Mapping[str, int]) -> None:
    """The model's op types, with multiplicity, are exactly ``expected`` (order ignored)."""
    want = Counter(expected) if not isinstance(expected, Mapping) else Counter(dict(expected))
    got = op_counts(model)
    assert got == want, f"op types differ: got {dict(got)}, expected {dict(want)}"


def assert_numerically_equal(
    reference: onnx.ModelProto,
    candidate: onnx.ModelProto,
    *,
    atol: float,
    rtol: float,
    feeds: Mapping[str, np.ndarray] | None = None,
    dims: Mapping[str, int] | None = None,
    seed: int = 0,
) -> None:
    """Both models give the same outputs under onnxruntime (optimizations off).

    ``feeds`` default to seeded random inputs; ``dims`` sets symbolic dims (e.g. {"batch": 2}).
    """
    if feeds is None:
        feeds = random_feeds(reference, seed=seed, dims=dims or {})
    expected = run_ort(reference, feeds)
    actual = run_ort(candidate, feeds)
    assert list(expected) == list(actual), f"output names differ: {list(expected)} vs {list(actual)}"
    for name in expected:
        e, a = expected[name], actual[name]
        assert e.shape == a.shape, f"output '{name}': shape {a.shape} != {e.shape}"
        assert e.dtype == a.dtype, f"output '{name}': dtype {a.dtype} != {e.dtype}"
        np.testing.assert_allclose(a, e, atol=atol, rtol=rtol, err_msg=f"output '{name}'")


def assert_pass_rewrites(pass_: Pass, model: onnx.ModelProto, *, atol: float, rtol: float, **kwargs) -> PassResult:
    """Run the pass, require that it changed the model, and that outputs match."""
    result = run_pass(pass_, model)
    assert result.modified, f"pass '{pass_.name}' did not rewrite; declined: {result.declined}"
    assert_numerically_equal(model, result.model, atol=atol, rtol=rtol, **kwargs)
    return result


def assert_idempotent(pass_: Pass, model: onnx.ModelProto) -> None:
    """A second run on the pass's own output changes nothing."""
    result = run_pass(pass_, model)
    assert not result.modified, f"pass '{pass_.name}' is not idempotent: second run modified the model"
    assert content_hash(result.model) == content_hash(model)


def assert_declines(pass_: Pass, model: onnx.ModelProto, reason_contains: str | None = None) -> PassResult:
    """The pass leaves the model unchanged and says why (a declined site whose reason matches)."""
    result = run_pass(pass_, model)
    assert not result.modified, f"pass '{pass_.name}' should have declined but modified the model"
    assert result.declined, f"pass '{pass_.name}' changed nothing but gave no declined site with a reason"
    if reason_contains is not None:
        reasons = [d.reason for d in result.declined]
        assert any(reason_contains in r for r in reasons), f"no declined reason contains {reason_contains!r}: {reasons}"
    return result


def run_cli(*args, cwd=None, timeout: int = 600) -> subprocess.CompletedProcess:
    """Run ``python -m graphkit ARGS`` in a subprocess as a user would (progress bars off)."""
    return subprocess.run(
        [sys.executable, "-m", "graphkit", *map(str, args)],
        capture_output=True,
        text=True,
        cwd=cwd,
        timeout=timeout,
        env={**os.environ, "GRAPHKIT_NO_PROGRESS": "1"},
    )


def export_legacy(
    module,
    example_inputs: tuple,
    input_names: list[str],
    output_names: list[str],
    opset: int = 11,
    batch_dim: str | None = "batch",
) -> onnx.ModelProto:
    """A torch module exported in memory with the legacy (TorchScript) exporter, as ModelZoo does.

    ``batch_dim`` names dim 0 of every input and output (None: static shapes). Seeds torch.
    """
    import io
    import warnings

    import torch

    torch.manual_seed(0)
    buffer = io.BytesIO()
    dynamic_axes = {name: {0: batch_dim} for name in [*input_names, *output_names]} if batch_dim else None
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")  # the legacy exporter's deprecation notice
        torch.onnx.export(
            module.eval(),
            tuple(example_inputs),
            buffer,
            dynamo=False,
            opset_version=opset,
            input_names=input_names,
            output_names=output_names,
            dynamic_axes=dynamic_axes,
        )
    return onnx.load_from_string(buffer.getvalue())
