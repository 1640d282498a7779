"""The report in a real browser (headless Chromium): images load, no script runs, the scorecard opens it.

Needs Debian's `chromium` and `chromium-driver` (`.ci/run` installs them, as it installs PostgreSQL).
"""

from __future__ import annotations

import os
import shutil
from collections.abc import Iterator
from pathlib import Path

import pytest

from stages.report import build_report
from tests.test_report import _inputs

WIDTH, HEIGHT = 1280, 800
ATTACK = "<script>window.__ran = 1</script><img src=x onerror='window.__ran = 2'>"


@pytest.fixture(scope="module")
def browser() -> Iterator:
    chromium, driver = shutil.which("chromium"), shutil.which("chromedriver")
    if not (chromium and driver):
        if os.environ.get("CI"):
            pytest.fail("Chromium is not installed; .ci/run installs the Debian packages chromium and chromium-driver")
        pytest.skip(
            "Chromium (Debian packages chromium, chromium-driver) not installed here; CI installs it and runs this"
        )
    from selenium import webdriver
    from selenium.webdriver.chrome.service import Service

    options = webdriver.ChromeOptions()
    options.binary_location = chromium
    for arg in (
        "--headless=new",
        "--no-sandbox",
        "--disable-gpu",
        "--disable-dev-shm-usage",
        f"--window-size={WIDTH},{HEIGHT}",
    ):
        options.add_argument(arg)
    session = webdriver.Chrome(service=Service(driver), options=options)
    try:
        yield session
    finally:
        session.quit()


def _open(browser, tmp_path: Path, html: str, name: str):
    page = tmp_path / name
    page.write_text(html, encoding="utf-8")
    browser.get(page.as_uri())
    return browser


def test_the_detector_sees_a_script_that_runs(browser, tmp_path: Path) -> None:
    """The check below could fail: the same review text unescaped does run."""
    b = _open(browser, tmp_path, f"<!doctype html><html><body>{ATTACK}</body></html>", "raw.html")
    assert b.execute_script("return window.__ran") in (1, 2)


def test_report_in_chromium_images_load_no_script_runs_scorecard_first(browser, tmp_path: Path) -> None:
    data = _inputs()
    data["texts"] = {k: v + ATTACK for k, v in data["texts"].items()}
    b = _open(browser, tmp_path, build_report("imdb", data), "report.html")
    assert b.execute_script("return window.__ran") is None
    assert b.execute_script("return document.scripts.length") == 0
    assert "window.__ran = 1" in b.find_element("css selector", ".review").text  # shown as text
    images = b.execute_script("return Array.from(document.images).map(i => [i.alt, i.complete && i.naturalWidth > 0])")
    assert len(images) >= 8 and all(ok for _, ok in images), images
    viewport = b.execute_script("return window.innerHeight")
    heading = b.find_element("xpath", "//h2[text()='Scorecard']")
    verdict = b.find_element("id", "verdict")
    table = heading.find_element("xpath", "following-sibling::table[1]")
    assert heading.rect["y"] < viewport and table.rect["y"] + table.rect["height"] <= viewport
    assert verdict.rect["y"] < viewport and verdict.text.startswith("The evidence favours")
