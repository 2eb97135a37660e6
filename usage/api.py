"""``GET /api/v1/usage``: the calling tenant's own usage and limits, for its billing."""

from drf_spectacular.utils import extend_schema
from rest_framework.response import Response
from rest_framework.views import APIView

from usage import selectors
from usage.serializers import UsageQuerySerializer, UsageResponseSerializer


class UsageView(APIView):
    required_scope = "usage"

    @extend_schema(
        operation_id="usage_retrieve",
        parameters=[UsageQuerySerializer],
        responses={200: UsageResponseSerializer},
        summary="Usage, cost and limits of the calling tenant",
        description=(
            "Totals over whole UTC days from `from` to `to` (default: this month so far), "
            "optionally grouped, and every limit that applies with its current use."
        ),
    )
    def get(self, request):
        query = UsageQuerySerializer(data=request.query_params)
        query.is_valid(raise_exception=True)
        params = query.validated_data
        summary = selectors.usage_summary(
            start=params["from"], end=params["to"], group_by=params["group_by"]
        )
        summary["limits"] = selectors.limit_usage(request.tenant)
        return Response(UsageResponseSerializer(summary).data)
