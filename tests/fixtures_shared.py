"""Fixtures used by several apps' tests: a tenant of one's own, and a headless browser."""

import itertools
import shutil

import pytest

_n = itertools.count()

CHROMIUM = shutil.which("chromium") or shutil.which("chromium-browser")
CHROMIUM_ARGS = [
    "--headless",
    "--no-sandbox",
    "--disable-gpu",
    "--disable-background-networking",
    "--disable-component-update",
    "--disable-sync",
    "--no-first-run",
]


@pytest.fixture
def fresh_tenant(transactional_db):
    """A tenant of its own (and its own plan, which the test may tighten); dropped afterwards."""
    from tenants import services

    n = next(_n)
    suffix = f"{n}-{id(object()) % 10**6}"
    plan = services.create_plan(name=f"Tight {suffix}", slug=f"tight-{suffix}")
    tenant = services.provision_tenant(name=f"Budget {suffix}", slug=f"budget-{suffix}", plan=plan)
    issued = services.create_api_key(tenant=tenant, name="k")
    yield tenant, issued.plaintext
    from gateway.recorder import recorder

    recorder.flush()  # the server's background writes into this schema end first
    tenant.delete(force_drop=True)


@pytest.fixture
def browser(monkeypatch):
    """Headless Chromium from the distribution's packages, driven by Playwright (never a
    browser Playwright downloads). Skipped where Chromium is not installed."""
    # Playwright's sync API runs an event loop in this thread; the test's own ORM reads are
    # still plain synchronous code.
    monkeypatch.setenv("DJANGO_ALLOW_ASYNC_UNSAFE", "true")
    if CHROMIUM is None:
        pytest.skip("chromium is not installed (make test installs it from Debian's packages)")
    from playwright.sync_api import sync_playwright

    with sync_playwright() as p:
        browser = p.chromium.launch(executable_path=CHROMIUM, args=CHROMIUM_ARGS)
        yield browser
        browser.close()
