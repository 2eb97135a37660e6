"""Feedback appends an amendment; the original output stays."""

import httpx
import pytest

from audit.models import AuditRecord
from tests.fixtures_gateway import wait_for

pytestmark = pytest.mark.django_db(transaction=True)


def _run(openai_client):
    return openai_client.chat.completions.create(
        model="chat", messages=[{"role": "user", "content": "Draft a reply"}]
    )


def test_feedback_marks_the_record_modified_and_keeps_the_original(
    openai_client, asgi_server, tenant_a, routing
):
    run = _run(openai_client)
    with tenant_a.context():
        wait_for(lambda: AuditRecord.objects.filter(call_id=run.id).exists())
    response = httpx.post(
        f"{asgi_server.url}/api/v1/runs/{run.id}/feedback",
        json={"rating": "down", "edited_output": "A better reply", "edited_by": "agent-7"},
        headers={"Authorization": f"Bearer {tenant_a.key}"},
    )
    assert response.status_code == 201, response.text
    with tenant_a.context():
        record = AuditRecord.objects.get(call_id=run.id)
        amendment = record.amendments.get()
    assert record.raw_output == run.choices[0].message.content
    assert amendment.edited_output == "A better reply" and amendment.editor_id == "agent-7"


def test_feedback_on_another_tenants_run_is_404(openai_client, asgi_server, tenant_b, routing):
    run = _run(openai_client)  # tenant A's run
    response = httpx.post(
        f"{asgi_server.url}/api/v1/runs/{run.id}/feedback",
        json={"rating": "up"},
        headers={"Authorization": f"Bearer {tenant_b.key}"},
    )
    assert response.status_code == 404
    assert response.json()["error"]["type"] == "not_found"


@pytest.mark.parametrize(
    "body",
    [
        {},
        {"rating": 9},
        {"rating": True},
        {"rating": "meh"},
        {"edited_output": "x"},
        "not an object",
    ],
)
def test_bad_feedback_is_400(asgi_server, tenant_a, routing, body):
    response = httpx.post(
        f"{asgi_server.url}/api/v1/runs/run_x/feedback",
        json=body,
        headers={"Authorization": f"Bearer {tenant_a.key}"},
    )
    assert response.status_code == 400, response.text
