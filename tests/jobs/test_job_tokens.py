"""A job's tokens as they arrive: a free-text feature's job streams its answer as ``delta`` events
(in order, joined equal to the result, usage recorded once); a structured output is validated
before any of it is sent, so it has no deltas; an outage before the first token gives the
degraded answer, as a sync run would, and a stream cut mid-answer fails the job."""

import httpx
import pytest

from jobs import services
from jobs.models import Job, JobEvent
from prompts.models import Feature
from usage.models import UsageRecord

pytestmark = pytest.mark.django_db(transaction=True)

ANSWER = " ".join(f"word{n}" for n in range(120))  # long enough for several delta events


@pytest.fixture
def start(asgi_server, tenant_a, routing):
    with tenant_a.context():
        Feature.objects.update(model_alias="chat")

    def post(slug, data):
        response = httpx.post(
            f"{asgi_server.url}/api/v1/features/{slug}/runs",
            json={"input": data, "user": "dana", "mode": "async"},
            headers={"Authorization": f"Bearer {tenant_a.key}"},
            timeout=30,
        )
        assert response.status_code == 202, response.text
        job_id = response.json()["job_id"]
        with tenant_a.context():
            services.run_job(tenant_a.tenant, job_id)  # the worker's part, in this process
            job = Job.objects.get(pk=job_id)
            events = list(JobEvent.objects.filter(job=job).order_by("seq"))
        return job, events

    return post


def test_a_text_jobs_tokens_arrive_as_delta_events(start, simulator, tenant_a, monkeypatch):
    monkeypatch.setattr(services._TokenEvents, "CHARS", 60)  # several events for one answer
    simulator.script([ANSWER])
    job, events = start("summarizer", {"conversation": "Customer: the export is broken."})
    assert job.status == "succeeded", job.error
    names = [e.event for e in events]
    deltas = [e.data["content"] for e in events if e.event == "delta"]
    assert len(deltas) >= 3
    assert "".join(deltas) == job.result["output"] == ANSWER
    # running, then the tokens, then the result and the final status
    assert names.index("delta") > names.index("status")
    assert names[-2:] == ["result", "status"] and max(
        i for i, n in enumerate(names) if n == "delta"
    ) < names.index("result")
    assert job.result["usage"]["output_tokens"] > 0 and not job.result["degraded"]
    with tenant_a.context():
        record = UsageRecord.objects.get(call_id=job.call_id)
    assert record.mode == "async" and record.output_tokens == job.result["usage"]["output_tokens"]
    assert job.result["usage"]["cost"] == format(record.cost, "f")


def test_a_structured_job_sends_no_tokens_before_validation(start, simulator):
    simulator.script(['{"label": "billing"}'])
    job, events = start("ticket-classifier", {"subject": "Refund", "body": "Charged twice."})
    assert job.status == "succeeded", job.error
    assert job.result["output"] == {"label": "billing"}
    assert not [e for e in events if e.event == "delta"]


def test_an_outage_before_the_first_token_gives_the_degraded_answer(
    start, simulator, simulator_b, tenant_a
):
    simulator.set_fault("down")
    simulator_b.set_fault("down")
    job, _ = start("summarizer", {"conversation": "Customer: the export is broken."})
    assert job.status == "succeeded", job.error
    assert job.result["degraded"] is True
    assert job.result["output"] == "A summary is not available right now."
    with tenant_a.context():
        assert UsageRecord.objects.get(call_id=job.call_id).status == "degraded"


def test_a_stream_cut_mid_answer_fails_the_job(start, simulator, simulator_b, tenant_a):
    simulator.set_fault("midstream_failure", after_chunks=2)
    simulator_b.set_fault("midstream_failure", after_chunks=2)
    simulator.script([ANSWER])
    job, events = start("summarizer", {"conversation": "Customer: the export is broken."})
    assert job.status == "failed"
    assert job.error["status"] == 502
    assert [e for e in events if e.event == "delta"]  # what had arrived was sent
    with tenant_a.context():
        assert UsageRecord.objects.get(call_id=job.call_id).status == "interrupted"


def test_a_streamed_feature_run_degrades_instead_of_failing(
    asgi_server, tenant_a, routing, simulator, simulator_b
):
    with tenant_a.context():
        Feature.objects.update(model_alias="chat")
    simulator.set_fault("down")
    simulator_b.set_fault("down")
    response = httpx.post(
        f"{asgi_server.url}/api/v1/features/summarizer/runs",
        json={"input": {"conversation": "Customer: it broke."}, "mode": "stream"},
        headers={"Authorization": f"Bearer {tenant_a.key}"},
        timeout=30,
    )
    assert response.status_code == 200
    assert "A summary is not available right now." in response.text
    assert '"degraded": true' in response.text and "event: error" not in response.text
