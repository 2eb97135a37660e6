"""Jobs: status, events as SSE (resumable with Last-Event-ID), cancellation."""

from __future__ import annotations

import asyncio
import json

from asgiref.sync import sync_to_async
from django.core.exceptions import ValidationError
from django.http import StreamingHttpResponse
from django_tenants.utils import schema_context
from drf_spectacular.utils import OpenApiResponse, extend_schema
from rest_framework import serializers
from rest_framework.response import Response
from rest_framework.views import APIView

from gateway.errors import NotFound
from jobs import services
from jobs.models import Job, JobEvent

POLL_SECONDS = 0.25
STREAM_LIMIT_SECONDS = 300


class JobSerializer(serializers.ModelSerializer):
    status_url = serializers.SerializerMethodField()
    events_url = serializers.SerializerMethodField()

    class Meta:
        model = Job
        fields = [
            "id",
            "feature",
            "status",
            "attempts",
            "created_at",
            "started_at",
            "finished_at",
            "deadline_at",
            "result",
            "error",
            "status_url",
            "events_url",
        ]

    def get_status_url(self, job) -> str:
        return f"/api/v1/jobs/{job.id}"

    def get_events_url(self, job) -> str:
        return f"/api/v1/jobs/{job.id}/events"


def get_job(job_id: str) -> Job:
    try:
        job = Job.objects.filter(pk=job_id).first()
    except ValidationError:  # not a UUID: the same answer as an unknown id
        job = None
    if job is None:
        raise NotFound("No job with this id.", param="id")
    return job


class JobView(APIView):
    required_scope = "inference"

    @extend_schema(responses={200: JobSerializer}, summary="A job's status and result")
    def get(self, request, job_id: str):
        return Response(JobSerializer(get_job(job_id)).data)


class JobCancelView(APIView):
    required_scope = "inference"

    @extend_schema(request=None, responses={200: JobSerializer}, summary="Cancel a job")
    def post(self, request, job_id: str):
        return Response(JobSerializer(services.cancel_job(job=get_job(job_id))).data)


class JobEventsView(APIView):
    required_scope = "inference"

    @extend_schema(
        responses={
            200: OpenApiResponse(
                description="text/event-stream: events status, result, error; id = sequence"
            )
        },
        summary="A job's events as Server-Sent Events (Last-Event-ID resumes)",
    )
    def get(self, request, job_id: str):
        job = get_job(job_id)
        try:
            after = int(request.headers.get("Last-Event-ID", "0") or 0)
        except ValueError:
            after = 0
        schema = request.tenant.schema_name

        def fetch(since: int):
            with schema_context(schema):
                events = list(
                    JobEvent.objects.filter(job_id=job.pk, seq__gt=since).values_list(
                        "seq", "event", "data"
                    )
                )
                status = Job.objects.filter(pk=job.pk).values_list("status", flat=True).first()
            return events, status

        async def stream():
            since = after
            waited = 0.0
            while waited < STREAM_LIMIT_SECONDS:
                events, status = await sync_to_async(fetch)(since)
                for seq, event, data in events:
                    since = seq
                    yield f"id: {seq}\nevent: {event}\ndata: {json.dumps(data)}\n\n".encode()
                if status in Job.FINISHED and not events:
                    return
                await asyncio.sleep(POLL_SECONDS)
                waited += POLL_SECONDS

        response = StreamingHttpResponse(stream(), content_type="text/event-stream")
        response["Cache-Control"] = "no-cache"
        return response
