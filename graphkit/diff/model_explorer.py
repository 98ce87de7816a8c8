"""Node-data overlays for Google's Model Explorer (with the ``model-explorer-onnx`` adapter).

Model Explorer colours a graph's nodes from a node-data JSON file: ``{graph id: {"name",
"results": {node id: {"value": number}}, "thresholds": [{"value", "bgColor"}]}}`` (its
``ModelNodeData`` layout). The ONNX adapter names the main graph after ``graph.name``
(``<main>`` when empty) and each node after ``node.name``, made unique the way onnx-ir's
``NameFixPass`` does it (an unnamed node is ``node``, ``node_1``, ...; a repeated name gets
``_1``, ``_2``), so :func:`node_ids` keys the overlays the same way.

- :func:`diff_overlays`: for B, each node's status (0 kept, 1 new weights, 2 changed, 3 added)
  and the step of the pass that made it; for A, each node's status (0 kept, 1 new weights,
  2 changed, 3 removed).
- :func:`localize_overlay`: for B, the max abs error of each compared tensor at its producer.
"""

from __future__ import annotations

import json
import os
from pathlib import Path

import onnx

from graphkit.util.errors import GraphkitError
from graphkit.util.files import write_text_atomic

STATUS_A = {"weights": 1, "changed": 2, "removed": 3}
STATUS_B = {"weights": 1, "changed": 2, "added": 3}
_STATUS_THRESHOLDS = [
    {"value": 0, "bgColor": "#ffffff"},
    {"value": 1, "bgColor": "#e2c7ff"},
    {"value": 2, "bgColor": "#fff1a8"},
    {"value": 3, "bgColor": "#ffb3ad"},
]


def graph_id(model: onnx.ModelProto) -> str:
    """The id the ONNX adapter gives the main graph."""
    return model.graph.name or "<main>"


def node_ids(model: onnx.ModelProto) -> list[str]:
    """The adapter's id of each main-graph node, in graph order."""
    used: set[str] = set()
    counter: dict[str, int] = {}
    ids = []
    for node in model.graph.node:
        preferred = name = node.name or "node"
        while name in used:
            counter[preferred] = counter.get(preferred, 0) + 1
            name = f"{preferred}_{counter[preferred]}"
        used.add(name)
        ids.append(name)
    return ids


def _graph_data(name: str, results: dict[str, float], thresholds: list[dict]) -> dict:
    return {"name": name, "results": {k: {"value": v} for k, v in results.items()}, "thresholds": thresholds}


def diff_overlays(diff, a: onnx.ModelProto, b: onnx.ModelProto) -> dict[str, dict]:
    """File name -> node data: ``a-status.json``, ``b-status.json`` and ``b-pass.json`` (when B has provenance)."""
    from graphkit.diff.html_view import node_kinds
    from graphkit.diff.matching import node_info

    kind_a, kind_b = node_kinds(diff, [node_info(n, i) for i, n in enumerate(b.graph.node)])
    ids_a, ids_b = node_ids(a), node_ids(b)
    overlays = {
        "a-status.json": {
            graph_id(a): _graph_data(
                "graphkit diff A: 0 kept, 1 new weights, 2 changed, 3 removed",
                {node_id: STATUS_A.get(kind_a.get(i, ""), 0) for i, node_id in enumerate(ids_a)},
                _STATUS_THRESHOLDS,
            )
        },
        "b-status.json": {
            graph_id(b): _graph_data(
                "graphkit diff B: 0 kept, 1 new weights, 2 changed, 3 added",
                {node_id: STATUS_B.get(kind_b.get(i, ""), 0) for i, node_id in enumerate(ids_b)},
                _STATUS_THRESHOLDS,
            )
        },
    }
    if diff.made_by:
        steps = {i: p.step if p.step is not None else 0 for i, p in diff.made_by.items()}
        names = sorted({(p.step or 0, p.pass_name) for p in diff.made_by.values()})
        legend = ", ".join(f"{step}={name}" for step, name in names)
        overlays["b-pass.json"] = {
            graph_id(b): _graph_data(
                f"graphkit pass step that made the node (0 = none recorded): {legend}",
                {ids_b[i]: step for i, step in steps.items()},
                [{"value": 0, "bgColor": "#ffffff"}, {"value": max(steps.values()) or 1, "bgColor": "#9fc5ff"}],
            )
        }
    return overlays


def localize_overlay(result, b: onnx.ModelProto) -> dict[str, dict]:
    """``{"b-error.json": node data}``: per B node, the max abs error of the tensor it produced
    (compared for equality: the mismatch fraction); thresholds at atol and 10*atol."""
    ids_b = node_ids(b)
    results = {}
    for c in result.compared:
        error = c.max_abs if c.max_abs is not None else c.mismatch_fraction
        if error is None or not 0 <= c.position < len(ids_b):
            continue
        error = float(error) if error == error and abs(error) != float("inf") else 1e30  # NaN/inf: off the scale
        node_id = ids_b[c.position]
        results[node_id] = max(error, results.get(node_id, 0.0))
    thresholds = [
        {"value": result.atol, "bgColor": "#ccffd8"},
        {"value": 10 * result.atol, "bgColor": "#fff1a8"},
        {"value": 1e30, "bgColor": "#ffb3ad"},
    ]
    name = f"graphkit localize: max abs error per tensor (atol {result.atol:g})"
    return {"b-error.json": {graph_id(b): _graph_data(name, results, thresholds)}}


def write_overlays(folder: str | os.PathLike, overlays: dict[str, dict]) -> list[Path]:
    """Write each overlay as ``folder/<name>`` (atomically); returns the paths."""
    folder = Path(folder)
    if folder.exists() and not folder.is_dir():
        raise GraphkitError(f"{folder}: --model-explorer needs a folder, this is a file")
    paths = []
    for name, data in overlays.items():
        try:
            paths.append(write_text_atomic(folder / name, json.dumps(data, indent=1, allow_nan=False)))
        except OSError as exc:
            raise GraphkitError(f"{folder / name}: cannot write overlay ({exc.strerror or exc})") from exc
    return paths


def open_command(model: str | os.PathLike, overlays: list[Path]) -> str:
    """The shell command that opens ``model`` in Model Explorer with ``overlays``."""
    import shlex

    paths = ",".join(str(p) for p in overlays)
    return (
        f"model-explorer {shlex.quote(str(model))} --extensions=model_explorer_onnx "
        f"--node_data_paths={shlex.quote(paths)}"
    )
