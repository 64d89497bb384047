"""The published book, built for real and opened in headless Chromium (Debian chromium + chromedriver)."""

import shutil
import subprocess
import sys
from pathlib import Path
from urllib.parse import unquote, urlparse

import pytest

pytestmark = pytest.mark.slow   # builds/opens the book or runs the command in subprocesses

ROOT = Path(__file__).resolve().parents[1]
# The results pages the book publishes: every page under results/ its table of contents lists (executed
# notebooks, and the provenance pages the runner writes).
RESULT_PAGES = [next(p for p in (ROOT / "book" / (stem + ".ipynb"), ROOT / "book" / (stem + ".md")) if p.exists())
                for stem in (line.split("file:")[1].strip()
                             for line in (ROOT / "book" / "_toc.yml").read_text().splitlines()
                             if "file: results/" in line)]


def figures_in(page: Path) -> int:
    """How many figures the executed notebook holds (0 for a markdown page)."""
    if page.suffix != ".ipynb":
        return 0
    import nbformat
    nb = nbformat.read(page, as_version=4)
    return sum("image/png" in o.get("data", {}) for c in nb.cells if c.cell_type == "code" for o in c.outputs)


def captions_in(page: Path) -> list[str]:
    """The figure captions the executed notebook declares (cell metadata mystnb.figure)."""
    if page.suffix != ".ipynb":
        return []
    import nbformat
    nb = nbformat.read(page, as_version=4)
    return [c.metadata["mystnb"]["figure"]["caption"] for c in nb.cells
            if c.cell_type == "code" and "figure" in c.metadata.get("mystnb", {})]


def test_every_figure_of_the_study_is_named_and_captioned():
    """Figures are numbered and say what to look at: every notebook cell that draws with kslottery.report.plots
    declares a MyST-NB figure with a unique name and a caption."""
    import nbformat

    names, missing = [], []
    for path in sorted((ROOT / "notebooks").glob("*.ipynb")):
        for i, cell in enumerate(nbformat.read(path, as_version=4).cells):
            if cell.cell_type == "code" and "plots." in cell.source:
                figure = cell.metadata.get("mystnb", {}).get("figure", {})
                if not figure.get("caption") or not figure.get("name"):
                    missing.append(f"{path.name} cell {i}")
                names.append(figure.get("name"))
    assert not missing, f"figure cells without a caption and name: {missing}"
    assert len(names) == len(set(names)), "figure names repeat"


@pytest.fixture(scope="module")
def html(tmp_path_factory) -> Path:
    out = tmp_path_factory.mktemp("book")
    jb = Path(sys.executable).with_name("jupyter-book")
    r = subprocess.run([str(jb), "build", str(ROOT / "book"), "--path-output", str(out), "-W", "-n", "--keep-going"],
                       capture_output=True, text=True, timeout=600)
    assert r.returncode == 0, r.stdout[-3000:] + r.stderr[-3000:]
    return out / "_build" / "html"


@pytest.fixture(scope="module")
def browser():
    from selenium import webdriver
    from selenium.webdriver.chrome.service import Service

    chromium, driver = shutil.which("chromium"), shutil.which("chromedriver")
    if not chromium or not driver:
        pytest.fail("Chromium is not installed: apt-get install -y chromium chromium-driver (make test does this)")
    opts = webdriver.ChromeOptions()
    opts.binary_location = chromium
    for flag in ("--headless", "--no-sandbox", "--disable-gpu", "--disable-quic", "--no-first-run",
                 "--disable-background-networking", "--disable-component-update", "--disable-sync",
                 "--window-size=1280,1600"):
        opts.add_argument(flag)
    b = webdriver.Chrome(service=Service(driver), options=opts)
    b.set_page_load_timeout(60)
    yield b
    b.quit()


def page_of(html: Path, notebook: Path) -> Path:
    return html / notebook.relative_to(ROOT / "book").with_suffix(".html")


def test_every_results_page_renders_with_its_figures(html, browser):
    assert RESULT_PAGES, "no executed notebooks under book/results"
    assert sum(figures_in(p) for p in RESULT_PAGES) > 20   # the study's figures are part of what is checked
    for nb in RESULT_PAGES:
        page = page_of(html, nb)
        browser.get(page.as_uri())
        h1 = browser.execute_script("const h = document.querySelector('main h1'); return h ? h.textContent : ''")
        assert h1.strip(), f"{page.name} has no title"
        images = browser.execute_script(
            "return Array.from(document.querySelectorAll('main img')).map(i => [i.src, i.complete && i.naturalWidth > 0])")
        assert len(images) >= figures_in(nb), f"{page.name} shows {len(images)} of its {figures_in(nb)} figures"
        shown = browser.execute_script(
            "return Array.from(document.querySelectorAll('main figure figcaption')).map(f => f.innerText)")
        shown = [c.translate(str.maketrans("\u2018\u2019\u201c\u201d", "''\"\"")) for c in shown]   # smart quotes
        for caption in captions_in(nb):   # numbered ("Fig. 3 ...") and carrying the notebook's caption
            assert any(c.startswith("Fig.") and caption.split(". ")[0] in c for c in shown), \
                f"{page.name}: figure caption missing: {caption[:60]}"
        broken = [src for src, ok in images if not ok]
        assert not broken, f"{page.name}: images that did not load: {broken}"
        text = browser.execute_script("return document.querySelector('main').innerText")
        assert "Traceback (most recent call last)" not in text and "Error:" not in text, f"{page.name} shows an error"


def test_results_pages_fit_the_column_and_leak_no_markup(html, browser):
    """No table or figure is wider than the content column, and no text from the data (a token such as
    '<s>' or '<bos>') was parsed as an HTML element."""
    wide, leaks = [], []
    for nb in RESULT_PAGES:
        page = page_of(html, nb)
        browser.get(page.as_uri())
        column, items = browser.execute_script("""
            const article = document.querySelector('main article') || document.querySelector('main');
            const col = article.getBoundingClientRect().width;
            const items = Array.from(article.querySelectorAll('table, img')).map(
                e => [e.tagName, Math.round(e.getBoundingClientRect().width)]);
            return [col, items];""")
        wide += [f"{page.name}: {tag} {w}px in a {column:.0f}px column" for tag, w in items if w > column + 1]
        unknown = browser.execute_script("""
            return Array.from(document.querySelectorAll('main *')).filter(
                e => e instanceof HTMLUnknownElement || ['S', 'STRIKE'].includes(e.tagName)).map(
                    e => e.outerHTML.slice(0, 80));""")
        leaks += [f"{page.name}: {u}" for u in unknown]
    assert not wide, "\n".join(wide)
    assert not leaks, "\n".join(leaks)


def test_no_internal_link_is_broken(html, browser):
    broken = []
    for page in sorted(html.rglob("*.html")):
        if "_static" in page.parts or "_sources" in page.parts:
            continue
        browser.get(page.as_uri())
        for href in browser.execute_script("return Array.from(document.querySelectorAll('a[href]')).map(a => a.href)"):
            url = urlparse(href)
            if url.scheme != "file":
                continue
            target = Path(unquote(url.path))
            if not target.exists():
                broken.append(f"{page.relative_to(html)} -> {href}")
            elif url.fragment and target.suffix == ".html" and f'id="{url.fragment}"' not in target.read_text():
                broken.append(f"{page.relative_to(html)} -> {href} (no anchor)")
    assert not broken, "\n".join(broken)


def test_math_renders_offline(html, browser):
    browser.get((html / "method.html").as_uri())
    import time
    for _ in range(50):
        if browser.execute_script("return document.querySelectorAll('mjx-container').length") > 0:
            break
        time.sleep(0.2)
    assert browser.execute_script("return document.querySelectorAll('mjx-container').length") > 0
    src = browser.execute_script("return Array.from(document.scripts).map(s => s.src).filter(s => s.includes('mathjax'))")
    assert src and all(s.startswith("file://") for s in src)
