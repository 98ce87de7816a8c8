"""benchmarks.corpus.gaps: the runs where graphkit leaves more than a peer, and which op types."""

from __future__ import annotations

import json

from benchmarks.corpus.gaps import gaps, main


def run(arch, ours, slim, sim):
    def side(ops):
        return {"nodes": sum(ops.values()), "shape_ops": ops.get("Shape", 0), "ops": ops}

    return {
        "arch": arch,
        "opset": 13,
        "batch": "dynamic",
        "graphkit": side(ours),
        "onnxslim": side(slim),
        "onnxsim": side(sim),
    }


def test_reports_only_misses_with_the_op_type_differences(tmp_path):
    records = [
        run(
            "swin",
            {"Concat": 3, "Slice": 4, "Shape": 1},
            {"Concat": 1, "Slice": 4, "Shape": 1},
            {"Concat": 9, "Shape": 4},
        ),
        run("bert", {"Reshape": 2}, {"Reshape": 2}, {"Reshape": 3}),
        {"arch": "t5", "opset": 13, "batch": "dynamic", "graphkit": {"status": "error"}},  # no counts: skipped
    ]
    found = gaps(records)
    assert found == [
        {
            "run": "swin@13 dynamic",
            "peer": "onnxslim",
            "nodes": [8, 6],
            "shape_ops": [1, 1],
            "more": {"Concat": 2},
            "fewer": {},
        }
    ]
    path = tmp_path / "results.json"
    path.write_text(json.dumps(records))
    assert main([str(path)]) == 1
    path.write_text(json.dumps(records[1:]))
    assert main([str(path)]) == 0


def test_unreadable_results_file_is_one_error_line(tmp_path, capsys):
    assert main([str(tmp_path / "missing.json")]) == 2
    assert capsys.readouterr().err.startswith("gaps: error: ")
