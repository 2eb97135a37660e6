"""A customer-success editor in a real browser: log in, edit a prompt, preview, publish,
roll back (headless Chromium from the distribution's packages, driven by Playwright)."""

import pytest

from prompts.models import Feature

pytestmark = [pytest.mark.browser, pytest.mark.django_db(transaction=True)]


@pytest.fixture
def editor(tenant_a):
    from tenants import services

    user = services.create_staff_user(username="cs-browser", email="", password="Br0wser-pass!")
    services.set_membership(user=user, tenant=tenant_a.tenant, role="editor")
    return "cs-browser", "Br0wser-pass!"


def test_edit_preview_publish_and_roll_back(
    asgi_server, features, tenant_a, editor, tmp_path, browser
):
    page = browser.new_page()
    page.goto(asgi_server.url + "/login/")
    page.fill("#id_username", editor[0])
    page.fill("#id_password", editor[1])
    page.click("button[type=submit]")
    page.goto(f"{asgi_server.url}/t/{tenant_a.slug}/prompts/summarizer/")
    page.click("text=Customise from this")
    page.wait_for_selector("#id_system")
    page.fill("#id_system", "Summarise in exactly three bullets for the next agent.")
    page.fill("#sample", '{"conversation": "Customer: the export button does nothing"}')
    page.dispatch_event("#id_system", "input")
    page.wait_for_selector("#preview >> text=exactly three bullets")
    assert "the export button does nothing" in page.inner_text("#preview")
    page.screenshot(path=str(tmp_path / "editor.png"))
    page.click("#save")
    page.wait_for_selector("text=saved.")  # the reloaded page, not the one being left
    page.click("#evaluate")  # the draft next to the serving version, on the shipped dataset
    page.wait_for_selector("#evaluation-verdict")
    assert "/1 (" in page.inner_text("#candidate-rate")
    assert "/1 (" in page.inner_text("#baseline-rate")
    page.screenshot(path=str(tmp_path / "evaluation.png"), full_page=True)
    page.fill("input[name=reason]", "three bullets")
    page.click("#publish")
    page.wait_for_selector("#serving")
    with tenant_a.context():
        serving = Feature.objects.get(slug="summarizer").deployment.active_version
    assert serving.system.startswith("Summarise in exactly three bullets")
    assert serving.label in page.inner_text("#serving")
    page.click("#rollback")
    page.wait_for_selector("text=Rolled back.")
    with tenant_a.context():
        restored = Feature.objects.get(slug="summarizer").deployment.active_version
    assert restored.label.startswith("default@")
    assert restored.label in page.inner_text("#serving")
