"""``graphkit localize --html``: the path to the first divergent node, drawn with the error per tensor."""

from __future__ import annotations

import json
import re

import onnx
import pytest

from graphkit.diff.localize_page import path_nodes
from graphkit.testing import parse_model

A = """<ir_version: 8, opset_import: ["" : 17]>
main (float[1,4] x) => (float[1,4] y) <float[4] w = {1., 2., 3., 4.}> {
    side = Exp(x)
    t = Neg(x)
    u = Add(t, w)
    v = Relu(u)
    y = Add(v, side)
}"""
B = A.replace("3., 4.}", "3., 5.}")  # w differs in one element: u is the first divergent tensor


@pytest.fixture
def models(tmp_path):
    a, b = parse_model(A), parse_model(B)
    for model in (a, b):
        for node, name in zip(model.graph.node, ["exp", "neg", "add", "relu", "out"], strict=True):
            node.name = name
    onnx.save(a, tmp_path / "a.onnx")
    onnx.save(b, tmp_path / "b.onnx")
    return tmp_path / "a.onnx", tmp_path / "b.onnx"


def test_path_is_the_divergent_node_and_its_ancestors():
    b = parse_model(B)
    assert path_nodes(b, 2) == [1, 2]  # add <- neg; exp feeds only the last node
    assert path_nodes(b, 4) == [0, 1, 2, 3, 4]
    assert path_nodes(b, 4, limit=3) == [0, 3, 4]  # nearest ancestors first


def test_cli_html_draws_the_path_with_errors(cli, models, tmp_path):
    page = tmp_path / "out" / "path.html"
    done = cli("localize", *models, "--html", page, "--model-explorer", tmp_path / "me")
    assert done.returncode == 1, done.stderr  # a divergence was found
    assert f"wrote {page}" in done.stdout and "--node_data_paths=" in done.stdout
    text = page.read_text()
    svg = re.search(r"<svg class=\"region-graph\".*?</svg>", text, re.S)[0]
    assert svg.count('<g class="node') == 2  # neg and add
    assert '<g class="node ok" data-id="b1"' in svg and '<g class="node diverges" data-id="b2"' in svg
    assert "err 1" in svg  # the edge out of add carries its max abs error |4 - 5|
    assert "default-src 'none'" in text and not re.search(r"https?:|src=", text)
    overlay = json.loads((tmp_path / "me" / "b-error.json").read_text())["main"]["results"]
    assert overlay["add"]["value"] == pytest.approx(1.0, abs=1e-6) and overlay["neg"]["value"] == 0.0


def test_cli_html_without_divergence_draws_the_last_compared_nodes(cli, models, tmp_path):
    a, _ = models
    done = cli("localize", a, a, "--html", tmp_path / "same.html")
    assert done.returncode == 0, done.stderr
    text = (tmp_path / "same.html").read_text()
    assert "no divergence" in text and text.count('<g class="node ok"') == 5
