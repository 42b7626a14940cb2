"""Real headless Chromium (Debian's `chromium`, driven by Playwright) against a real sensor.

No browser is ever downloaded: the system's /usr/bin/chromium is used. Without it the
tests skip with the command that installs it — or fail, when OISP_REQUIRE_BROWSER=1
(CI), so a missing browser can never pass silently.
"""

from __future__ import annotations

import os
from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any

import pytest

from tests.browser.harness import CHROMIUM, CHROMIUM_ARGS, Rig, running_sensor

MISSING = "chromium not installed: apt-get install chromium"


@pytest.fixture
async def browser() -> AsyncIterator[Any]:
    if not Path(CHROMIUM).exists():
        if os.environ.get("OISP_REQUIRE_BROWSER") == "1":
            pytest.fail(MISSING)
        pytest.skip(MISSING)
    from playwright.async_api import async_playwright

    async with async_playwright() as p:
        chromium = await p.chromium.launch(executable_path=CHROMIUM, args=CHROMIUM_ARGS)
        try:
            yield chromium
        finally:
            await chromium.close()


@pytest.fixture
async def rig(tmp_path: Path) -> AsyncIterator[Rig]:
    async with running_sensor(tmp_path) as r:
        yield r


class PageErrors(list[str]):
    """Console errors and uncaught exceptions of a page: a test ends with none it did not
    expect (`page.errors.allow("...400...")` for a request the test makes fail on purpose)."""

    def __init__(self) -> None:
        super().__init__()
        self.allowed: list[str] = []

    def allow(self, fragment: str) -> None:
        self.allowed.append(fragment)

    def unexpected(self) -> list[str]:
        return [e for e in self if not any(a in e for a in self.allowed)]


@pytest.fixture
async def page(browser: Any, rig: Rig) -> AsyncIterator[Any]:
    context = await browser.new_context(viewport={"width": 1440, "height": 900})
    page = await context.new_page()
    errors = PageErrors()
    page.on("pageerror", lambda e: errors.append(f"uncaught: {e}"))
    page.on(
        "console",
        lambda m: errors.append(f"console.{m.type}: {m.text}") if m.type == "error" else None,
    )
    page.on("dialog", lambda d: errors.append(f"dialog opened: {d.message}"))
    page.errors = errors
    await page.goto(rig.web_url)
    await page.locator("#conn.on").wait_for(timeout=5000)  # the live feed is connected
    try:
        yield page
    finally:
        await context.close()
    assert not errors.unexpected(), errors.unexpected()
