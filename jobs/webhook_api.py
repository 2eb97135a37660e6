"""Webhook endpoints of the calling tenant: create (the secret is shown once), list, delete,
rotate the secret, the delivery log, and redelivery. Scope ``admin``."""

from drf_spectacular.utils import extend_schema
from rest_framework import serializers
from rest_framework.response import Response
from rest_framework.views import APIView

from gateway.errors import NotFound
from jobs import webhooks
from jobs.models import WebhookDelivery, WebhookEndpoint


class EndpointSerializer(serializers.ModelSerializer):
    class Meta:
        model = WebhookEndpoint
        fields = [
            "id",
            "url",
            "description",
            "events",
            "enabled",
            "disabled_reason",
            "consecutive_failures",
            "created_at",
        ]


class EndpointCreateSerializer(serializers.Serializer):
    url = serializers.URLField(max_length=500)
    events = serializers.ListField(child=serializers.CharField(max_length=40), required=False)
    description = serializers.CharField(max_length=200, required=False, allow_blank=True)


class DeliverySerializer(serializers.ModelSerializer):
    class Meta:
        model = WebhookDelivery
        fields = [
            "id",
            "msg_id",
            "event",
            "status",
            "attempts",
            "next_attempt_at",
            "last_status_code",
            "last_duration_ms",
            "last_error",
            "response_excerpt",
            "created_at",
        ]


def _endpoint(endpoint_id: int) -> WebhookEndpoint:
    endpoint = WebhookEndpoint.objects.filter(pk=endpoint_id).first()
    if endpoint is None:
        raise NotFound("No webhook endpoint with this id.", param="id")
    return endpoint


class EndpointListView(APIView):
    required_scope = "admin"

    @extend_schema(responses={200: EndpointSerializer(many=True)}, summary="Webhook endpoints")
    def get(self, request):
        return Response(EndpointSerializer(WebhookEndpoint.objects.order_by("id"), many=True).data)

    @extend_schema(
        request=EndpointCreateSerializer,
        responses={201: EndpointSerializer},
        summary="Add an endpoint (its signing secret is in this answer only)",
    )
    def post(self, request):
        body = EndpointCreateSerializer(data=request.data)
        body.is_valid(raise_exception=True)
        endpoint, secret = webhooks.create_endpoint(**body.validated_data)
        return Response({**EndpointSerializer(endpoint).data, "secret": secret}, status=201)


class EndpointDetailView(APIView):
    required_scope = "admin"

    @extend_schema(responses={204: None}, summary="Remove an endpoint")
    def delete(self, request, endpoint_id: int):
        _endpoint(endpoint_id).delete()
        return Response(status=204)


class EndpointRotateView(APIView):
    required_scope = "admin"

    @extend_schema(
        request=None,
        responses={200: EndpointSerializer},
        summary="New signing secret (the old one signs too, for 24 hours)",
    )
    def post(self, request, endpoint_id: int):
        endpoint = _endpoint(endpoint_id)
        secret = webhooks.rotate_secret(endpoint=endpoint)
        return Response({**EndpointSerializer(endpoint).data, "secret": secret})


class DeliveryListView(APIView):
    required_scope = "admin"

    @extend_schema(responses={200: DeliverySerializer(many=True)}, summary="Delivery log")
    def get(self, request, endpoint_id: int):
        deliveries = _endpoint(endpoint_id).deliveries.all()[:200]
        return Response(DeliverySerializer(deliveries, many=True).data)


class RedeliverView(APIView):
    required_scope = "admin"

    @extend_schema(
        request=None, responses={200: DeliverySerializer}, summary="Send a delivery again now"
    )
    def post(self, request, delivery_id: int):
        delivery = WebhookDelivery.objects.select_related("endpoint").filter(pk=delivery_id).first()
        if delivery is None:
            raise NotFound("No delivery with this id.", param="id")
        return Response(DeliverySerializer(webhooks.redeliver(delivery=delivery)).data)
