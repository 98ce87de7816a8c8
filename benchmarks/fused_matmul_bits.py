"""Is ``fuse-parallel-matmuls`` bit-exact on onnxruntime CPU? Evidence for keeping it out of ``generic``.

For each model given (the generic preset's output of a corpus row, e.g. the ``graphkit/run/model.onnx``
that ``python -m benchmarks.corpus --work DIR`` leaves), the pass is applied and both models run on
onnxruntime's CPU provider (optimizations off and on) with the same seeded inputs; the fused
MatMuls' outputs (the Split's outputs keep the original names) and the graph outputs are compared
bit for bit, on one thread and on onnxruntime's default thread count. Symbolic dims are run at size 2. Prints one JSON object per model::

    python -m benchmarks.fused_matmul_bits .cache/fz/mobilevit-13-static/graphkit/run/model.onnx
"""

from __future__ import annotations

import json
import platform
import sys

import numpy as np
import onnx
import onnxruntime as ort

from passes.fuse_parallel_matmuls import FuseParallelMatmuls


def _feeds(model: onnx.ModelProto) -> dict[str, np.ndarray]:
    rng = np.random.default_rng(0)
    initializers = {t.name for t in model.graph.initializer}
    feeds = {}
    for value in model.graph.input:
        if value.name in initializers:
            continue
        tensor = value.type.tensor_type
        shape = [d.dim_value if d.HasField("dim_value") else 2 for d in tensor.shape.dim]
        dtype = onnx.helper.tensor_dtype_to_np_dtype(tensor.elem_type)
        if dtype.kind == "f":
            feeds[value.name] = rng.standard_normal(shape).astype(dtype)
        elif "mask" in value.name:
            feeds[value.name] = np.ones(shape, dtype)
        else:
            feeds[value.name] = rng.integers(0, 16, shape).astype(dtype)
    return feeds


def _run(model: onnx.ModelProto, names: list[str], feeds, level, threads: int) -> list[np.ndarray]:
    model = onnx.ModelProto.FromString(model.SerializeToString())
    known = {v.name for v in model.graph.output}
    model.graph.output.extend(onnx.ValueInfoProto(name=n) for n in names if n not in known)
    options = ort.SessionOptions()
    options.graph_optimization_level = level
    options.intra_op_num_threads = threads
    session = ort.InferenceSession(model.SerializeToString(), options, providers=["CPUExecutionProvider"])
    return session.run([*[v.name for v in model.graph.output]], feeds)


def compare(path: str) -> dict:
    model = onnx.load(path)
    result = FuseParallelMatmuls().run(model)
    fused_names = [
        o for n in result.model.graph.node if n.op_type == "Split" and n.name.endswith("_split") for o in n.output
    ]
    feeds = _feeds(model)
    row = {
        "model": path,
        "matmuls_fused": result.counts.get("matmuls_fused", 0),
        "ort": ort.__version__,
        "cpu": platform.processor() or platform.machine(),
    }
    levels = {
        "ort_disable_all": ort.GraphOptimizationLevel.ORT_DISABLE_ALL,
        "ort_enable_all": ort.GraphOptimizationLevel.ORT_ENABLE_ALL,
    }
    for label, level in levels.items():
        for threads in (1, 0):  # 0: onnxruntime's default (one per core)
            before = _run(model, fused_names, feeds, level, threads)
            after = _run(result.model, fused_names, feeds, level, threads)
            differing = sum(int(not np.array_equal(a, b)) for a, b in zip(before, after))
            worst = max(
                float(np.max(np.abs(a.astype(np.float64) - b))) if a.size else 0.0 for a, b in zip(before, after)
            )
            row[f"{label}_threads_{threads or 'default'}"] = {
                "tensors_compared": len(before),
                "tensors_not_bit_equal": differing,
                "max_abs": worst,
            }
    return row


def main(argv: list[str]) -> int:
    for path in argv:
        print(json.dumps(compare(path)))
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
