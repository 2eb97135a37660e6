"""``POST /api/v1/features/<slug>/runs``: run a tenant's AI feature (sync or stream)."""

from __future__ import annotations

import json

from asgiref.sync import async_to_sync
from django.http import StreamingHttpResponse
from drf_spectacular.utils import OpenApiResponse, extend_schema
from rest_framework.response import Response
from rest_framework.views import APIView

from gateway.errors import InvalidRequest
from jobs.idempotency import idempotent
from prompts.runs import execute_run, run_payload, stream_run
from prompts.serializers import RunRequestSerializer, RunSerializer


def run_mode(slug: str, asked: str | None) -> str:
    """The mode a run takes: an async-only feature's runs are jobs."""
    from prompts.models import Feature

    async_only = Feature.objects.filter(slug=slug).values_list("async_only", flat=True).first()
    if not async_only:
        return asked or "sync"
    if asked not in (None, "async"):
        raise InvalidRequest(
            f'The feature {slug!r} runs async only: leave mode out or send "async", then '
            "follow the job.",
            param="mode",
            code="feature_async_only",
        )
    return "async"


class FeatureRunView(APIView):
    required_scope = "inference"

    @extend_schema(
        request=RunRequestSerializer,
        responses={
            200: RunSerializer,
            202: OpenApiResponse(description="async: job_id and status_url"),
            422: OpenApiResponse(description="output_validation_failed"),
            429: OpenApiResponse(description="rate_limited or ai_quota_exceeded"),
            503: OpenApiResponse(description="upstream_unavailable"),
        },
        summary="Run a feature",
    )
    @idempotent
    def post(self, request, slug: str):
        body = RunRequestSerializer(data=request.data)
        body.is_valid(raise_exception=True)
        data = body.validated_data
        data["mode"] = run_mode(slug, data.get("mode"))
        common = dict(
            tenant=request.tenant,
            slug=slug,
            data=data["input"],
            end_user=data.get("user", ""),
            request_id=request._request.request_id,
            key=request.auth,
            access_tags=data.get("access_tags"),
            conversation_id=data.get("conversation_id"),
        )
        if data["mode"] == "async":
            from jobs.api import JobSerializer
            from jobs.services import start_job

            job = start_job(
                tenant=request.tenant,
                slug=slug,
                data=data["input"],
                end_user=data.get("user", ""),
                key=request.auth,
                access_tags=data.get("access_tags"),
                webhook_url=data.get("webhook_url", ""),
                conversation_id=data.get("conversation_id", ""),
                cache_options=data.get("cache"),
            )
            body = JobSerializer(job).data
            return Response(
                {
                    "job_id": str(job.id),
                    "status": job.status,
                    "status_url": body["status_url"],
                    "events_url": body["events_url"],
                },
                status=202,
            )
        if data["mode"] == "stream":
            return self._stream(common)
        run, outcome = async_to_sync(execute_run)(**common, cache_options=data.get("cache"))
        return Response(run_payload(run, outcome), headers=outcome.headers)

    def _stream(self, common: dict):
        run, ctx, headers, events = async_to_sync(stream_run)(**common)

        async def sse():
            meta = {
                "id": ctx.call_id,
                "feature": run.feature.slug,
                "prompt_version": run.version.label,
                "variant": run.variant,
            }
            yield f"event: run\ndata: {json.dumps(meta)}\n\n".encode()
            async for event in events:
                yield (
                    f"event: {event['type']}\ndata: "
                    f"{json.dumps({k: v for k, v in event.items() if k != 'type'})}\n\n"
                ).encode()

        response = StreamingHttpResponse(sse(), content_type="text/event-stream")
        response["Cache-Control"] = "no-cache"
        for name, value in headers.items():
            response[name] = value
        return response
