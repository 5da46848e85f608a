"""Headless Chromium (Debian's ``chromium`` and ``chromium-driver``) driven by Selenium: the
report's browser test and its screenshot for the docs (docs/images/report.png).

Usage: python -m tests.support.chromium screenshot REPORT.html OUT.png [--width 1300]
"""
from __future__ import annotations

import argparse
import contextlib
import os
import resource
import shutil
import sys
import tempfile
import time
from typing import Optional

CHROMIUM = os.environ.get("CHROMIUM", "/usr/bin/chromium")
CHROMEDRIVER = os.environ.get("CHROMEDRIVER", "/usr/bin/chromedriver")
#: Offline and as root: no sandbox, and none of Chromium's background connections.
FLAGS = ("--headless=new", "--no-sandbox", "--disable-gpu", "--disable-dev-shm-usage",
         "--disable-quic", "--no-first-run", "--disable-background-networking",
         "--disable-component-update", "--disable-sync", "--disable-extensions")


class BrowserUnavailable(Exception):
    """Chromium, its driver or Selenium is not installed here."""


def missing() -> Optional[str]:
    """Why no browser can be started here, or None."""
    for path, package in ((CHROMIUM, "chromium"), (CHROMEDRIVER, "chromium-driver")):
        if not (os.path.isfile(path) and os.access(path, os.X_OK)):
            return f"{path} not found (Debian package {package})"
    try:
        import selenium  # noqa: F401
    except ImportError:
        return "the selenium package is not installed (pip install '.[test]')"
    return None


@contextlib.contextmanager
def _address_space_lifted():
    """Chromium reserves far more address space than it uses: under a soft RLIMIT_AS (.ci/run
    sets 16 GiB) chromedriver dies at start with SIGTRAP. Its child starts with the hard limit."""
    soft, hard = resource.getrlimit(resource.RLIMIT_AS)
    resource.setrlimit(resource.RLIMIT_AS, (hard, hard))
    try:
        yield
    finally:
        resource.setrlimit(resource.RLIMIT_AS, (soft, hard))


class Chromium:
    """A headless Chromium with a fresh profile, its console captured."""

    def __init__(self, width: int = 1300, height: int = 900):
        why = missing()
        if why:
            raise BrowserUnavailable(why)
        from selenium import webdriver
        from selenium.webdriver.chrome.options import Options
        from selenium.webdriver.chrome.service import Service

        self.profile = tempfile.mkdtemp(prefix="datastore-mapper-chromium-")
        options = Options()
        options.binary_location = CHROMIUM
        for flag in FLAGS:
            options.add_argument(flag)
        options.add_argument(f"--user-data-dir={self.profile}")
        options.add_argument(f"--window-size={width},{height}")
        options.set_capability("goog:loggingPrefs", {"browser": "ALL"})
        with _address_space_lifted():
            self.driver = webdriver.Chrome(service=Service(CHROMEDRIVER), options=options)

    def open(self, path: str, timeout: float = 15.0) -> bool:
        """Load a local file; True once the report says it rendered (False at the timeout)."""
        self.driver.get("file://" + os.path.abspath(path))
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            if self.driver.execute_script("return document.body && "
                                          "document.body.dataset.rendered") == "true":
                return True
            time.sleep(0.1)
        return False

    def console(self) -> list:
        """The console's entries since the last call (errors are level SEVERE)."""
        return self.driver.get_log("browser")

    def screenshot(self, out: str, width: int) -> None:
        """The whole page: the window grown to the content's height (plus the window's own
        chrome) until that stops changing (the charts are responsive: a resize can move
        them)."""
        content = None
        for _ in range(5):
            now, chrome = self.driver.execute_script(
                "const r = document.documentElement.getBoundingClientRect();"
                "const m = parseFloat(getComputedStyle(document.body).marginBottom) || 0;"
                "return [Math.ceil(r.height + m), window.outerHeight - window.innerHeight]")
            if now == content:
                break
            content = now
            self.driver.set_window_size(width, content + chrome + 16)
            time.sleep(0.3)
        self.driver.save_screenshot(out)

    def close(self) -> None:
        try:
            self.driver.quit()
        finally:
            shutil.rmtree(self.profile, ignore_errors=True)

    def __enter__(self) -> "Chromium":
        return self

    def __exit__(self, *exc) -> None:
        self.close()


def main(argv: Optional[list] = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m tests.support.chromium")
    sub = parser.add_subparsers(dest="command", required=True)
    shot = sub.add_parser("screenshot", help="a full-page PNG of a report")
    shot.add_argument("report")
    shot.add_argument("out")
    shot.add_argument("--width", type=int, default=1300)
    args = parser.parse_args(argv)
    try:
        with Chromium(width=args.width) as browser:
            if not browser.open(args.report):
                print(f"{args.report} did not render: {browser.console()}", file=sys.stderr)
                return 1
            browser.screenshot(args.out, args.width)
    except BrowserUnavailable as e:
        print(f"no browser: {e}", file=sys.stderr)
        return 1
    print(args.out)
    return 0


if __name__ == "__main__":
    sys.exit(main())
