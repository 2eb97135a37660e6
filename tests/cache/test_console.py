"""The cache console: figures per feature from the usage records, purge per feature, roles."""

import pytest

from tests.cache.conftest import entries

pytestmark = pytest.mark.django_db(transaction=True)


def _row(html: str, slug: str) -> str:
    start = html.index(f'data-feature="{slug}"')
    return html[start : html.index("</tr>", start)]


def test_figures_show_hit_rate_and_savings(make_feature, run, staff, tenant_a, records):
    feature = make_feature()
    first = run(feature.slug).json()
    run(feature.slug)
    last = run(feature.slug).json()
    served, _ = records(tenant_a, first["id"])
    records(tenant_a, last["id"])
    page = staff("viewer").get(f"/t/{tenant_a.slug}/cache/")
    assert page.status_code == 200
    row = _row(page.content.decode(), feature.slug)
    saved = 2 * (served.input_tokens + served.output_tokens)
    assert '<td class="hits">2</td>' in row and "66.7 %" in row
    assert f'<td class="tokens-saved">{saved}</td>' in row
    # 0.50/1.50 per million (the test routing), split as the served run was
    expected = (served.input_tokens * 2 * 0.5 + served.output_tokens * 2 * 1.5) / 1e6
    assert f"${expected:.6f}" in row
    assert '<td class="entries">1</td>' in row
    assert "Purge" not in row  # viewers read only


def test_viewer_cannot_purge(make_feature, run, staff, tenant_a):
    feature = make_feature()
    run(feature.slug)
    response = staff("viewer").post(f"/t/{tenant_a.slug}/cache/{feature.slug}/purge/")
    assert response.status_code == 403
    assert len(entries(tenant_a, feature.slug)) == 1


@pytest.mark.parametrize("role", ["editor", "admin"])
def test_editor_and_admin_purge_a_feature(make_feature, run, staff, tenant_a, role, provider_calls):
    feature, other = make_feature(), make_feature()
    run(feature.slug)
    run(other.slug)
    client = staff(role)
    response = client.post(
        f"/t/{tenant_a.slug}/cache/{feature.slug}/purge/", HTTP_HX_REQUEST="true"
    )
    assert response.status_code == 200
    assert b"1 cached answer(s)" in response.content and b'id="cache-figures"' in response.content
    assert entries(tenant_a, feature.slug) == []
    assert len(entries(tenant_a, other.slug)) == 1  # only that feature's
    assert run(feature.slug).json()["cached"] is False and provider_calls() == 3
    assert client.post(f"/t/{tenant_a.slug}/cache/{feature.slug}/purge/").status_code == 302


def test_another_tenants_member_sees_nothing(staff, tenant_a):
    assert staff("admin", tenant_key="b").get(f"/t/{tenant_a.slug}/cache/").status_code == 404


def test_the_nav_links_the_cache(staff, tenant_a):
    page = staff("viewer").get(f"/t/{tenant_a.slug}/usage/")
    assert f'href="/t/{tenant_a.slug}/cache/"'.encode() in page.content
