"""/metrics speaks the Prometheus text format and is protected."""

import httpx
import pytest
from prometheus_client.parser import text_string_to_metric_families

pytestmark = pytest.mark.django_db(transaction=True)


def test_metrics_parse_and_count_calls(openai_client, asgi_server, routing):
    openai_client.chat.completions.create(
        model="chat", messages=[{"role": "user", "content": "hi"}]
    )
    body = httpx.get(asgi_server.url + "/metrics").text
    families = {f.name: f for f in text_string_to_metric_families(body)}
    assert "switchboard_calls" in families
    assert "switchboard_stage_latency_seconds" in families
    calls = [s for s in families["switchboard_calls"].samples if s.labels.get("endpoint") == "chat"]
    assert calls and sum(s.value for s in calls) >= 1


def test_metrics_need_the_token_when_one_is_set(asgi_server, settings):
    settings.SWITCHBOARD_METRICS_TOKEN = "s3cret-token"
    assert httpx.get(asgi_server.url + "/metrics").status_code == 401
    ok = httpx.get(asgi_server.url + "/metrics", headers={"Authorization": "Bearer s3cret-token"})
    assert ok.status_code == 200
