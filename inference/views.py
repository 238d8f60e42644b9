"""The OpenAI-compatible API's plain endpoints (the completions are consumers, in consumers.py)."""

from drf_spectacular.types import OpenApiTypes
from drf_spectacular.utils import extend_schema
from rest_framework import serializers
from rest_framework.response import Response
from rest_framework.views import APIView

from core.workers import workers
from registry.models import Model


class ModelOutputSerializer(serializers.ModelSerializer):
    id = serializers.CharField(source="name")
    object = serializers.SerializerMethodField()
    created = serializers.SerializerMethodField()
    owned_by = serializers.SerializerMethodField()

    class Meta:
        model = Model
        fields = ["id", "object", "created", "owned_by"]

    def get_object(self, model) -> str:
        return "model"

    def get_created(self, model) -> int:
        return int(model.created_at.timestamp())

    def get_owned_by(self, model) -> str:
        return "lanthorn"


@extend_schema(responses={200: OpenApiTypes.OBJECT})
class ListModelsView(APIView):
    """GET /v1/models: the models that have an active version."""

    def get(self, request):
        models = Model.objects.filter(active_version__isnull=False)
        return Response({"object": "list", "data": ModelOutputSerializer(models, many=True).data})


@extend_schema(responses={200: OpenApiTypes.OBJECT})
class WorkerListView(APIView):
    """GET /api/workers: the live workers, their hosts, slots and the models they serve
    (`["*"]`: every model)."""

    def get(self, request):
        return Response({"workers": workers()})
