"""Feedback on a run: a rating and, optionally, the output a human actually used."""

from drf_spectacular.utils import extend_schema
from rest_framework.response import Response
from rest_framework.views import APIView

from audit import services
from audit.serializers import AmendmentSerializer, FeedbackSerializer


class RunFeedbackView(APIView):
    required_scope = "inference"

    @extend_schema(
        request=FeedbackSerializer,
        responses={201: AmendmentSerializer},
        summary="Rate a run and record a human's edit of its output",
    )
    def post(self, request, run_id: str):
        serializer = FeedbackSerializer(data=request.data)
        serializer.is_valid(raise_exception=True)
        data = serializer.validated_data
        amendment = services.add_feedback(
            call_id=run_id,
            rating=data.get("rating"),
            edited_output=data.get("edited_output"),
            editor_id=data.get("edited_by", ""),
            editor_name=data.get("editor_name", ""),
            comment=data.get("comment", ""),
        )
        return Response(AmendmentSerializer(amendment).data, status=201)
