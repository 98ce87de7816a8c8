"""The HTML diff page: well-formed, self-contained, changed regions side by side.

The default suite parses the page with ``html.parser``; the slow test loads it in headless
Chromium when a chromium binary is installed (it is skipped otherwise).
"""

from __future__ import annotations

import shutil
import subprocess
from html.parser import HTMLParser

import pytest

from graphkit.diff.html_view import changed_regions, render_html, write_html
from graphkit.diff.matching import node_info
from graphkit.diff.model_diff import diff_models
from graphkit.testing import parse_model

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

    def handle_starttag(self, tag, attrs):
        attrs = dict(attrs)
        for key in ("src", "href", "action", "data"):
            if attrs.get(key):
                self.external.append(f"{tag} {key}={attrs[key]}")
        if tag in ("script", "link", "iframe", "object", "img"):
            self.external.append(tag)
        if "id" in attrs:
            self.ids.add(attrs["id"])
        if tag == "tr" and attrs.get("class"):
            self.row_classes.append(attrs["class"])
        if tag == "div" and attrs.get("class") == "side":
            self.side_count += 1
        if tag == "section" and attrs.get("class") == "region":
            self.region_count += 1
        if tag not in VOID:
            self.stack.append(tag)

    def handle_endtag(self, tag):
        if not self.stack or self.stack[-1] != tag:
            self.errors.append(f"unexpected </{tag}> with open {self.stack[-3:]}")
            return
        self.stack.pop()

    def handle_data(self, data):
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


def test_page_is_well_formed_and_self_contained(pair):
    a, b, diff = pair
    text = render_html(diff, a, b)
    assert text.startswith("<!DOCTYPE html>")
    page = check_page(text)
    assert page.external == []
    assert "http" not in text and "url(" not in text and "@import" not in text
    assert {"summary", "model", "io", "regions", "initializers", "op-counts"} <= page.ids


def test_changed_regions_side_by_side(pair):
    a, b, diff = pair
    page = check_page(render_html(diff, a, b))
    # Softmax region (two Transposes removed, Softmax changed) and the Relu -> Sigmoid region.
    assert page.region_count == 2
    assert page.side_count == 4
    assert page.row_classes.count("removed") >= 3  # 2 Transposes + Relu (+ nothing else removed)
    assert "added" in page.row_classes and "changed" in page.row_classes
    body = " ".join(page.text)
    assert "-2 Transpose" in body and "Sigmoid" in body and "opset ai.onnx" in body


def test_region_grouping(pair):
    a, b, diff = pair
    nodes_a = [node_info(n, i) for i, n in enumerate(a.graph.node)]
    nodes_b = [node_info(n, i) for i, n in enumerate(b.graph.node)]
    regions = changed_regions(diff, nodes_a, nodes_b)
    ops = [(sorted(nodes_a[i].op_type for i in ra), sorted(nodes_b[i].op_type for i in rb)) for ra, rb in regions]
    assert ops == [(["Softmax", "Transpose", "Transpose"], ["Softmax"]), (["Relu"], ["Sigmoid"])]


def test_names_are_escaped(pair):
    a, b, _ = pair
    b.graph.node[0].name = "<script>alert(1)</script>"
    page = render_html(diff_models(a, b), a, b)
    assert "<script>" not in page and "&lt;script&gt;" in page


def test_empty_diff_page(pair):
    a, _, _ = pair
    page = check_page(render_html(diff_models(a, a), a, a))
    assert page.region_count == 0 and "no changes" in " ".join(page.text)


def test_write_html_is_atomic(pair, tmp_path):
    a, b, diff = pair
    target = write_html(diff, a, b, tmp_path / "sub" / "page.html")
    assert target.read_text().endswith("</body></html>")
    assert sorted(p.name for p in target.parent.iterdir()) == ["page.html"]


def _chromium() -> str | None:
    for name in ("chromium", "chromium-browser", "google-chrome", "google-chrome-stable", "chrome"):
        found = shutil.which(name)
        if found:
            return found
    return None


@pytest.mark.slow
def test_page_loads_in_headless_chromium(pair, tmp_path):
    browser = _chromium()
    if browser is None:
        pytest.skip("no chromium binary on PATH")
    a, b, diff = pair
    page = write_html(diff, a, b, tmp_path / "diff.html")
    done = subprocess.run(
        [browser, "--headless", "--no-sandbox", "--disable-gpu", "--dump-dom", page.as_uri()],
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert done.returncode == 0, done.stderr[-2000:]
    dom = done.stdout
    assert 'id="region-1"' in dom and 'id="region-2"' in dom
    assert "-2 Transpose" in dom
