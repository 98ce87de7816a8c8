"""Load a graphkit page in headless Chromium and measure it (the browser test and the page benchmark).

:func:`probe_page` copies the page with two inline scripts added (a collector of script errors
at the top, a probe at the end that runs on ``load``), loads the copy with ``chromium
--headless --dump-dom`` at a given window width, and reads the probe's JSON back out of the
dumped DOM: page and viewport widths, per drawn region its node counts, SVGs and node boxes,
resource requests made, timings (``performance`` navigation and paint entries), script errors,
and the page's script at work (measured after the rest): the details panel's text after a click
on the first node box, and the regions left visible by the op-type filter set to its last op.
Chromium's own log (``--enable-logging=stderr``) is scanned for console errors and refused
requests. Nothing here is needed to write a page; it needs a chromium binary (:func:`find_chromium`).
"""

from __future__ import annotations

import json
import re
import shutil
import subprocess
import tempfile
import time
from pathlib import Path

_ERRORS = (
    "<script>window.__probeErrors=[];"
    "window.addEventListener('error',function(e){window.__probeErrors.push(String(e.message))});</script>"
)
_PROBE = r"""<script>
window.addEventListener('load', function () {
  var nav = performance.getEntriesByType('navigation')[0] || {};
  var fcp = performance.getEntriesByName('first-contentful-paint')[0];
  var out = {
    scroll_width: document.documentElement.scrollWidth,
    client_width: document.documentElement.clientWidth,
    regions: Array.prototype.map.call(document.querySelectorAll('details.region'), function (r) {
      return {a: +r.getAttribute('data-nodes-a'), b: +r.getAttribute('data-nodes-b'),
              svgs: r.querySelectorAll('svg.region-graph').length, boxes: r.querySelectorAll('g.node').length};
    }),
    svgs: document.querySelectorAll('svg.region-graph').length,
    resources: performance.getEntriesByType('resource').map(function (e) { return e.name; }),
    dom_content_loaded_ms: nav.domContentLoadedEventEnd || null,
    load_ms: performance.now(),
    first_contentful_paint_ms: fcp ? fcp.startTime : null,
    errors: window.__probeErrors
  };
  // the page's script at work: click the first node box, then filter by the last op type
  var node = document.querySelector('g.node'), panel = document.getElementById('details');
  if (node && panel) {
    node.dispatchEvent(new MouseEvent('click', {bubbles: true}));
    out.clicked = node.getAttribute('data-id');
    out.details = panel.hidden ? null : panel.textContent;
  }
  var select = document.getElementById('filter-op');
  if (select && select.options.length > 1) {
    select.value = select.options[select.options.length - 1].value;
    select.dispatchEvent(new Event('change'));
    out.filter_op = select.value;
    out.shown_after_filter = Array.prototype.filter.call(document.querySelectorAll('[data-ops]'),
      function (r) { return !r.hidden; }).map(function (r) { return r.getAttribute('data-ops'); });
  }
  var pre = document.createElement('pre');
  pre.id = 'probe-result';
  pre.textContent = JSON.stringify(out);
  document.body.appendChild(pre);
});
</script>"""
_RESULT = re.compile(r'<pre id="probe-result">(.*?)</pre>', re.S)
# Chromium logs every console message as ``INFO:CONSOLE(line)] "text"``; a page of ours logs none
_CONSOLE_PROBLEM = re.compile(r":CONSOLE[:(]|Refused to|Content Security Policy|Uncaught")


def find_chromium() -> str | None:
    """The path of a chromium (or Chrome) binary on PATH, else None."""
    for name in ("chromium", "chromium-browser", "google-chrome", "google-chrome-stable", "chrome"):
        found = shutil.which(name)
        if found:
            return found
    return None


def probe_page(page: str | Path, width: int = 1280, height: int = 900, timeout: float = 120) -> dict:
    """Load ``page`` in headless Chromium at ``width`` px; the probe's measurements plus
    ``console_problems`` (log lines with console errors or refused requests) and ``wall_s``."""
    browser = find_chromium()
    if browser is None:
        raise FileNotFoundError("no chromium binary on PATH")
    text = Path(page).read_text(encoding="utf-8")
    text = text.replace('<meta charset="utf-8">', '<meta charset="utf-8">' + _ERRORS, 1)
    text = text.replace("</body></html>", _PROBE + "</body></html>", 1)
    with tempfile.TemporaryDirectory(prefix="gk-chromium-") as tmp:
        probed = Path(tmp) / "page.html"
        probed.write_text(text, encoding="utf-8")
        command = [
            browser,
            "--headless",
            "--no-sandbox",
            "--disable-gpu",
            "--disable-background-networking",
            "--no-first-run",
            "--disable-extensions",
            f"--user-data-dir={Path(tmp) / 'profile'}",
            f"--window-size={width},{height}",
            "--enable-logging=stderr",
            "--v=0",
            "--dump-dom",
            probed.as_uri(),
        ]
        start = time.perf_counter()
        done = subprocess.run(command, capture_output=True, text=True, timeout=timeout)
        wall = time.perf_counter() - start
    found = _RESULT.search(done.stdout)
    if done.returncode != 0 or found is None:
        raise RuntimeError(f"chromium exit {done.returncode}, no probe result: {done.stderr[-1500:]}")
    result = json.loads(found[1].replace("&quot;", '"').replace("&lt;", "<").replace("&gt;", ">").replace("&amp;", "&"))
    result["console_problems"] = [line for line in done.stderr.splitlines() if _CONSOLE_PROBLEM.search(line)]
    result["wall_s"] = round(wall, 3)
    return result
