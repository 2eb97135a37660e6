"""The prompt console: roles, preview, publish, split, rollback, diff."""

import pytest

from prompts import services
from prompts.models import ChangeLogEntry, Feature

pytestmark = pytest.mark.django_db


def _feature(tenant, slug="summarizer"):
    with tenant.context():
        return Feature.objects.get(slug=slug)


def test_viewer_reads_but_cannot_publish(staff, tenant_a):
    client = staff("viewer")
    feature = _feature(tenant_a)
    with tenant_a.context():
        version = feature.deployment.active_version
    assert client.get(f"/t/{tenant_a.slug}/prompts/").status_code == 200
    assert client.get(f"/t/{tenant_a.slug}/prompts/{feature.slug}/").status_code == 200
    response = client.post(
        f"/t/{tenant_a.slug}/prompts/{feature.slug}/versions/{version.id}/publish/"
    )
    assert response.status_code == 403
    assert client.post(f"/t/{tenant_a.slug}/prompts/{feature.slug}/rollback/").status_code == 403


def test_editor_customises_previews_publishes_and_rolls_back(staff, tenant_a):
    client = staff("editor")
    feature = _feature(tenant_a)
    base = f"/t/{tenant_a.slug}/prompts/{feature.slug}/"
    with tenant_a.context():
        default = feature.deployment.active_version
    response = client.post(base + "versions/new/", {"from": default.id})
    assert response.status_code == 302
    draft_url = response["Location"]
    form = {
        "system": "Summarise tersely for the next agent.",
        "context_template": "",
        "user_template": "Conversation:\n{{ conversation }}",
        "variables": "conversation",
        "params": '{"temperature": 0}',
        "contract": '{"kind": "text"}',
        "few_shot": "[]",
        "changelog": "terser",
        "sample": '{"conversation": "Customer: my export fails"}',
    }
    preview = client.post(draft_url + "preview/", form, HTTP_HX_REQUEST="true")
    assert preview.status_code == 200
    html = preview.content.decode()
    assert "Summarise tersely" in html and "&lt;user_input&gt;" in html
    assert "my export fails" in html
    assert client.post(draft_url, form).status_code == 302
    publish = client.post(draft_url + "publish/", {"reason": "shorter"})
    assert publish.status_code == 302
    with tenant_a.context():
        feature.refresh_from_db()
        serving = feature.deployment.active_version
        assert serving.system == "Summarise tersely for the next agent."
        assert serving.is_published
        entry = ChangeLogEntry.objects.filter(feature=feature).first()
        assert entry.action == "publish" and entry.reason == "shorter"
        assert entry.actor_name.startswith("editor")
    assert client.post(base + "rollback/").status_code == 302
    with tenant_a.context():
        feature.refresh_from_db()
        assert feature.deployment.active_version_id == default.id


def test_preview_names_a_missing_variable(staff, tenant_a):
    client = staff("editor")
    feature = _feature(tenant_a)
    with tenant_a.context():
        version = feature.deployment.active_version
    form = {
        "system": "S",
        "user_template": "{{ conversation }}",
        "variables": "conversation",
        "params": "{}",
        "contract": '{"kind": "text"}',
        "few_shot": "[]",
        "sample": "{}",
    }
    html = client.post(
        f"/t/{tenant_a.slug}/prompts/{feature.slug}/versions/{version.id}/preview/", form
    ).content.decode()
    assert "Missing variable" in html and "conversation" in html


def test_published_versions_are_immutable(staff, tenant_a):
    from gateway.errors import Conflict

    feature = _feature(tenant_a)
    with tenant_a.context():
        version = feature.deployment.active_version
        with pytest.raises(Conflict):
            services.update_draft(version=version, system="changed")


def test_diff_shows_both_versions(staff, tenant_a):
    client = staff("reviewer")
    feature = _feature(tenant_a)
    with tenant_a.context():
        default = feature.deployment.active_version
        other = services.customise_from(version=default, actor=services.Actor(None, "t"))
        services.update_draft(version=other, system="Completely different instructions.")
    html = client.get(
        f"/t/{tenant_a.slug}/prompts/{feature.slug}/diff/", {"a": default.id, "b": other.id}
    ).content.decode()
    assert "Completely&nbsp;different" in html and default.label in html


def test_split_validation(staff, tenant_a):
    from gateway.errors import InvalidRequest

    feature = _feature(tenant_a, "ticket-classifier")
    with tenant_a.context():
        default = feature.deployment.active_version
        with pytest.raises(InvalidRequest):
            services.set_split(
                feature=feature,
                split=[{"version_id": default.id, "weight": 100}],
                actor=services.SYSTEM,
            )
