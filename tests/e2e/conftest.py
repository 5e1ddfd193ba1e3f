"""Browser tests: pytest-playwright driving Debian's Chromium (RECIPES.md)."""

from __future__ import annotations

import shutil
from pathlib import Path

import pytest


@pytest.fixture(scope="session")
def browser_type_launch_args(browser_type_launch_args):
    # Playwright cannot download its browsers here; use Debian's. --no-sandbox: tests run as root.
    return {
        **browser_type_launch_args,
        "executable_path": shutil.which("chromium") or "/usr/bin/chromium",
        "args": ["--no-sandbox", "--disable-gpu", "--disable-background-networking"],
    }


@pytest.fixture
def console_errors(page):
    """Every console error and page error of the test; tests assert it stays empty."""
    errors: list[str] = []
    page.on("console", lambda m: errors.append(m.text) if m.type == "error" else None)
    page.on("pageerror", lambda e: errors.append(str(e)))
    return errors


SHOTS = Path(__file__).resolve().parents[2] / "test-results"


@pytest.fixture
def screenshot(record_property):
    """``screenshot(locator_or_page, "name")`` saves a PNG under test-results/ and names it in the report."""

    def take(target, name: str) -> Path:
        SHOTS.mkdir(exist_ok=True)
        path = SHOTS / f"{name}.png"
        if hasattr(target, "goto"):
            target.screenshot(path=str(path), full_page=True)
        else:
            target.screenshot(path=str(path))
        record_property("screenshot", str(path))
        print(f"screenshot: {path}")
        return path

    return take
