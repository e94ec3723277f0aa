"""The documentation site: built strictly, its internal links resolve, and its pages render in headless Chromium.

``make test`` builds ``site/`` (``make docs``) before pytest runs, and these tests reuse it; run alone,
they build the site into a temporary folder when ``site/`` is missing or older than its sources
(``mkdocs.yml``, ``docs/``, ``benchmarks/RESULTS.md`` and the package, from which the variant and CLI
pages are generated).
"""

import functools
import http.server
import io as bytes_io
import os
import subprocess
import sys
import threading
from html.parser import HTMLParser
from pathlib import Path
from urllib.parse import unquote, urlsplit

import numpy as np
import pytest

ROOT = Path(__file__).parents[1]
#: pages opened in the browser: (path under the site, the text of its H1)
PAGES = [("index.html", "aekit"), ("variants/vae/index.html", "vae: the variational autoencoder")]


def _sources():
    yield ROOT / "mkdocs.yml"
    yield ROOT / "benchmarks" / "RESULTS.md"
    for folder in (ROOT / "docs", ROOT / "src" / "aekit"):
        yield from (p for p in folder.rglob("*") if p.is_file() and "__pycache__" not in p.parts)


def _fresh(site: Path) -> bool:
    index = site / "index.html"
    if not index.exists():
        return False
    built = index.stat().st_mtime
    return all(p.stat().st_mtime <= built for p in _sources())


@pytest.fixture(scope="module")
def site(tmp_path_factory):
    built = ROOT / "site"
    if _fresh(built):
        return built
    out = tmp_path_factory.mktemp("site")
    proc = subprocess.run([sys.executable, "-m", "mkdocs", "build", "--strict", "--quiet", "-d", str(out)],
                          cwd=ROOT, capture_output=True, text=True, env={**os.environ, "NO_MKDOCS_2_WARNING": "1"})
    assert proc.returncode == 0, proc.stdout + proc.stderr
    return out


class Links(HTMLParser):
    """The links (href, src) and the element ids of a page."""

    def __init__(self):
        super().__init__()
        self.links, self.ids, self.h1 = [], set(), []
        self._in_h1 = False

    def handle_starttag(self, tag, attrs):
        attrs = dict(attrs)
        if "id" in attrs:
            self.ids.add(attrs["id"])
        for key in ("href", "src"):
            if attrs.get(key):
                self.links.append((tag, attrs[key]))
        self._in_h1 = self._in_h1 or tag == "h1"

    def handle_endtag(self, tag):
        if tag == "h1":
            self._in_h1 = False

    def handle_data(self, data):
        if self._in_h1:
            self.h1.append(data)


@functools.cache
def _parse(path: Path) -> Links:
    page = Links()
    page.feed(path.read_text())
    return page


def _pages(site):
    return sorted(site.rglob("*.html"))


def test_every_page_and_variant_is_built(site):
    from aekit import variants

    for name in variants.names():
        assert (site / "variants" / name / "index.html").exists(), name
    for page in ("getting-started", "cli", "benchmarks", "sklearn", "distributed", "uses/search", "api/metrics"):
        assert (site / page / "index.html").exists(), page


def test_every_variant_page_shows_a_figure(site):
    from aekit import variants

    for name in variants.names():
        page = _parse(site / "variants" / name / "index.html")
        assert ("img", f"../figures/{name}.svg") in page.links, name
        svg = (site / "variants" / "figures" / f"{name}.svg").read_text()
        # matplotlib's drawing: at least one plotted path or image inside the axes, not an empty frame
        assert svg.startswith("<?xml") and ("<path" in svg or "<image" in svg) and 'id="axes_1"' in svg, name


def test_internal_links_resolve(site):
    missing = []
    for html in _pages(site):
        for _tag, link in _parse(html).links:
            parts = urlsplit(link)
            if parts.scheme or link.startswith("//"):
                continue  # external (a link to another site, never a resource: see the next test)
            if not parts.path:
                target = html
            else:  # 404.html links from the site's root (it is served at any depth)
                base = site if parts.path.startswith("/") else html.parent
                target = (base / unquote(parts.path).lstrip("/")).resolve()
            if target.is_dir():
                target = target / "index.html"
            if not target.exists():
                missing.append(f"{html.relative_to(site)}: {link}")
            elif parts.fragment and target.suffix == ".html" and unquote(parts.fragment) not in _parse(target).ids:
                missing.append(f"{html.relative_to(site)}: {link} (no such anchor)")
    assert missing == []


def test_pages_load_nothing_from_the_network(site):
    external = [
        f"{html.relative_to(site)}: <{tag}> {link}"
        for html in _pages(site)
        for tag, link in _parse(html).links
        if tag != "a" and (urlsplit(link).scheme in ("http", "https") or link.startswith("//"))
    ]
    assert external == []


def test_the_generated_pages_hold_what_the_code_says(site):
    from aekit import variants
    from aekit.cli import build_parser

    cli = (site / "cli" / "index.html").read_text()
    parser = build_parser()
    commands = next(a for a in parser._actions if hasattr(a, "choices") and a.choices).choices
    for name in commands:
        assert f"aekit {name}" in cli, name
    assert "--ef-search" in cli and "--per-feature" in cli  # options of sub-commands, not only their names
    for spec in variants.specs():
        text = (site / "variants" / spec.name / "index.html").read_text()
        for field in __import__("dataclasses").fields(spec.options):
            assert "--" + field.name.replace("_", "-") in text, (spec.name, field.name)
    results = (site / "benchmarks" / "index.html").read_text()
    assert "0.812" in results and "disentanglement_mig.png" in results
    assert (site / "disentanglement_mig.png").exists()  # beside benchmarks.md, as beside RESULTS.md


# -- the pages in a real browser (Debian's chromium) ---------------------------------------------
class _Quiet(http.server.SimpleHTTPRequestHandler):
    def log_message(self, *args):
        pass


@pytest.fixture(scope="module")
def server(site):
    """The site served on the loopback interface, as a web server would (the search worker fetches its
    index, and directory URLs need an index.html server)."""
    httpd = http.server.ThreadingHTTPServer(("127.0.0.1", 0), functools.partial(_Quiet, directory=str(site)))
    thread = threading.Thread(target=httpd.serve_forever, daemon=True)
    thread.start()
    yield f"http://127.0.0.1:{httpd.server_address[1]}/"
    httpd.shutdown()
    httpd.server_close()


@pytest.mark.parametrize(("path", "h1"), PAGES)
def test_site_renders_in_headless_chromium(browser, server, path, h1):
    from PIL import Image
    page = browser.new_page(viewport={"width": 1280, "height": 900})
    errors, requests = [], []
    page.on("console", lambda m: errors.append(m.text) if m.type == "error" else None)
    page.on("pageerror", lambda e: errors.append(str(e)))
    page.on("request", lambda r: requests.append(r.url))
    try:
        page.goto(server + path.removesuffix("index.html"), wait_until="networkidle")
        assert errors == []
        assert all(u.startswith((server, "data:", "blob:")) for u in requests), requests
        assert page.inner_text("article h1").replace("¶", "").strip() == h1
        images = page.evaluate("Array.from(document.images).map(i => [i.src.slice(0, 40), i.complete, i.naturalWidth])")
        assert all(done and width > 0 for _, done, width in images), images
        if path.startswith("variants/"):  # its formulas, rendered at build time
            assert page.evaluate("document.querySelectorAll('article img.math').length") >= 3
        shot = page.screenshot(full_page=True)
    finally:
        page.close()
    img = np.asarray(Image.open(bytes_io.BytesIO(shot)).convert("L"), dtype=np.float64)
    assert img.shape[1] == 1280 and img.shape[0] >= 900
    assert img.std() > 20 and (img < 200).mean() > 0.02  # drawn, not blank or all white


def test_site_search_finds_a_variant(browser, server):
    """The search box works (its worker and index load from the site itself)."""
    page = browser.new_page(viewport={"width": 1280, "height": 900})
    errors = []
    page.on("console", lambda m: errors.append(m.text) if m.type == "error" else None)
    page.on("pageerror", lambda e: errors.append(str(e)))
    try:
        page.goto(server, wait_until="networkidle")
        box = "input[data-md-component=search-query]"
        page.click(box, timeout=10000)
        page.keyboard.type("contractive", delay=30)  # key by key, as a person types (the box reads keyup)
        page.wait_for_selector(".md-search-result__item", timeout=30000)  # the worker indexes first
        assert "contractive" in page.inner_text(".md-search-result").lower()
        assert errors == []
    finally:
        page.close()
