"""A harness for pass authors: tiny graphs in code, one pass, real assertions.

Typical test::

    model = parse_model('''<ir_version: 8, opset_import: ["" : 13]>
        g (float[2,3] x) => (float[2,3] y) { t = Identity(x)  y = Relu(t) }''')
    result = assert_pass_rewrites(EliminateNoops(), model, atol=0, rtol=0)
    assert_op_types(result.model, ["Relu"])
    assert_idempotent(EliminateNoops(), result.model)

Numerics run onnxruntime on CPU with graph optimizations disabled, with the tolerances the
caller states (there are no loose defaults).

For rule authors: :func:`assert_matches` / :func:`assert_no_match` (with the expected decline
reason), :func:`assert_golden_equal` (a golden folder or given input/output pairs),
:func:`load_user_pass` (a pass from a folder of pass files, as ``--passes-dir`` loads it), and the
property helpers :func:`binary_constant_graphs` (hypothesis strategy of matching and near-miss
graphs) and :func:`check_declines_or_exact` / :func:`assert_applies_share`.
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

from graphkit.ir.model_io import check_model, clone, content_hash, op_counts
from graphkit.runtime.feeds import random_feeds
from graphkit.runtime.ort import run_ort
from graphkit.transform.pass_base import Pass, PassResult
from graphkit.transform.registry import get_pass, load_pass_dir


def parse_model(text: str) -> onnx.ModelProto:
    """A model from ONNX textual syntax (``onnx.parser``), checked."""
    model = onnx.parser.parse_model(text)
    onnx.checker.check_model(model)
    return model


def value(name: str, shape, elem: int = onnx.TensorProto.FLOAT) -> onnx.ValueInfoProto:
    """A graph input/output ``name`` of element type ``elem`` (float) and ``shape`` (dims or names)."""
    return onnx.helper.make_tensor_value_info(name, elem, shape)


def property_settings(max_examples: int = 6):
    """hypothesis settings for pass property tests: derandomized (same cases every run), no
    deadline, no example database, ``max_examples`` cases."""
    from hypothesis import HealthCheck, settings

    return settings(
        derandomize=True,
        max_examples=max_examples,
        deadline=None,
        database=None,
        suppress_health_check=[HealthCheck.too_slow],
    )


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


# --- for rule and pass authors -------------------------------------------------------------------


def load_user_pass(directory, name: str, **options) -> Pass:
    """The pass ``name`` from a folder of pass files (loaded by path, as ``--passes-dir``), built with ``options``."""
    load_pass_dir(directory)
    return get_pass(name)(**options)


def assert_matches(
    pass_: Pass, model: onnx.ModelProto, rule: str | None = None, times: int | None = None
) -> PassResult:
    """The pass rewrites ``model`` (checked as :func:`run_pass`); ``rule`` (a counts key) applied, ``times`` times."""
    result = run_pass(pass_, model)
    assert result.modified, f"pass '{pass_.name}' did not rewrite; declined: {result.declined}"
    if rule is not None:
        assert rule in result.counts, f"rule {rule!r} did not apply; counts: {result.counts}"
        if times is not None:
            assert result.counts[rule] == times, f"rule {rule!r} applied {result.counts[rule]} times, not {times}"
    return result


def assert_no_match(pass_: Pass, model: onnx.ModelProto, reason_contains: str | None = None) -> PassResult:
    """The pass leaves ``model`` unchanged; with ``reason_contains``, a declined site gives that reason,
    without it, no site is declined at all (the pattern simply is not there)."""
    if reason_contains is not None:
        return assert_declines(pass_, model, reason_contains=reason_contains)
    result = run_pass(pass_, model)
    assert not result.modified, f"pass '{pass_.name}' rewrote the model"
    assert not result.declined, f"pass '{pass_.name}' declined sites: {result.declined}"
    return result


def assert_golden_equal(model: onnx.ModelProto, golden, *, atol: float, rtol: float) -> int:
    """The model reproduces a golden set: a folder (``graphkit golden make``) or ``[(inputs, outputs), ...]``.

    Returns the number of cases compared (at least one).
    """
    if isinstance(golden, (str, os.PathLike)):
        from graphkit.check.golden import load_golden

        golden = [(case.inputs, case.outputs) for case in load_golden(golden).cases]
    golden = list(golden)
    assert golden, "the golden set has no cases"
    for index, (inputs, outputs) in enumerate(golden):
        actual = run_ort(model, dict(inputs))
        assert set(outputs) <= set(actual), f"case {index}: outputs {sorted(set(outputs) - set(actual))} missing"
        for name, want in outputs.items():
            np.testing.assert_allclose(
                actual[name], want, atol=atol, rtol=rtol, err_msg=f"case {index}, output '{name}'"
            )
    return len(golden)


def check_declines_or_exact(pass_: Pass, model: onnx.ModelProto, *, atol: float, rtol: float, seed: int = 0) -> bool:
    """The property of an exact pass: it declines (model unchanged) or its output matches under ORT.

    Returns True when the pass rewrote the model (for :func:`assert_applies_share`).
    """
    result = run_pass(pass_, model)
    if result.modified:
        assert_numerically_equal(model, result.model, atol=atol, rtol=rtol, seed=seed)
    return result.modified


def assert_applies_share(applied: list[bool], at_least: float) -> None:
    """A property suite's generated cases exercised the rewrite: ``applied`` is true on at least that share."""
    assert applied, "no cases were generated"
    share = sum(applied) / len(applied)
    assert share >= at_least, f"the pass applied on {share:.0%} of {len(applied)} cases, expected >= {at_least:.0%}"


def binary_constant_graphs(ops, values, max_rank: int = 3, opsets=(13, 17, 21)):
    """A hypothesis strategy of graphs ``y = Op(x, c)`` (or ``Op(c, x)``) with a constant ``c``.

    ``Op`` is drawn from ``ops``; ``c`` is filled with one value drawn from ``values`` (put a
    rule's trigger values next to near misses, e.g. ``[1.0, 1.0001, 0.0, -0.0]``), and in half
    the multi-element cases one element is replaced by another drawn value; ``c`` is a scalar, a
    shape that broadcasts into ``x``, or one that broadcasts ``x`` up (near misses for shape
    checks). A Relu may come before the op (so ``x`` is not a graph input) and after it (so
    ``y`` is not a graph output). Float32 inputs.
    """
    from hypothesis import strategies as st

    @st.composite
    def graphs(draw):
        rank = draw(st.integers(0, max_rank))
        x_shape = draw(st.lists(st.integers(1, 3), min_size=rank, max_size=rank))
        kind = draw(st.sampled_from(["scalar", "inner", "wider"]))
        if kind == "scalar":
            c_shape = []
        elif kind == "inner":
            c_shape = [d if draw(st.booleans()) else 1 for d in x_shape][draw(st.integers(0, rank)) :]
        else:
            c_shape = [draw(st.integers(2, 3)), *[1] * rank]
        c_values = np.full(c_shape, draw(st.sampled_from(list(values))), np.float32)
        if c_values.size > 1 and draw(st.booleans()):
            c_values.reshape(-1)[draw(st.integers(0, c_values.size - 1))] = draw(st.sampled_from(list(values)))
        op = draw(st.sampled_from(list(ops)))
        before, after = draw(st.booleans()), draw(st.booleans())
        source = "r" if before else "x"
        inputs = ["c", source] if draw(st.booleans()) else [source, "c"]
        y_shape = list(np.broadcast_shapes(tuple(x_shape), tuple(c_shape)))
        nodes = [onnx.helper.make_node("Relu", ["x"], ["r"])] if before else []
        nodes.append(onnx.helper.make_node(op, inputs, ["t" if after else "y"]))
        if after:
            nodes.append(onnx.helper.make_node("Relu", ["t"], ["y"]))
        return make_model(
            nodes,
            [onnx.helper.make_tensor_value_info("x", onnx.TensorProto.FLOAT, x_shape)],
            [onnx.helper.make_tensor_value_info("y", onnx.TensorProto.FLOAT, y_shape)],
            [onnx.numpy_helper.from_array(c_values, "c")],
            opset=draw(st.sampled_from(list(opsets))),
        )

    return graphs()


def modelzoo_softmax_fix(model: onnx.ModelProto, keep_softmax_output_name: bool = True) -> onnx.ModelProto:
    """The Ascend ModelZoo's opset-11 "fix": Transpose -> Softmax(axis=3) -> Transpose becomes
    Softmax(axis=1), staying at opset 11 (where Softmax(axis=1) is a joint softmax over C*H*W, so
    the fix changes the function: the reference divergence for diff and localize).

    With ``keep_softmax_output_name`` the Softmax keeps its output and consumers are rewired;
    otherwise the Softmax takes over the second Transpose's output name.
    """
    fixed = clone(model)
    nodes = list(fixed.graph.node)
    softmax = next(n for n in nodes if n.op_type == "Softmax")
    first = next(n for n in nodes if n.output[0] == softmax.input[0] and n.op_type == "Transpose")
    second = next(n for n in nodes if softmax.output[0] in n.input and n.op_type == "Transpose")
    softmax.input[0] = first.input[0]
    softmax.attribute[0].i = 1
    old, new = second.output[0], softmax.output[0]
    if not keep_softmax_output_name:
        softmax.output[0], new = old, old
    for node in nodes:
        for i, name in enumerate(node.input):
            if name == old:
                node.input[i] = new
    for output in fixed.graph.output:
        if output.name == old:
            output.name = new
    del fixed.graph.node[:]
    fixed.graph.node.extend(n for n in nodes if n is not first and n is not second)
    onnx.checker.check_model(fixed)
    return fixed
