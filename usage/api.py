"""``GET /api/v1/usage``: the calling tenant's own usage, for its billing."""

from django.utils import timezone
from drf_spectacular.utils import OpenApiParameter, extend_schema
from rest_framework.response import Response
from rest_framework.views import APIView

from usage import selectors
from usage.serializers import UsageQuerySerializer, UsageResponseSerializer
from usage.services import period_of


class UsageView(APIView):
    required_scope = "usage"

    @extend_schema(
        parameters=[
            OpenApiParameter(
                "from", str, description="first day (YYYY-MM-DD), default: the 1st of this month"
            ),
            OpenApiParameter("to", str, description="last day (YYYY-MM-DD), default: today"),
            OpenApiParameter("group_by", str, enum=sorted(selectors.GROUPS)),
        ],
        responses={200: UsageResponseSerializer},
        summary="Usage and cost of the calling tenant",
    )
    def get(self, request):
        params = {k: v for k, v in request.query_params.items()}
        if "from" in params:
            params["date_from"] = params.pop("from")
        if "to" in params:
            params["date_to"] = params.pop("to")
        query = UsageQuerySerializer(data=params)
        query.is_valid(raise_exception=True)
        data = query.validated_data
        summary = selectors.usage_summary(
            start=data["date_from"], end=data["date_to"], group_by=data["group_by"]
        )
        summary["budgets"] = selectors.current_budgets(period_of(timezone.now()))
        return Response(summary)
