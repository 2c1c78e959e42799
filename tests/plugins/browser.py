"""A real headless browser for the console's end-to-end tests: Debian's Chromium, driven by
Selenium through Debian's chromedriver (named by path, so Selenium Manager downloads nothing),
one browser for the whole session. ``scripts/ensure-services`` installs both.

A test that uses ``browser`` is marked ``browser``; without Chromium it fails naming it, or is
skipped with ``CALLBRIDGE_TEST_SKIP_MISSING=1``, as for the other services.
"""

from __future__ import annotations

import os
import pathlib
import shutil
from collections.abc import Iterator

import pytest

from tests.plugins.services import missing_service

CHROMIUM = "/usr/bin/chromium"
CHROMEDRIVER = "/usr/bin/chromedriver"
# Where the screenshots of the main pages go as well, when set (scripts/screenshots sets it).
SCREENSHOTS = "CALLBRIDGE_SCREENSHOTS"
WINDOW = (1360, 900)


def pytest_configure(config: pytest.Config) -> None:
    config.addinivalue_line("markers", "browser: needs Debian's Chromium and chromedriver")


def pytest_itemcollected(item: pytest.Item) -> None:
    if "browser" in getattr(item, "fixturenames", ()):
        item.add_marker("browser")


@pytest.fixture(scope="session")
def browser(tmp_path_factory: pytest.TempPathFactory) -> Iterator:
    from selenium import webdriver
    from selenium.webdriver.chrome.service import Service

    missing = [path for path in (CHROMIUM, CHROMEDRIVER) if not os.access(path, os.X_OK)]
    if missing:
        missing_service(
            f"the browser tests need {' and '.join(missing)} (Debian's chromium, chromium-driver)"
        )
    options = webdriver.ChromeOptions()
    options.binary_location = CHROMIUM
    for argument in (
        "--headless=new",
        "--no-sandbox",  # as root, Chromium has no sandbox to start
        "--disable-gpu",
        "--disable-dev-shm-usage",
        "--disable-background-networking",
        "--disable-component-update",
        "--disable-sync",
        "--no-first-run",
        "--no-default-browser-check",
        f"--window-size={WINDOW[0]},{WINDOW[1]}",
        f"--user-data-dir={tmp_path_factory.mktemp('chromium')}",
    ):
        options.add_argument(argument)
    driver = webdriver.Chrome(service=Service(CHROMEDRIVER), options=options)
    driver.set_page_load_timeout(60)
    yield driver
    driver.quit()


def screenshot(driver, name: str, folder: pathlib.Path) -> pathlib.Path:
    """Save the page as ``name``.png in ``folder``, and in ``$CALLBRIDGE_SCREENSHOTS`` when set;
    the page's whole height, so that nothing below the fold is left out."""
    height = driver.execute_script("return document.documentElement.scrollHeight")
    driver.set_window_size(WINDOW[0], max(WINDOW[1], min(height, 4000)))
    path = folder / f"console-{name}.png"
    assert driver.save_screenshot(str(path)), f"no screenshot of {name}"
    driver.set_window_size(*WINDOW)
    if target := os.environ.get(SCREENSHOTS):
        shutil.copy(path, pathlib.Path(target) / path.name)
    return path
