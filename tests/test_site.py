"""The website as a learner sees it: every notebook page in headless Chromium, with its title, figures and links.

Needs the built site (`make docs`) and Chromium (Debian's `chromium`); without them the test is skipped, except
in CI (CI=true), where it fails: CI must build and check the site.
"""
import functools
import http.server
import os
import shutil
import threading
import urllib.parse
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]
SITE = ROOT / "docs" / "_build" / "html"
SHOTS = ROOT / "outputs" / "screenshots"
CHROMIUM = shutil.which("chromium") or shutil.which("chromium-browser") or shutil.which("google-chrome")
NOTEBOOKS = sorted(p.relative_to(ROOT / "notebooks").with_suffix(".html")
                   for p in (ROOT / "notebooks").rglob("[0-9]*.ipynb") if ".ipynb_checkpoints" not in p.parts)


def _served(path: str) -> bool:
    """True when the site has a file for this path (a folder counts when it has an index.html)."""
    target = SITE / path.lstrip("/")
    return target.is_file() or (target / "index.html").is_file()


def _missing(reason: str):
    if os.environ.get("CI") == "true":
        pytest.fail(f"{reason}: CI must build the site (make docs) and install chromium (.ci/run does both).")
    pytest.skip(reason)


@pytest.fixture(scope="module")
def site_url():
    if not (SITE / "index.html").exists():
        _missing("the site is not built (run make docs)")
    class Quiet(http.server.SimpleHTTPRequestHandler):
        def log_message(self, *args):
            pass

    handler = functools.partial(Quiet, directory=str(SITE))
    server = http.server.ThreadingHTTPServer(("127.0.0.1", 0), handler)
    threading.Thread(target=server.serve_forever, daemon=True).start()
    yield f"http://127.0.0.1:{server.server_address[1]}/"
    server.shutdown()


@pytest.fixture(scope="module")
def browser():
    if CHROMIUM is None:
        _missing("chromium is not installed (apt-get install chromium)")
    playwright_api = pytest.importorskip("playwright.sync_api")
    with playwright_api.sync_playwright() as p:
        browser = p.chromium.launch(executable_path=CHROMIUM, args=[
            "--no-sandbox", "--disable-gpu", "--disable-quic", "--no-first-run", "--disable-background-networking",
            "--disable-component-update", "--disable-sync"])
        yield browser
        browser.close()


def test_every_notebook_has_a_page():
    assert len(NOTEBOOKS) >= 8
    missing = [str(page) for page in NOTEBOOKS if not (SITE / "notebooks" / page).exists()]
    if not SITE.exists():
        _missing("the site is not built (run make docs)")
    assert missing == [], f"notebooks without a page: {missing}"


@pytest.mark.parametrize("page", NOTEBOOKS, ids=str)
def test_notebook_page_renders(site_url, browser, page):
    tab = browser.new_page(viewport={"width": 1280, "height": 900})
    url = urllib.parse.urljoin(site_url, f"notebooks/{page.as_posix()}")
    response = tab.goto(url, wait_until="load")
    assert response is not None and response.ok, f"{url} answered {response and response.status}"
    heading = tab.locator("article h1").first.inner_text()
    assert heading.strip(), "the page has no title"
    assert tab.title().strip()

    tab.wait_for_function("Array.from(document.images).every(img => img.complete)")
    images = tab.evaluate("""Array.from(document.querySelectorAll('article img')).map(img => ({
        src: img.currentSrc || img.src, width: img.naturalWidth}))""")
    local = [img for img in images if img["src"].startswith(site_url) or img["src"].startswith("data:")]
    broken = [img["src"][:80] for img in local if img["width"] == 0]
    assert broken == [], f"figures that did not load: {broken}"
    assert len(local) >= 1 or "solutions" in page.parts, "a notebook page with no figure"

    links = tab.evaluate("Array.from(document.querySelectorAll('a[href]')).map(a => a.href)")
    internal = {link.split("#")[0] for link in links if link.startswith(site_url)}
    dead = [link for link in sorted(internal) if not _served(urllib.parse.unquote(link[len(site_url):]))]
    assert dead == [], f"broken internal links: {dead}"

    # Notebook code is at most 120 characters wide (ruff's line-length); the page shows such lines whole, without a
    # horizontal scrollbar (docs/_static/course.css), on a 1280-pixel screen.
    cells = tab.evaluate("""Array.from(document.querySelectorAll('div.cell_input pre')).map(pre => ({
        scroll: pre.scrollWidth, width: pre.clientWidth,
        longest: Math.max(...pre.innerText.split('\\n').map(line => line.length))}))""")
    assert cells, "the page shows no code cell"
    scrolling = [cell for cell in cells if cell["scroll"] > cell["width"]]
    assert scrolling == [], f"code cells with a horizontal scrollbar at 1280 px (longest line, pixels): {scrolling}"

    SHOTS.mkdir(parents=True, exist_ok=True)
    tab.screenshot(path=str(SHOTS / f"{page.as_posix().replace('/', '_')}.png"), full_page=False)
    tab.close()
