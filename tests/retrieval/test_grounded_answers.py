"""Grounded answers through real feature runs (``POST /api/v1/features/support-answer/runs``
against the fake provider): chunks in the context message within the token budget, citations
checked against what was retrieved, the extractive answer when every provider is down, chunk
ids and scores in the records, and retrieval only ever in the caller's tenant and tags."""

from __future__ import annotations

import json
import re

import httpx
import pytest
import yaml

from audit.models import AuditRecord
from prompts.models import Feature
from retrieval.models import Chunk
from retrieval.selectors import search
from retrieval.tokens import count_tokens
from tests.fixtures_gateway import wait_for
from usage.models import UsageRecord

pytestmark = pytest.mark.django_db(transaction=True)

FEATURE = "support-answer"
EXPORT = (
    "# Exporting data\n\nExport every project as a CSV file from Settings, then Data export. "
    "The export link arrives by e-mail within ten minutes."
)
OVERRIDE = (
    "# Refund overrides\n\nSupport staff may extend the refund window to 90 days from the "
    "admin console; the override code word is BLUEHERON."
)
INVOICES = "# Invoices\n\nInvoices are e-mailed to the billing contact on the first of the month."
DOCUMENT_ID = re.compile(r'<document id="(c\d+)"')
DOCUMENT_BLOCK = re.compile(r"<document .*?</document>", re.S)


@pytest.fixture
def grounded(own_tenants, routing, asgi_server):
    """Factory: a tenant of its own whose support-answer feature routes to the fake providers."""

    def make():
        tenant = own_tenants()
        with tenant.context():
            Feature.objects.filter(slug=FEATURE).update(model_alias="chat")
        return tenant

    return make


def _run(server, tenant, question: str, **extra) -> httpx.Response:
    # The answer cache would serve a repeated question without calling the provider, and
    # these tests look at what the provider was sent.
    body = {"input": {"question": question}, "cache": {"bypass": True}, **extra}
    return httpx.post(
        f"{server.url}/api/v1/features/{FEATURE}/runs",
        json=body,
        headers={"Authorization": f"Bearer {tenant.key}"},
        timeout=30,
    )


def _sent(simulator) -> list[dict]:
    """The messages of the last chat completion the fake provider received."""
    chats = [r for r in simulator.requests if r["path"].endswith("/chat/completions")]
    return chats[-1]["json"]["messages"]


def _sent_text(simulator) -> str:
    return "\n".join(str(m.get("content")) for m in _sent(simulator))


def _documents_sent(simulator) -> str:
    """The document blocks of the last chat completion (the question itself left out)."""
    return "\n".join(DOCUMENT_BLOCK.findall(_sent_text(simulator)))


def _audit(tenant, call_id: str) -> AuditRecord:
    with tenant.context():
        record = wait_for(lambda: AuditRecord.objects.filter(call_id=call_id).first())
    assert record is not None, f"no audit record for {call_id}"
    return record


def _chunk_ref(tenant, document) -> str:
    with tenant.context():
        return f"c{Chunk.objects.get(document=document).id}"


def test_chunks_go_in_the_context_message_with_their_ids(
    grounded, asgi_server, simulator, add_document
):
    tenant = grounded()
    with tenant.context():
        document = add_document(EXPORT, title="Exports")
    ref = _chunk_ref(tenant, document)
    response = _run(asgi_server, tenant, "How do I export my projects as CSV?")
    assert response.status_code == 200, response.text
    messages = _sent(simulator)
    (context,) = [m for m in messages if f'<document id="{ref}"' in str(m["content"])]
    assert context["role"] == "user"  # the context role: never the system prompt
    assert "Export every project" in context["content"]
    assert 'title="Exports › Exporting data"' in context["content"]
    assert "Export every project" not in messages[0]["content"]


def test_fabricated_citation_is_removed_and_flagged(grounded, asgi_server, simulator, add_document):
    tenant = grounded()
    with tenant.context():
        document = add_document(EXPORT, title="Exports")
    ref = _chunk_ref(tenant, document)
    answer = {
        "answer": "Use Data export.",
        "citations": [ref, "c999999", "doc-404"],
        "cannot_answer": False,
        "confidence": 0.9,
    }
    simulator.script([json.dumps(answer)])
    response = _run(asgi_server, tenant, "How do I export my projects as CSV?")
    assert response.status_code == 200, response.text
    body = response.json()
    assert body["citations"] == [ref]  # the real one stays
    assert body["output"]["citations"] == [ref]
    assert "citation_removed" in body["flags"]
    record = _audit(tenant, body["id"])
    assert "citation_removed" in record.flags
    assert record.parsed_output["citations"] == [ref]


def test_genuine_citations_are_kept_unflagged(grounded, asgi_server, simulator, add_document):
    tenant = grounded()
    with tenant.context():
        document = add_document(EXPORT, title="Exports")
    ref = _chunk_ref(tenant, document)
    answer = {"answer": "Data export.", "citations": [ref], "cannot_answer": False, "confidence": 1}
    simulator.script([json.dumps(answer)])
    body = _run(asgi_server, tenant, "How do I export my projects as CSV?").json()
    assert body["citations"] == [ref]
    assert "citation_removed" not in body["flags"]
    assert "citation_removed" not in _audit(tenant, body["id"]).flags


def test_outage_gives_an_extractive_answer_with_sources_marked_degraded(
    grounded, asgi_server, simulator, simulator_b, add_document
):
    tenant = grounded()
    with tenant.context():
        document = add_document(EXPORT, title="Exports")
        degraded_text = Feature.objects.get(slug=FEATURE).degraded_text
    ref = _chunk_ref(tenant, document)
    simulator.set_fault("down")
    simulator_b.set_fault("down")
    response = _run(asgi_server, tenant, "How do I export my projects as CSV?")
    assert response.status_code == 200, response.text
    assert response.headers["X-Switchboard-Degraded"] == "true"
    body = response.json()
    assert body["degraded"] is True
    output = body["output"]
    assert output.startswith(degraded_text)
    # The best passage, with its source: chunk id and document title with heading path.
    assert f"[{ref}] Exports › Exporting data: Export every project as a CSV file" in output
    assert body["citations"] == [ref]  # the passages it quotes
    record = _audit(tenant, body["id"])
    assert record.status == "degraded"
    assert record.raw_output.startswith(degraded_text)
    assert [c["chunk_id"] for c in record.retrieved_chunks] == [int(ref[1:])]


def test_retrieved_chunk_ids_and_scores_are_in_the_audit_record(
    grounded, asgi_server, simulator, add_document
):
    tenant = grounded()
    question = "How do I export my projects as CSV?"
    with tenant.context():
        export = add_document(EXPORT, title="Exports")
        add_document(INVOICES, title="Invoices")
        expected = search(query=question, top_k=20).hits
    response = _run(asgi_server, tenant, question)
    assert response.status_code == 200, response.text
    sent_refs = DOCUMENT_ID.findall(_sent_text(simulator))
    record = _audit(tenant, response.json()["id"])
    stored = record.retrieved_chunks
    assert [f"c{c['chunk_id']}" for c in stored] == sent_refs  # what the model saw, in order
    assert stored[0]["document_id"] == export.id and stored[0]["title"] == "Exports"
    by_id = {h.chunk_id: h.score for h in expected}
    for chunk in stored:
        assert chunk["score"] == pytest.approx(by_id[chunk["chunk_id"]])
    scores = [c["score"] for c in stored]
    assert scores == sorted(scores, reverse=True) and scores[0] > 0


def test_retrieved_chunk_ids_and_scores_are_in_the_usage_record(
    grounded, asgi_server, simulator, add_document
):
    tenant = grounded()
    with tenant.context():
        document = add_document(EXPORT, title="Exports")
    ref = _chunk_ref(tenant, document)
    call_id = _run(asgi_server, tenant, "How do I export my projects as CSV?").json()["id"]
    _audit(tenant, call_id)  # the records are written together
    with tenant.context():
        usage = UsageRecord.objects.get(call_id=call_id)
    stored = usage.retrieved_chunks
    assert stored and stored[0]["chunk_id"] == int(ref[1:]) and stored[0]["score"] > 0
    assert stored[0]["document_id"] == document.id


def test_tenant_b_feature_run_never_gets_tenant_a_chunks(
    grounded, asgi_server, simulator, add_document
):
    tenant_a, tenant_b = grounded(), grounded()
    question = "What is the code word for refund overrides?"
    with tenant_a.context():
        add_document(OVERRIDE, title="A overrides")
    with tenant_b.context():
        own = add_document(INVOICES, title="B invoices")
        own_chunks = set(Chunk.objects.filter(document=own).values_list("id", flat=True))
    # The question finds the passage in A's own runs, so its absence in B's means something.
    assert _run(asgi_server, tenant_a, question).status_code == 200
    assert "BLUEHERON" in _documents_sent(simulator)
    for tags in (None, [], ["staff"], ["*"], ["A overrides"]):
        extra = {} if tags is None else {"access_tags": tags}
        for text in (question, "BLUEHERON", "refund window override invoices"):
            response = _run(asgi_server, tenant_b, text, **extra)
            assert response.status_code == 200, response.text
            sent = _documents_sent(simulator)
            assert "BLUEHERON" not in sent and "A overrides" not in sent
            assert "B invoices" in sent  # B's own search did run (the vector leg finds it)
            record = _audit(tenant_b, response.json()["id"])
            # Ids are per schema (A's chunk 1 and B's chunk 1 may both exist): compare both.
            assert {c["chunk_id"] for c in record.retrieved_chunks} <= own_chunks
            assert {c["title"] for c in record.retrieved_chunks} <= {"B invoices"}


def test_feature_run_sees_only_documents_the_callers_tags_allow(
    grounded, asgi_server, simulator, add_document
):
    tenant = grounded()
    question = "What is the code word for refund overrides?"
    with tenant.context():
        staff_only = add_document(OVERRIDE, title="Overrides", access_tags=["staff"])
        add_document(INVOICES, title="Invoices")
    staff_ref = _chunk_ref(tenant, staff_only)
    for extra in ({}, {"access_tags": []}, {"access_tags": ["sales"]}):
        response = _run(asgi_server, tenant, question, **extra)
        assert response.status_code == 200, response.text
        assert "BLUEHERON" not in _documents_sent(simulator)
        stored = _audit(tenant, response.json()["id"]).retrieved_chunks
        assert staff_only.id not in {c["document_id"] for c in stored}
    allowed = _run(asgi_server, tenant, question, access_tags=["sales", "staff"])
    assert "BLUEHERON" in _documents_sent(simulator)
    assert staff_ref in DOCUMENT_ID.findall(_sent_text(simulator))
    stored = _audit(tenant, allowed.json()["id"]).retrieved_chunks
    assert stored[0]["document_id"] == staff_only.id


def _routing_with_window(settings, tmp_path, window: int) -> None:
    """The test routing file, with every deployment's context window set to ``window``."""
    routing = yaml.safe_load(open(settings.SWITCHBOARD_MODELS_FILE).read())
    for deployment in routing["deployments"]:
        deployment["context_window"] = window
    routing["version"] = f"{routing['version']}-window-{window}"
    path = tmp_path / f"models-{window}.yaml"
    path.write_text(yaml.safe_dump(routing))
    settings.SWITCHBOARD_MODELS_FILE = str(path)


def _long_passage(n: int) -> str:
    sentences = " ".join(
        f"Export option {n}.{i} writes the projects of workspace {n} as CSV with column set {i}."
        for i in range(9)
    )
    return f"# Export variant {n}\n\n{sentences}"


def test_context_stays_within_the_window_minus_prompt_and_answer_reserve(
    grounded, asgi_server, simulator, add_document, settings, tmp_path
):
    tenant = grounded()
    question = "How do I export the projects of a workspace as CSV?"
    with tenant.context():
        for n in range(8):
            add_document(_long_passage(n), title=f"Export {n}")
        max_tokens = Feature.objects.get(slug=FEATURE).deployment.active_version.params[
            "max_tokens"
        ]
    # A roomy window: the five best chunks (FEATURE_TOP_K) all go.
    assert _run(asgi_server, tenant, question).status_code == 200
    roomy = DOCUMENT_ID.findall(_sent_text(simulator))
    assert len(roomy) == 5
    # A window where the prompt, the answer and one corrective retry's answer leave room for
    # about two of them.
    window = 2700
    _routing_with_window(settings, tmp_path, window)
    response = _run(asgi_server, tenant, question)
    assert response.status_code == 200, response.text
    messages = _sent(simulator)
    refs = DOCUMENT_ID.findall(_sent_text(simulator))
    assert 1 <= len(refs) < 5
    assert refs == roomy[: len(refs)]  # the best ones, in rank order
    prompt = sum(count_tokens(str(m["content"])) + 4 for m in messages)
    assert prompt + 2 * max_tokens <= window  # room for the answer and a corrected answer
    # Nothing at all fits when the prompt and answer reserve fill the window.
    _routing_with_window(settings, tmp_path, 1500)
    response = _run(asgi_server, tenant, question)
    assert response.status_code == 200, response.text
    assert DOCUMENT_ID.findall(_sent_text(simulator)) == []
    assert _audit(tenant, response.json()["id"]).retrieved_chunks == []
