"""Headless Chromium for the browser tests: Debian's /usr/bin/chromium, driven by Playwright.

No test downloads a browser; `.ci/run` installs Debian's chromium package.
"""

from __future__ import annotations

import os

CHROMIUM = os.environ.get("CHROMIUM", "/usr/bin/chromium")
CHROMIUM_ARGS = [
    "--no-sandbox",
    "--disable-gpu",
    "--disable-background-networking",
    "--disable-component-update",
    "--disable-sync",
    "--disable-quic",
    "--no-first-run",
]


def sign_in(browser, base_url: str, username: str, password: str):
    """A new browser context (a person at their own computer), signed in."""
    context = browser.new_context(viewport={"width": 1400, "height": 900})
    page = context.new_page()
    page.goto(f"{base_url}/login/")
    page.fill("#id_username", username)
    page.fill("#id_password", password)
    page.click("button[type=submit]")
    page.wait_for_url("**/logs/**")
    return page
