"""The registry's REST API (`/api/...`), and the registry endpoint other Lanthorns pull from
(`/registry/v1/...`). Reads need any valid API key (or a console session); changes need an
admin's. Every view is a thin shell over registry.services.
"""

import asyncio
import json
import re

from asgiref.sync import sync_to_async
from django.http import StreamingHttpResponse
from drf_spectacular.types import OpenApiTypes
from drf_spectacular.utils import OpenApiResponse, extend_schema
from rest_framework import permissions, status
from rest_framework.response import Response
from rest_framework.views import APIView

from console import roles
from core.validation import first_error
from registry import blobstore, services
from registry.serializers import (CheckOutputSerializer, PullInputSerializer, PullOutputSerializer,
                                  VersionInputSerializer)


# The OpenAPI description (/api/schema/): these views answer JSON objects described in the README.
JSON = extend_schema(request=OpenApiTypes.OBJECT, responses={200: OpenApiTypes.OBJECT})


class IsAdmin(permissions.BasePermission):
    message = "Only an admin can change models."

    def has_permission(self, request, view):
        return roles.is_admin(request.user)


class IsAdminOrReadOnly(IsAdmin):
    def has_permission(self, request, view):
        return request.method in permissions.SAFE_METHODS or super().has_permission(request, view)


def validated(serializer_class, data, **kwargs) -> dict:
    serializer = serializer_class(data=data, **kwargs)
    if not serializer.is_valid():
        param, message = first_error(serializer.errors)
        raise services.RegistryError(message, param=param, code="invalid_value")
    return serializer.validated_data


@JSON
class ModelListView(APIView):
    """GET /api/models: installed models with their versions and configuration."""

    @extend_schema(operation_id="api_models_list")
    def get(self, request):
        from registry.models import Model

        models = Model.objects.select_related("active_version").prefetch_related("versions__pulled_by")
        return Response({"models": [services.describe(model=m) for m in models]})


@JSON
class CatalogView(APIView):
    """GET /api/catalog: the curated models one can pull by name."""

    def get(self, request):
        return Response({"models": services.available()})


@JSON
class ModelDetailView(APIView):
    """GET /api/models/NAME; DELETE /api/models/NAME[?force=true] removes the whole model."""

    permission_classes = [permissions.IsAuthenticated, IsAdminOrReadOnly]

    def get(self, request, name):
        return Response(services.describe(model=services.get_model(name=name)))

    def delete(self, request, name):
        force = request.query_params.get("force", "").lower() in ("1", "true", "yes")
        return Response(services.remove(name=name, force=force))


@JSON
class VersionDetailView(APIView):
    """DELETE /api/models/NAME/versions/N (never the active one)."""

    permission_classes = [permissions.IsAuthenticated, IsAdminOrReadOnly]

    def delete(self, request, name, number):
        return Response(services.remove(name=name, number=number))


@JSON
class ModelConfigView(APIView):
    """GET the load configuration as JSON; PUT or PATCH some or all of its fields."""

    permission_classes = [permissions.IsAuthenticated, IsAdminOrReadOnly]

    def get(self, request, name):
        return Response(services.get_model(name=name).config())

    def patch(self, request, name):
        model = services.set_config(model=services.get_model(name=name), values=request.data)
        return Response(model.config())

    put = patch


@JSON
class RollbackView(APIView):
    """POST /api/models/NAME/rollback {"version": N}: activate N, or the version before the active one."""

    permission_classes = [permissions.IsAuthenticated, IsAdmin]

    def post(self, request, name):
        data = validated(VersionInputSerializer, request.data)
        version = services.rollback(name=name, number=data.get("version"))
        return Response(services.describe(model=version.model))


@extend_schema(request=VersionInputSerializer, responses={202: CheckOutputSerializer})
class CheckView(APIView):
    """POST /api/models/NAME/check {"version": N}: queue a re-hash and validation of the file;
    202 with the job (GET /api/jobs/check/ID for its progress and result)."""

    permission_classes = [permissions.IsAuthenticated, IsAdmin]

    def post(self, request, name):
        data = validated(VersionInputSerializer, request.data)
        check = services.start_check(version=services.get_version(name=name, number=data.get("version")),
                                     user=request.user)
        return Response(job_data(check), status=status.HTTP_202_ACCEPTED)


def job_data(job) -> dict:
    serializer = PullOutputSerializer if job.KIND == "pull" else CheckOutputSerializer
    return serializer(job).data


@extend_schema(responses={200: OpenApiTypes.OBJECT})
class JobDetailView(APIView):
    """GET /api/jobs/KIND/ID (KIND: pull or check): the job's state, progress and result."""

    def get(self, request, kind, job_id):
        return Response(job_data(services.get_job(kind=kind, job_id=job_id)))


@extend_schema(request=None, responses={202: OpenApiTypes.OBJECT})
class JobCancelView(APIView):
    """POST /api/jobs/KIND/ID/cancel: a queued job stops at once, a running one at its next chunk."""

    permission_classes = [permissions.IsAuthenticated, IsAdmin]

    def post(self, request, kind, job_id):
        job = services.cancel_job(job=services.get_job(kind=kind, job_id=job_id))
        return Response(job_data(job), status=status.HTTP_202_ACCEPTED)


@extend_schema(request=PullInputSerializer, responses={202: PullOutputSerializer})
class PullCreateView(APIView):
    """POST /api/pulls {"source", "name", "sha256", "api_key"}: queue a pull; 202 with the job."""

    permission_classes = [permissions.IsAuthenticated, IsAdmin]

    def post(self, request):
        data = validated(PullInputSerializer, request.data)
        pull = services.start_pull(source=data["source"], name=data.get("name") or None,
                                   sha256=data.get("sha256") or None, user=request.user,
                                   remote_key=data.get("api_key", ""))
        return Response(PullOutputSerializer(pull).data, status=status.HTTP_202_ACCEPTED)


@extend_schema(responses={200: PullOutputSerializer})
class PullDetailView(APIView):
    """GET /api/pulls/ID: the job's progress."""

    def get(self, request, pull_id):
        return Response(PullOutputSerializer(services.get_pull(pull_id=pull_id)).data)


def progress_line(pull) -> dict:
    """One line of the pull stream, in Ollama's shape."""
    if pull.status == pull.FAILED:
        return {"error": pull.error}
    if pull.status == pull.CANCELLED:
        return {"error": "the pull was cancelled"}
    if pull.status == pull.DONE:
        return {"status": "success", "model": pull.name, "version": pull.version.number if pull.version else None}
    line = {"status": pull.phase or pull.status}
    if pull.total_bytes:
        line.update(total=pull.total_bytes, completed=pull.done_bytes, transferred=pull.transferred_bytes,
                    rate=round(pull.rate), eta_seconds=pull.eta_seconds and round(pull.eta_seconds, 1))
    return line


async def progress_lines(pull_id):
    """The pull's progress lines (Ollama's shape) as it changes, until it ends; the last line
    is its outcome. Also what Ollama's `/api/pull` streams (inference/ollama.py)."""
    get = sync_to_async(services.get_pull)
    last = None
    while True:
        pull = await get(pull_id=pull_id)
        line = progress_line(pull)
        if line != last:
            yield line
            last = line
        if pull.finished:
            return
        await asyncio.sleep(0.5)


@extend_schema(responses={(200, "application/x-ndjson"): OpenApiResponse(OpenApiTypes.STR, description="NDJSON progress lines")})
class PullStreamView(APIView):
    """GET /api/pulls/ID/stream: NDJSON progress lines until the pull ends (Ollama's format)."""

    def get(self, request, pull_id):
        services.get_pull(pull_id=pull_id)  # 404 before the stream starts

        async def lines():
            async for line in progress_lines(pull_id):
                yield json.dumps(line) + "\n"

        return StreamingHttpResponse(lines(), content_type="application/x-ndjson")


# The registry endpoint: what `lanthorn pull lanthorn://HOST:PORT/MODEL[:VERSION]` reads.

@JSON
class ManifestView(APIView):
    """GET /registry/v1/models/NAME/manifest[?version=N]: the file's digest, size and chunks."""

    def get(self, request, name):
        number = request.query_params.get("version")
        if number is not None and not number.isdigit():
            raise services.RegistryError("version must be a number", param="version")
        version = services.get_version(name=name, number=int(number) if number else None)
        model = version.model
        return Response({
            "name": model.name,
            "version": version.number,
            "digest": version.digest,
            "size": version.size,
            "chunks": [c.as_dict() for c in blobstore.manifest(version.digest)],
            "config": {k: v for k, v in model.config().items() if k != "model_path"},
            "description": model.description,
            "license": model.license,
        })


RANGE = re.compile(r"^bytes=(\d*)-(\d*)$")


@extend_schema(responses={(200, "application/octet-stream"): OpenApiTypes.BINARY,
                          (206, "application/octet-stream"): OpenApiTypes.BINARY,
                          416: OpenApiResponse(description="The range is not satisfiable.")})
class BlobView(APIView):
    """GET /registry/v1/blobs/DIGEST: the file, or a byte range of it (`Range: bytes=A-B`)."""

    def get(self, request, digest):
        from registry.models import ModelVersion

        if not ModelVersion.objects.filter(digest=digest).exists() or not blobstore.has_blob(digest):
            raise services.RegistryError(f"no blob sha256:{digest}", code="not_found", status=404)
        path = blobstore.blob_path(digest)
        size = path.stat().st_size
        start, end, code = 0, size - 1, 200
        header = request.headers.get("Range")
        if header:
            match = RANGE.match(header.strip())
            if not match or match.groups() == ("", ""):
                return Response({"error": {"message": f"bad Range {header!r}", "type": "invalid_request_error",
                                           "param": None, "code": "bad_range"}}, status=416)
            first, last = match.groups()
            if first:
                start, end = int(first), min(int(last), size - 1) if last else size - 1
            else:  # the last N bytes
                start = max(0, size - int(last))
            if start > end or start >= size:
                response = Response(status=416)
                response["Content-Range"] = f"bytes */{size}"
                return response
            code = 206

        async def body():
            with open(path, "rb") as f:
                f.seek(start)
                left = end - start + 1
                while left > 0:
                    block = await asyncio.to_thread(f.read, min(left, blobstore.BLOCK))
                    if not block:
                        return
                    left -= len(block)
                    yield block

        response = StreamingHttpResponse(body(), status=code, content_type="application/octet-stream")
        response["Content-Length"] = str(end - start + 1)
        response["Accept-Ranges"] = "bytes"
        response["ETag"] = f'"{digest}"'
        if code == 206:
            response["Content-Range"] = f"bytes {start}-{end}/{size}"
        return response
