"""Ollama's plain endpoints: `/api/tags`, `/api/show`, `/api/ps`, `/api/version` (the streaming
ones are consumers, in inference/ollama.py). Errors are Ollama's `{"error": "…"}`."""

from importlib.metadata import PackageNotFoundError, version as package_version

from drf_spectacular.types import OpenApiTypes
from drf_spectacular.utils import extend_schema
from rest_framework import permissions
from rest_framework.response import Response
from rest_framework.views import APIView

from core.drf import openai_exception_handler
from core.errors import ApiError
from core.workers import INFERENCE, live_workers
from inference.ollama import model_name
from registry import services as registry_services
from registry.models import Model, ModelVersion


def ollama_exception_handler(exc, context):
    response = openai_exception_handler(exc, context)
    if response is not None and isinstance(response.data, dict) and "error" in response.data:
        response.data = {"error": response.data["error"]["message"]}
    return response


@extend_schema(request=OpenApiTypes.OBJECT, responses={200: OpenApiTypes.OBJECT}, tags=["Ollama-compatible"])
class OllamaView(APIView):
    def get_exception_handler(self):
        return ollama_exception_handler


def parameter_size(count: int | None) -> str:
    if not count:
        return ""
    return f"{count / 1e9:.1f}B" if count >= 1e9 else f"{count / 1e6:.0f}M"


def details(version: ModelVersion) -> dict:
    return {"parent_model": "", "format": "gguf", "family": version.architecture,
            "families": [version.architecture] if version.architecture else None,
            "parameter_size": parameter_size(version.parameter_count),
            "quantization_level": version.quantization}


def summary(model: Model) -> dict:
    version = model.active_version
    return {"name": model.name, "model": model.name, "modified_at": version.created_at.isoformat(),
            "size": version.size, "digest": version.digest, "details": details(version)}


def served_models():
    return Model.objects.select_related("active_version").filter(active_version__isnull=False)


class TagsView(OllamaView):
    """GET /api/tags: the models that have an active version."""

    def get(self, request):
        return Response({"models": [summary(m) for m in served_models()]})


class PsView(OllamaView):
    """GET /api/ps: the models the running workers keep loaded (every worker loads every active
    model at start), with no expiry: Lanthorn keeps them loaded."""

    def get(self, request):
        if not live_workers(kind=INFERENCE):
            return Response({"models": []})
        return Response({"models": [{**summary(m), "size_vram": 0, "context_length": m.n_ctx}
                                    for m in served_models()]})


class ShowView(OllamaView):
    """POST /api/show {"model"}: the active version's details, template and parameters."""

    def post(self, request):
        name = model_name(request.data.get("model") or request.data.get("name"))
        if not isinstance(name, str) or not name:
            raise ApiError(400, "model: required.", param="model")
        model = registry_services.get_model(name=name)
        version = model.active_version
        if version is None:
            raise ApiError(404, f"model '{name}' has no active version", code="model_not_found")
        parameters = "\n".join(f"{k} {getattr(model, k)}" for k in ("temperature", "top_p", "top_k", "max_tokens", "n_ctx"))
        arch = version.architecture
        return Response({
            "license": model.license, "modelfile": f"# Lanthorn model {model.name}:{version.number}\n",
            "parameters": parameters, "template": version.chat_template, "details": details(version),
            "model_info": {"general.architecture": arch, "general.parameter_count": version.parameter_count,
                           f"{arch}.context_length": version.context_length},
            "capabilities": ["completion", "embedding"], "modified_at": version.created_at.isoformat()})


class VersionView(OllamaView):
    """GET /api/version (no key needed, as Ollama's): Lanthorn's version."""

    permission_classes = [permissions.AllowAny]

    def get(self, request):
        try:
            return Response({"version": package_version("lanthorn")})
        except PackageNotFoundError:
            return Response({"version": "0.0.0"})
