"""The diff page's inline style, script and op-delta bar chart (everything inline: the page loads nothing).

The Content-Security-Policy in :data:`CSP` forbids every request (``default-src 'none'``), so a
page that renders at all renders offline. :data:`SCRIPT` runs the node details panel (click a
node box), the pass / op-type filters and nothing else; the page reads fine without it.
"""

from __future__ import annotations

import html
import json

CSP = "default-src 'none'; style-src 'unsafe-inline'; script-src 'unsafe-inline'"

STYLE = """
* { box-sizing: border-box; }
body { font: 14px/1.4 system-ui, sans-serif; margin: 1em 1.5em; color: #222; }
h1 { font-size: 1.3em; overflow-wrap: anywhere; } h2 { font-size: 1.15em; margin-top: 1.4em; border-bottom: 1px solid #ccc; }
h3 { font-size: 1em; margin: 0; display: inline; }
code, td.mono { font-family: ui-monospace, monospace; font-size: 12px; }
.scroll { max-width: 100%; overflow-x: auto; }
table { border-collapse: collapse; margin: .4em 0; }
th, td { border: 1px solid #ddd; padding: 2px 6px; text-align: left; vertical-align: top; }
td { overflow-wrap: anywhere; max-width: 40em; }
th { background: #f3f3f3; }
.added { background: #e6ffec; } .removed { background: #ffebe9; } .changed { background: #fff8c5; }
.weights { background: #fbefff; }
.context { color: #888; }
details.region { margin: .6em 0; padding: .3em .5em; border: 1px solid #ccc; border-radius: 4px; }
details.region > summary { cursor: pointer; }
.sides { display: grid; grid-template-columns: minmax(0, 1fr) minmax(0, 1fr); gap: 1em; margin-top: .4em; }
.side { min-width: 0; overflow: auto; max-height: 80vh; border: 1px solid #eee; }
.side > div.label { font-weight: bold; font-size: 12px; padding: 2px 4px; background: #f7f7f7; }
.sides table { width: 100%; }
.summary { font-weight: bold; overflow-wrap: anywhere; }
.trivial { font-family: ui-monospace, monospace; font-size: 12px; }
.filters { margin: .6em 0; } .filters select { margin-right: 1em; max-width: 20em; }
svg.region-graph { display: block; font: 11px ui-monospace, monospace; }
svg.region-graph .edge { fill: none; stroke: #999; stroke-width: 1; }
svg.region-graph text { text-anchor: middle; fill: #222; }
svg.region-graph text.op { font-weight: bold; }
svg.region-graph text.shape { text-anchor: start; fill: #777; font-size: 10px; }
svg.region-graph g.node { cursor: pointer; }
svg.region-graph g.node rect { stroke: #666; fill: #fff; }
svg.region-graph g.removed rect { fill: #ffd7d5; stroke: #cf222e; }
svg.region-graph g.added rect { fill: #ccffd8; stroke: #1a7f37; }
svg.region-graph g.changed rect { fill: #fff1a8; stroke: #9a6700; }
svg.region-graph g.weights rect { fill: #fbefff; stroke: #8250df; }
svg.region-graph g.ok rect { fill: #ccffd8; stroke: #1a7f37; }
svg.region-graph g.diverges rect { fill: #ff9d96; stroke: #a40e26; stroke-width: 2; }
svg.region-graph g.tensor rect { fill: #f0f4ff; stroke: #8aa0d0; stroke-dasharray: 3 2; }
svg.region-graph g.selected rect { stroke-width: 3; }
svg.chart { display: block; font: 11px ui-monospace, monospace; }
svg.chart .neg { fill: #cf222e; } svg.chart .pos { fill: #1a7f37; }
#details { position: fixed; right: 1em; bottom: 1em; width: min(32em, 40vw); max-height: 50vh; overflow: auto;
  background: #fff; border: 1px solid #888; border-radius: 4px; padding: .5em; font-size: 12px;
  box-shadow: 0 2px 8px rgba(0,0,0,.2); overflow-wrap: anywhere; }
#details[hidden] { display: none; }
"""

SCRIPT = r"""
(function () {
  var data = JSON.parse(document.getElementById('node-data').textContent);
  var panel = document.getElementById('details');
  var selected = null;
  function esc(s) { var d = document.createElement('div'); d.textContent = String(s); return d.innerHTML; }
  function list(title, items) {
    if (!items || !items.length) return '';
    return '<b>' + esc(title) + '</b><ul>' + items.map(function (i) { return '<li>' + esc(i) + '</li>'; }).join('') + '</ul>';
  }
  function show(id) {
    var n = data[id]; if (!n) return;
    var attrs = Object.keys(n.attributes).map(function (k) { return k + ' = ' + n.attributes[k]; });
    panel.innerHTML = '<button type="button" id="details-close" style="float:right">close</button>' +
      '<b>' + esc(n.side) + ': ' + esc(n.op) + '</b> ' + esc(n.name) + ' (#' + n.index + ', ' + esc(n.kind) + ')' +
      (n.made_by ? '<br>made by ' + esc(n.made_by) : '') + list('changes', n.changes) + list('attributes', attrs) +
      list('inputs', n.inputs) + list('outputs', n.outputs) + list('initializer changes', n.initializers);
    panel.hidden = false;
    document.getElementById('details-close').onclick = function () { panel.hidden = true; };
  }
  document.addEventListener('click', function (ev) {
    var g = ev.target.closest ? ev.target.closest('g.node') : null;
    if (!g) return;
    if (selected) selected.classList.remove('selected');
    selected = g; g.classList.add('selected');
    show(g.getAttribute('data-id'));
  });
  function applyFilter() {
    var pass = document.getElementById('filter-pass').value, op = document.getElementById('filter-op').value;
    document.querySelectorAll('[data-ops]').forEach(function (r) {
      var ok = (!pass || ('|' + r.getAttribute('data-passes') + '|').indexOf('|' + pass + '|') >= 0) &&
               (!op || ('|' + r.getAttribute('data-ops') + '|').indexOf('|' + op + '|') >= 0);
      r.hidden = !ok;
    });
  }
  ['filter-pass', 'filter-op'].forEach(function (id) {
    var el = document.getElementById(id); if (el) el.addEventListener('change', applyFilter);
  });
})();
"""

BAR_W = 240  # px of the longest bar
ROW_H = 16
MAX_BARS = 30


def op_delta_chart(deltas: dict[str, tuple[int, int]]) -> str:
    """Inline SVG: one horizontal bar per op whose count changed (largest first), red for fewer, green for more."""
    rows = sorted(deltas.items(), key=lambda kv: (-abs(kv[1][1] - kv[1][0]), kv[0]))[:MAX_BARS]
    if not rows:
        return ""
    label_w = 7 * max(len(op) for op, _ in rows) + 10
    biggest = max(abs(after - before) for _, (before, after) in rows)
    width, height = label_w + BAR_W + 120, ROW_H * len(rows) + 4
    out = [f'<svg class="chart" width="{width}" height="{height}" role="img" aria-label="op count deltas">']
    for i, (op, (before, after)) in enumerate(rows):
        delta = after - before
        y = 2 + i * ROW_H
        bar = max(2.0, BAR_W * abs(delta) / biggest)
        css = "pos" if delta > 0 else "neg"
        out.append(f'<text x="{label_w - 6}" y="{y + 11}" text-anchor="end">{html.escape(op)}</text>')
        out.append(f'<rect class="{css}" x="{label_w}" y="{y + 2}" width="{bar:.1f}" height="{ROW_H - 4}"/>')
        out.append(f'<text x="{label_w + bar + 4:.1f}" y="{y + 11}">{delta:+d} ({before}→{after})</text>')
    out.append("</svg>")
    return "".join(out)


def page_head(title: str) -> list[str]:
    """The page's opening lines up to and including the ``<h1>``."""
    return [
        "<!DOCTYPE html>",
        '<html lang="en"><head><meta charset="utf-8">',
        f'<meta http-equiv="Content-Security-Policy" content="{CSP}">',
        '<meta name="viewport" content="width=device-width, initial-scale=1">',
        f"<title>{html.escape(title)}</title><style>{STYLE}</style></head><body>",
        f"<h1>{html.escape(title)}</h1>",
    ]


def page_tail(node_data: dict) -> list[str]:
    """The details panel, the node details as JSON (safe inside <script>) and the script."""
    data = json.dumps(node_data, ensure_ascii=True).replace("<", "\\u003c").replace(">", "\\u003e")
    return [
        '<aside id="details" hidden></aside>',
        f'<script type="application/json" id="node-data">{data}</script>',
        f"<script>{SCRIPT}</script>",
        "</body></html>",
    ]
