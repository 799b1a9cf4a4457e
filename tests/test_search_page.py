"""The search page at `/`, driven in a real headless Chromium (Debian's, through Selenium): a query shows the
expected top result with its words highlighted, a filter narrows the results, a click opens the passage, and the
test saves a screenshot of the page as a user sees it (tests/output/search-page.png)."""

from __future__ import annotations

import os
import re
import shutil
from collections.abc import Iterator
from pathlib import Path

import pytest

from searchbert import Index
from searchbert.server.app import STATIC, create_app
from searchbert.service import Service

from .conftest import write_tree
from .test_server import running

SHOTS = Path(__file__).resolve().parent / "output"
FILES = {
    "guides/keys.md": "# Rotating keys\n\nTo rotate the signing keys, run `vault rotate` and restart the API.\n",
    "guides/install.md": "# Installing\n\nInstall the package with pip and start the service.\n",
    "notes/keys.md": "# House keys\n\nThe spare house keys hang on a hook in the hallway.\n",
    "notes/volcano.md": "# Volcanoes\n\nLava and ash pour from an erupting volcano.\n",
}


def _browser() -> tuple[str, str] | None:
    chromium = shutil.which("chromium") or shutil.which("chromium-browser")
    driver = shutil.which("chromedriver")
    return (chromium, driver) if chromium and driver else None


def test_the_page_loads_nothing_from_elsewhere() -> None:
    """It must work offline: no CDN, no remote font or script."""
    for name in ("index.html", "app.js", "style.css"):
        text = (STATIC / name).read_text()
        assert not re.findall(r"(?:src|href)=[\"']?(?:https?:)?//", text), name
        assert "@import" not in text and 'fetch("http' not in text


@pytest.fixture
def page_url(tmp_path: Path, minilm) -> Iterator[str]:  # type: ignore[no-untyped-def]
    docs = write_tree(tmp_path / "docs", FILES)
    with Index.create(tmp_path / "ix", encoder=minilm) as index:
        index.add([docs])
    service = Service(tmp_path / "ix", encoder=minilm)
    with running(create_app(service)) as url:
        yield url
    service.close()


@pytest.fixture
def browser() -> Iterator[object]:
    found = _browser()
    if found is None:
        if os.environ.get("SEARCHBERT_REQUIRE_BROWSER"):
            pytest.fail("chromium and chromedriver are needed (make test installs them: apt-get install chromium "
                        "chromium-driver)")  # fmt: skip
        pytest.skip("no chromium/chromedriver on this machine (make test installs them)")
    from selenium import webdriver
    from selenium.webdriver.chrome.service import Service as Driver

    options = webdriver.ChromeOptions()
    options.binary_location = found[0]
    for flag in ("--headless=new", "--no-sandbox", "--disable-dev-shm-usage", "--window-size=1200,900"):
        options.add_argument(flag)
    driver = webdriver.Chrome(service=Driver(executable_path=found[1]), options=options)
    driver.set_page_load_timeout(30)
    yield driver
    driver.quit()


@pytest.mark.model
def test_search_filter_and_open_a_passage_in_a_real_browser(page_url: str, browser) -> None:  # type: ignore[no-untyped-def]
    from selenium.common.exceptions import StaleElementReferenceException
    from selenium.webdriver.common.by import By
    from selenium.webdriver.common.keys import Keys
    from selenium.webdriver.support import expected_conditions as seen
    from selenium.webdriver.support.ui import WebDriverWait

    # the page replaces its results when an answer comes: an element read as it does so is asked about again
    wait = WebDriverWait(browser, 30, ignored_exceptions=(StaleElementReferenceException,))
    browser.get(page_url)
    wait.until(seen.text_to_be_present_in_element((By.ID, "status"), "4 documents"))
    box = browser.find_element(By.ID, "q")
    box.send_keys("how do I rotate the signing keys", Keys.ENTER)
    wait.until(seen.text_to_be_present_in_element((By.ID, "summary"), "results"))
    hits = browser.find_elements(By.CSS_SELECTOR, ".hit")
    assert "guides/keys.md:1-3" in hits[0].find_element(By.CSS_SELECTOR, ".where").text
    marked = [m.text.lower() for m in hits[0].find_elements(By.CSS_SELECTOR, ".snippet mark")]
    assert {"rotate", "signing", "keys"} <= set(marked)
    shown = hits[0].find_element(By.CSS_SELECTOR, ".snippet").text  # as a reader sees it: no Markdown marks
    assert shown.startswith("Rotating keys To rotate") and "run vault rotate and" in shown, shown
    SHOTS.mkdir(exist_ok=True)
    shot = SHOTS / "search-page.png"
    assert browser.save_screenshot(str(shot))  # the results as a user sees them
    assert shot.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n" and shot.stat().st_size > 10_000

    browser.find_element(By.CSS_SELECTOR, "#filters summary").click()
    browser.find_element(By.ID, "path").send_keys("notes/*")
    browser.find_element(By.CSS_SELECTOR, "button[type=submit]").click()
    # the notes are about house keys, not signing keys: no good match, and the weak hits when asked for
    wait.until(seen.text_to_be_present_in_element((By.ID, "summary"), "No good match"))
    assert browser.find_elements(By.CSS_SELECTOR, ".hit") == []
    browser.find_element(By.ID, "show-weak").click()
    wait.until(lambda d: d.find_elements(By.CSS_SELECTOR, ".hit .relevance"))
    wait.until(lambda d: all("/notes/" in e.text for e in d.find_elements(By.CSS_SELECTOR, ".hit .where")))
    filtered = browser.find_elements(By.CSS_SELECTOR, ".hit .where")
    assert filtered and "notes/keys.md" in filtered[0].text

    browser.find_elements(By.CSS_SELECTOR, ".hit")[0].click()
    wait.until(seen.visibility_of_element_located((By.ID, "passage")))
    assert "spare house keys" in browser.find_element(By.ID, "passage-text").text
    browser.find_element(By.ID, "close").click()
    wait.until(seen.invisibility_of_element_located((By.ID, "passage")))
