"""The real thing: `streamlit run app.py` on a free localhost port, driven by headless Chromium.

Uses Debian's ``chromium`` and ``chromium-driver`` (``.ci/run`` installs them; no browser
downloads) and the packaged MiniLM on the sample corpus (plus two hostile files: an FAQ and a text whose
entries are Markdown and HTML meant to show remote images, links and headings). Saves ``reports/ui-search.png``.
"""

from __future__ import annotations

import os
import shutil
import socket
import subprocess
import sys
import tempfile
import time
import urllib.request
from collections.abc import Iterator
from pathlib import Path

import pytest

from jasper_rag.config import Settings
from jasper_rag.encoder import load_encoder
from jasper_rag.ingest.pipeline import ingest_paths
from jasper_rag.ingest.sample_build import SAMPLE_DIR
from jasper_rag.store import Store
from jasper_rag.weights import WeightsNotInstalledError

pytestmark = pytest.mark.integration

ROOT = Path(__file__).resolve().parents[1]
SCREENSHOT = ROOT / "reports" / "ui-search.png"
CHROMIUM = shutil.which("chromium")
CHROMEDRIVER = shutil.which("chromedriver")
MODEL = "minilm-l6"
QUERY = "how are the reduced-dimension heads trained?"
START_TIMEOUT = 180  # seconds for the server to answer its health check (imports torch on a busy machine)
RESULT_TIMEOUT = 120
HOSTILE = (
    "evil intro\n\n![x](http://evil.example/x.png)\n\n[click here](http://evil.example/phish)\n\n# evil heading\n\n"
    "<img src=http://evil.example/y.png>\n\n<script>document.title='pwned'</script>\n\nwww.evil.example end"
)
CHROME_FLAGS = (
    "--headless=new",
    "--no-sandbox",
    "--disable-gpu",
    "--disable-quic",
    "--no-first-run",
    "--disable-background-networking",
    "--disable-component-update",
    "--disable-sync",
    "--disable-dev-shm-usage",
    "--window-size=1280,1500",
)

if CHROMIUM is None or CHROMEDRIVER is None:
    pytest.skip(
        "needs Debian's chromium and chromium-driver (`apt-get install -y chromium chromium-driver`; .ci/run does it)",
        allow_module_level=True,
    )
webdriver = pytest.importorskip("selenium.webdriver", reason="selenium is in requirements-base.txt")


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


def wait_healthy(url: str, server: subprocess.Popen, timeout: float) -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if server.poll() is not None:
            raise AssertionError(f"streamlit exited with {server.returncode}")
        try:
            with urllib.request.urlopen(f"{url}/_stcore/health", timeout=5) as response:
                if response.read().strip() == b"ok":
                    return
        except OSError:
            time.sleep(1)
    raise AssertionError(f"streamlit did not answer on {url} within {timeout:.0f} s")


@pytest.fixture(scope="module")
def app_url(tmp_path_factory: pytest.TempPathFactory) -> Iterator[str]:
    """The app on a free port, over the sample corpus ingested with MiniLM into a tmp store."""
    root = tmp_path_factory.mktemp("browser")
    env = {
        **os.environ,
        "JASPER_MODEL": MODEL,
        "JASPER_INDEXES_DIR": str(root / "indexes"),
        "JASPER_UPLOADS_DIR": str(root / "uploads"),
        "JASPER_REPORTS_DIR": str(root / "reports"),
    }
    settings = Settings(model=MODEL, indexes_dir=root / "indexes")
    try:
        encoder = load_encoder(MODEL)
    except WeightsNotInstalledError as err:
        pytest.skip(f"packaged weights missing: {err}")
    hostile = root / "hostile"
    hostile.mkdir()
    quoted = HOSTILE.replace('"', '""')
    (hostile / "evil-faq.csv").write_text(f'question,answer\n"what is evil {quoted}","evil answer {quoted}"\n')
    (hostile / "evil ![x](x.png) # h.txt").write_text(HOSTILE)
    store = Store.open(settings)
    try:
        ingest_paths([SAMPLE_DIR, hostile], encoder, store, settings, progress=False)
    finally:
        store.close()
    port = free_port()
    url = f"http://127.0.0.1:{port}"
    command = [sys.executable, "-m", "streamlit", "run", str(ROOT / "app.py"), "--server.port", str(port)]
    command += ["--server.address", "127.0.0.1", "--server.headless", "true", "--browser.gatherUsageStats", "false"]
    log = (root / "streamlit.log").open("wb")
    server = subprocess.Popen(command, cwd=ROOT, env=env, stdout=log, stderr=subprocess.STDOUT)
    try:
        wait_healthy(url, server, START_TIMEOUT)
        yield url
    finally:
        server.terminate()
        try:
            server.wait(timeout=20)
        except subprocess.TimeoutExpired:
            server.kill()
        log.close()


@pytest.fixture
def browser(tmp_path: Path) -> Iterator[webdriver.Chrome]:
    from selenium.webdriver.chrome.service import Service

    options = webdriver.ChromeOptions()
    options.binary_location = CHROMIUM
    for flag in (*CHROME_FLAGS, f"--user-data-dir={tmp_path / 'profile'}"):
        options.add_argument(flag)
    driver = webdriver.Chrome(service=Service(executable_path=CHROMEDRIVER), options=options)
    try:
        yield driver
    finally:
        driver.quit()


def save_screenshot(driver, path: Path) -> None:
    """Write the screenshot atomically (temp file, then rename)."""
    path.parent.mkdir(parents=True, exist_ok=True)
    handle, temp = tempfile.mkstemp(dir=path.parent, suffix=".png")
    os.close(handle)
    try:
        assert driver.save_screenshot(temp)
        os.replace(temp, path)
    finally:
        Path(temp).unlink(missing_ok=True)


def test_a_search_in_the_browser_shows_result_cards(app_url: str, browser) -> None:
    from selenium.webdriver.common.by import By
    from selenium.webdriver.common.keys import Keys
    from selenium.webdriver.support import expected_conditions as ready
    from selenium.webdriver.support.ui import WebDriverWait

    browser.get(app_url)
    box = WebDriverWait(browser, START_TIMEOUT).until(
        ready.element_to_be_clickable((By.CSS_SELECTOR, 'input[aria-label="Search"]'))
    )
    box.send_keys(QUERY, Keys.ENTER)
    WebDriverWait(browser, RESULT_TIMEOUT).until(ready.presence_of_element_located((By.CSS_SELECTOR, ".jr-stats")))
    # the cards arrive one by one after the stats line: wait for all ten
    WebDriverWait(browser, RESULT_TIMEOUT).until(
        lambda page: len(page.find_elements(By.CSS_SELECTOR, ".jr-card")) >= 10
    )
    cards = browser.find_elements(By.CSS_SELECTOR, ".jr-card")
    assert len(cards) == 10
    titles = [card.find_element(By.CSS_SELECTOR, ".jr-title").text for card in cards]
    assert titles[0] in {"matryoshka.rst", "jasper-overview.pdf", "distillation.md"}, titles
    scores = [float(card.find_element(By.CSS_SELECTOR, ".jr-score").text) for card in cards]
    assert scores == sorted(scores, reverse=True) and 0 < scores[0] <= 1
    assert browser.find_elements(By.CSS_SELECTOR, ".jr-card mark")  # query terms highlighted
    assert "results for" in browser.find_element(By.CSS_SELECTOR, ".jr-stats").text
    WebDriverWait(browser, RESULT_TIMEOUT).until(  # the rerun has finished: no "running" indicator
        lambda driver: not driver.find_elements(By.CSS_SELECTOR, '[data-testid="stStatusWidget"]')
    )
    browser.execute_script("window.scrollTo(0, 0)")
    save_screenshot(browser, SCREENSHOT)


def test_hostile_entries_render_as_plain_text_in_the_browser(app_url: str, browser) -> None:
    from selenium.webdriver.common.by import By
    from selenium.webdriver.common.keys import Keys
    from selenium.webdriver.support import expected_conditions as ready
    from selenium.webdriver.support.ui import WebDriverWait

    browser.get(app_url)
    box = WebDriverWait(browser, START_TIMEOUT).until(
        ready.element_to_be_clickable((By.CSS_SELECTOR, 'input[aria-label="Search"]'))
    )
    box.send_keys("what is evil click here evil heading", Keys.ENTER)
    WebDriverWait(browser, RESULT_TIMEOUT).until(ready.presence_of_element_located((By.CSS_SELECTOR, ".jr-stats")))
    WebDriverWait(browser, RESULT_TIMEOUT).until(
        lambda driver: not driver.find_elements(By.CSS_SELECTOR, '[data-testid="stStatusWidget"]')
    )
    page = browser.find_element(By.CSS_SELECTOR, '[data-testid="stMain"], .main, body')
    scripts = [element.get_attribute("innerHTML") or "" for element in browser.find_elements(By.CSS_SELECTOR, "script")]
    assert not any("pwned" in script for script in scripts)
    assert not browser.find_elements(By.CSS_SELECTOR, 'img[src*="evil"], a[href*="evil"]')
    headings = [element.text for element in browser.find_elements(By.CSS_SELECTOR, "h1, h2, h3, h4, h5, h6")]
    assert not any("evil" in heading for heading in headings), headings
    assert browser.title != "pwned"
    text = page.text
    assert "![x](http://evil.example/x.png)" in text and "[click here](http://evil.example/phish)" in text
    assert "<img src=http://evil.example/y.png>" in text and "# evil heading" in text  # shown, as typed
