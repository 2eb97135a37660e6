"""No malformed request ever gets a 500: always a 4xx with the JSON error shape."""

import json

import httpx
import pytest

pytestmark = pytest.mark.django_db(transaction=True)

BAD_BODIES = [
    (b"", "empty"),
    (b"not json", "invalid json"),
    (b"[]", "array"),
    (b'"text"', "string"),
    (json.dumps({"messages": [{"role": "user", "content": "x"}]}).encode(), "no model"),
    (json.dumps({"model": "chat"}).encode(), "no messages"),
    (json.dumps({"model": "chat", "messages": []}).encode(), "empty messages"),
    (json.dumps({"model": "chat", "messages": "hi"}).encode(), "messages not a list"),
    (
        json.dumps({"model": "chat", "messages": [{"role": "wizard", "content": "x"}]}).encode(),
        "bad role",
    ),
    (json.dumps({"model": "chat", "messages": [{"content": "x"}]}).encode(), "no role"),
    (
        json.dumps({"model": "chat", "messages": [{"role": "user", "content": 5}]}).encode(),
        "content not text",
    ),
    (
        json.dumps(
            {"model": "chat", "messages": [{"role": "user", "content": "x"}], "temperature": 7}
        ).encode(),
        "temperature out of range",
    ),
    (
        json.dumps(
            {"model": "chat", "messages": [{"role": "user", "content": "x"}], "n": 3}
        ).encode(),
        "n > 1",
    ),
    (
        json.dumps(
            {"model": "chat", "messages": [{"role": "user", "content": "x"}], "max_tokens": -1}
        ).encode(),
        "negative max_tokens",
    ),
    (
        json.dumps(
            {
                "model": "chat",
                "messages": [{"role": "user", "content": "x"}],
                "stream": "yes please",
            }
        ).encode(),
        "stream not bool",
    ),
    (
        json.dumps(
            {
                "model": "chat",
                "messages": [{"role": "user", "content": "x"}],
                "response_format": {"type": "xml"},
            }
        ).encode(),
        "unknown response_format",
    ),
    (
        json.dumps({"model": ["chat"], "messages": [{"role": "user", "content": "x"}]}).encode(),
        "model not a string",
    ),
    (b'{"model": "chat", "messages": [{"role": "user", "content": "\\ud800"}]}', "lone surrogate"),
]


@pytest.mark.parametrize(("body", "why"), BAD_BODIES, ids=[b[1] for b in BAD_BODIES])
def test_malformed_chat_body_is_400(asgi_server, tenant_a, routing, body, why):
    response = httpx.post(
        asgi_server.url + "/v1/chat/completions",
        content=body,
        headers={"Authorization": f"Bearer {tenant_a.key}", "Content-Type": "application/json"},
    )
    assert response.status_code == 400, (why, response.text)
    error = response.json()["error"]
    assert error["type"] == "invalid_request_error" and error["message"]


def test_wrong_method_is_405_json(asgi_server, tenant_a, routing):
    response = httpx.get(
        asgi_server.url + "/v1/chat/completions",
        headers={"Authorization": f"Bearer {tenant_a.key}"},
    )
    assert response.status_code == 405
    assert response.json()["error"]["code"] == "method_not_allowed"


def test_too_large_body_is_413(asgi_server, tenant_a, routing, settings):
    big = json.dumps({"model": "chat", "messages": [{"role": "user", "content": "x" * 3_000_000}]})
    response = httpx.post(
        asgi_server.url + "/v1/chat/completions",
        content=big,
        headers={"Authorization": f"Bearer {tenant_a.key}"},
    )
    assert response.status_code == 413
    assert response.json()["error"]["code"] == "payload_too_large"


def test_bad_embeddings_bodies_are_400(asgi_server, tenant_a, routing):
    for body in (
        {"model": "embed"},
        {"model": "embed", "input": []},
        {"model": "embed", "input": [""]},
        {"model": "embed", "input": [1, 2]},
        {"model": "embed", "input": "x", "dimensions": 0},
    ):
        response = httpx.post(
            asgi_server.url + "/v1/embeddings",
            json=body,
            headers={"Authorization": f"Bearer {tenant_a.key}"},
        )
        assert response.status_code == 400, (body, response.text)


def test_key_without_inference_scope_is_403(asgi_server, tenant_a, routing):
    from tenants import services

    issued = services.create_api_key(tenant=tenant_a.tenant, name="docs only", scopes=["documents"])
    response = httpx.post(
        asgi_server.url + "/v1/chat/completions",
        json={"model": "chat", "messages": [{"role": "user", "content": "x"}]},
        headers={"Authorization": f"Bearer {issued.plaintext}"},
    )
    assert response.status_code == 403
    assert response.json()["error"]["code"] == "missing_scope"
