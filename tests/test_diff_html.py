"""The HTML diff page: well-formed, self-contained, changed regions side by side.

The default suite parses the page with ``html.parser``; the slow tests load a real model's page
in headless Chromium when a chromium binary is installed (they are skipped otherwise).
"""

from __future__ import annotations

import json
import logging
import re
from html.parser import HTMLParser

import pytest

from benchmarks.browser_probe import find_chromium, probe_page
from graphkit.diff import html_view, region_svg
from graphkit.diff.html_view import changed_regions, render_html, write_html
from graphkit.diff.matching import node_info
from graphkit.diff.model_diff import diff_models
from graphkit.testing import parse_model, run_cli

A = """<ir_version: 7, opset_import: ["" : 11]>
g (float[N,3,2,2] x) => (float[N,3,2,2] y, float[N,3,2,2] z) <float[1] k = {2.}> {
    t = Transpose<perm = [0, 2, 3, 1]>(x)
    s = Softmax<axis = 3>(t)
    y = Transpose<perm = [0, 3, 1, 2]>(s)
    m = Mul(x, k)
    z = Relu(m)
}"""
B = """<ir_version: 7, opset_import: ["" : 13]>
g (float[1,3,2,2] x) => (float[1,3,2,2] y, float[1,3,2,2] z) <float[1] k = {3.}> {
    y = Softmax<axis = 1>(x)
    m = Mul(x, k)
    z = Sigmoid(m)
}"""

VOID = {"meta", "br", "hr", "img", "input", "link", "col", "area", "base", "wbr"}


class PageChecker(HTMLParser):
    """Checks nesting and collects what the tests look at."""

    def __init__(self):
        super().__init__()
        self.stack: list[str] = []
        self.errors: list[str] = []
        self.external: list[str] = []
        self.ids: set[str] = set()
        self.row_classes: list[str] = []
        self.side_count = 0
        self.region_count = 0
        self.text: list[str] = []
        self.regions: list[dict] = []  # per drawn region: expected node counts, SVGs and node boxes seen
        self.script_text = False
        self.scripts: list[str] = []

    def handle_starttag(self, tag, attrs):
        attrs = dict(attrs)
        for key in ("src", "href", "action", "data"):
            if attrs.get(key):
                self.external.append(f"{tag} {key}={attrs[key]}")
        if tag in ("link", "iframe", "object", "img", "embed", "base"):
            self.external.append(tag)
        if tag == "script":
            self.script_text = True
        classes = (attrs.get("class") or "").split()
        if "id" in attrs:
            self.ids.add(attrs["id"])
        if tag == "tr" and attrs.get("class"):
            self.row_classes.append(attrs["class"])
        if tag == "div" and attrs.get("class") == "side":
            self.side_count += 1
        if "region" in classes and tag in ("section", "details"):
            self.region_count += 1
            self.regions.append(
                {
                    "a": int(attrs.get("data-nodes-a", -1)),
                    "b": int(attrs.get("data-nodes-b", -1)),
                    "svgs": 0,
                    "boxes": 0,
                }
            )
        if tag == "svg" and "region-graph" in classes and self.regions:
            self.regions[-1]["svgs"] += 1
        if tag == "g" and "node" in classes and self.regions:
            self.regions[-1]["boxes"] += 1
        if tag not in VOID:
            self.stack.append(tag)

    def handle_endtag(self, tag):
        if not self.stack or self.stack[-1] != tag:
            self.errors.append(f"unexpected </{tag}> with open {self.stack[-3:]}")
            return
        self.stack.pop()

    def handle_data(self, data):
        if self.stack and self.stack[-1] == "script":
            self.scripts.append(data)
        else:
            self.text.append(data)


def check_page(text: str) -> PageChecker:
    checker = PageChecker()
    checker.feed(text)
    checker.close()
    assert checker.errors == []
    assert checker.stack == [], f"unclosed tags: {checker.stack}"
    return checker


@pytest.fixture
def pair():
    a, b = parse_model(A), parse_model(B)
    return a, b, diff_models(a, b)


def assert_offline(text: str, page: PageChecker) -> None:
    """No element loads anything, no URL anywhere, and a CSP that forbids every request."""
    assert page.external == []
    assert re.search(r"https?:|//[a-z]|url\(|@import|src=", text, re.IGNORECASE) is None
    assert "default-src 'none'" in text


def assert_regions_drawn(page: PageChecker) -> None:
    """Every region: one SVG per side, as many node boxes as the region has nodes."""
    assert page.regions
    for region in page.regions:
        assert region["svgs"] == 2, region
        assert region["boxes"] == region["a"] + region["b"], region


def test_page_is_well_formed_and_self_contained(pair):
    a, b, diff = pair
    text = render_html(diff, a, b)
    assert text.startswith("<!DOCTYPE html>")
    page = check_page(text)
    assert_offline(text, page)
    assert {"summary", "model", "io", "regions", "initializers", "op-counts", "node-data"} <= page.ids


def test_changed_regions_are_drawn_side_by_side(pair):
    a, b, diff = pair
    page = check_page(render_html(diff, a, b))
    # Softmax region (two Transposes removed, Softmax changed); Relu -> Sigmoid fed by Mul, whose k changed.
    assert [(r["a"], r["b"]) for r in page.regions] == [(3, 1), (2, 2)]
    assert page.side_count == 4
    assert_regions_drawn(page)
    body = " ".join(page.text)
    assert "-2 Transpose" in body and "Sigmoid" in body and "opset ai.onnx" in body
    assert "[N,2,2,3]" in body  # the inferred shape of A's transposed tensor labels its edges


def test_node_details_name_inputs_shapes_and_initializer_change(pair):
    a, b, diff = pair
    text = render_html(diff, a, b)
    data = json.loads(re.search(r'<script type="application/json" id="node-data">(.*?)</script>', text, re.S)[1])
    mul = next(n for key, n in data.items() if key.startswith("b") and n["op"] == "Mul")
    assert mul["kind"] == "weights" and mul["inputs"] == ["x [1,3,2,2]", "k [1]"]
    assert mul["initializers"] == ["k: value; max abs change 1"]
    softmax = next(n for key, n in data.items() if key.startswith("b") and n["op"] == "Softmax")
    assert "attribute axis: 3 -> 1" in softmax["changes"]
    assert len(data) == 3 + 1 + 1 + 1 + 1 + 1  # every drawn node has its details


def test_region_grouping(pair):
    a, b, diff = pair
    nodes_a = [node_info(n, i) for i, n in enumerate(a.graph.node)]
    nodes_b = [node_info(n, i) for i, n in enumerate(b.graph.node)]
    regions = changed_regions(diff, nodes_a, nodes_b)
    ops = [(sorted(nodes_a[i].op_type for i in ra), sorted(nodes_b[i].op_type for i in rb)) for ra, rb in regions]
    assert ops == [(["Softmax", "Transpose", "Transpose"], ["Softmax"]), (["Mul", "Relu"], ["Mul", "Sigmoid"])]


def test_single_removed_nodes_are_one_line_per_op():
    adds = "\n".join(f"    h{i} = Neg(x{i})\n    y{i} = Add(h{i}, zero)\n    z{i} = Relu(y{i})" for i in range(5))
    inputs = ", ".join(f"float[2] x{i}" for i in range(5))
    outputs = ", ".join(f"float[2] z{i}" for i in range(5))
    a = parse_model(f"""<ir_version: 8, opset_import: ["" : 17]>
g ({inputs}) => ({outputs}) <float[1] zero = {{0.}}> {{
{adds}
}}""")
    relus = "\n".join(f"    y{i} = Neg(x{i})\n    z{i} = Relu(y{i})" for i in range(5))
    b = parse_model(f"""<ir_version: 8, opset_import: ["" : 17]>
g ({inputs}) => ({outputs}) {{
{relus}
}}""")
    diff = diff_models(a, b)
    page = check_page(render_html(diff, a, b))
    assert page.regions == []  # no drawn region: the five removals are one line
    body = " ".join(page.text)
    assert "5 Add removed" in body and body.count("Add removed") == 1
    # the pass that rewired the Neg nodes (their outputs now carry the old Add outputs' names) removed the Adds
    for node in b.graph.node:
        if node.op_type == "Neg":
            node.metadata_props.add(key="graphkit.pass", value="eliminate-neutral")
    page = check_page(render_html(diff_models(a, b), a, b))
    assert "5 Add removed by eliminate-neutral" in " ".join(page.text)


def test_filters_list_the_passes_and_ops(pair):
    a, b, _ = pair
    b.graph.node[0].metadata_props.add(key="graphkit.pass", value="fix-softmax")
    b.graph.node[0].metadata_props.add(key="graphkit.step", value="2")
    text = render_html(diff_models(a, b), a, b)
    assert '<option value="fix-softmax">' in text and '<option value="Transpose">' in text
    assert 'data-passes="fix-softmax"' in text
    assert "made by fix-softmax" in text


def test_without_the_layout_library_regions_are_tables(pair, monkeypatch, caplog):
    a, b, diff = pair
    monkeypatch.setattr(html_view, "layout_available", lambda: False)
    with caplog.at_level(logging.WARNING, logger="graphkit.diff.html_view"):
        page = check_page(render_html(diff, a, b))
    assert [r["svgs"] for r in page.regions] == [0, 0]
    assert page.row_classes.count("removed") >= 3
    assert len([r for r in caplog.records if "grandalf" in r.getMessage()]) == 1


def test_big_sides_fall_back_to_a_table(pair, monkeypatch):
    a, b, diff = pair
    monkeypatch.setattr(region_svg, "MAX_DRAWN_NODES", 2)
    page = check_page(render_html(diff, a, b))
    assert [r["svgs"] for r in page.regions] == [1, 2]  # A of region 1 has 3 nodes: a table


def test_names_are_escaped(pair):
    a, b, _ = pair
    b.graph.node[0].name = "<script>alert(1)</script>"
    page = render_html(diff_models(a, b), a, b)
    assert "<script>alert" not in page and "&lt;script&gt;alert" in page


def test_empty_diff_page(pair):
    a, _, _ = pair
    page = check_page(render_html(diff_models(a, a), a, a))
    assert page.region_count == 0 and "no changes" in " ".join(page.text)


def test_write_html_is_atomic(pair, tmp_path):
    a, b, diff = pair
    target = write_html(diff, a, b, tmp_path / "sub" / "page.html")
    assert target.read_text().endswith("</body></html>")
    assert sorted(p.name for p in target.parent.iterdir()) == ["page.html"]


@pytest.fixture(scope="module")
def wseg_pair(tmp_path_factory):
    """The tiny wseg export and the same model through the wseg_310p passes (a real model diff)."""
    folder = tmp_path_factory.mktemp("wseg")
    done = run_cli("export", "-o", folder / "export.onnx", "--width", "0.03125", "--input-size", "32", "32", "-q")
    assert done.returncode == 0, done.stderr
    passes = "eliminate-noops,fold-shapes,softmax-transpose,dynamic-batch"
    done = run_cli("apply", folder / "export.onnx", folder / "310p.onnx", "--passes", passes, "-q")
    assert done.returncode == 0, done.stderr
    return folder / "export.onnx", folder / "310p.onnx"


@pytest.mark.slow
def test_real_model_page_in_headless_chromium(wseg_pair, tmp_path):
    if find_chromium() is None:
        pytest.skip("no chromium binary on PATH (Debian: apt-get install chromium)")
    page = tmp_path / "diff.html"
    done = run_cli("diff", *wseg_pair, "--html", page)
    assert done.returncode == 0, done.stderr
    probe = probe_page(page, width=1280)
    assert probe["scroll_width"] <= probe["client_width"] <= 1280  # no horizontal page scroll at 1280 px
    assert len(probe["regions"]) >= 5  # fold-shapes' Shape/Gather/Concat chains, the Softmax fix, ...
    for region in probe["regions"]:
        assert region["svgs"] == 2, region
        assert region["boxes"] == region["a"] + region["b"], region
    assert probe["errors"] == [] and probe["console_problems"] == []
    assert probe["resources"] == []  # the file made no request
    # the script works: a click shows the node's details, the op filter hides other regions
    assert probe["clicked"].startswith("a") and probe["details"] and "inputs" in probe["details"]
    assert probe["shown_after_filter"]
    assert all(probe["filter_op"] in ops.split("|") for ops in probe["shown_after_filter"])
    wide = probe_page(page, width=1920)
    assert wide["scroll_width"] <= wide["client_width"]


@pytest.mark.slow
def test_the_probe_sees_requests_and_script_errors(pair, tmp_path):
    """The browser test can fail: a page that tries a request or throws is caught."""
    if find_chromium() is None:
        pytest.skip("no chromium binary on PATH (Debian: apt-get install chromium)")
    a, b, diff = pair
    text = render_html(diff, a, b)
    bad = text.replace(
        "</body></html>", '<img src="http://192.0.2.1/x.png"><script>noSuchFunction();</script></body></html>'
    )
    (tmp_path / "bad.html").write_text(bad)
    probe = probe_page(tmp_path / "bad.html")
    assert any("noSuchFunction" in e for e in probe["errors"])
    assert any("Content Security Policy" in line for line in probe["console_problems"])
    assert any("192.0.2.1" in r for r in probe["resources"])  # the attempt is listed (and was blocked by the CSP)
