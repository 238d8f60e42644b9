"""The OpenAI-compatible HTTP API.

Completions are async views: they enqueue the request for a worker, then pass on
what the worker publishes on the channel layer as it arrives (SSE when `stream`
is true). Whatever happens, the request leaves one usage row.
"""

import asyncio
import json
import time

from channels.db import database_sync_to_async
from channels.layers import get_channel_layer
from django.http import JsonResponse, StreamingHttpResponse
from django.views.decorators.csrf import csrf_exempt
from django.views.decorators.http import require_POST
from rest_framework import serializers
from rest_framework.response import Response
from rest_framework.views import APIView

from inference import openai_format, services
from inference.errors import ApiError
from inference.streams import worker_events
from registry.models import Model

start_request = database_sync_to_async(services.start_request)
finish_request = database_sync_to_async(services.finish_request)
cancel_request = database_sync_to_async(services.cancel_request)


@csrf_exempt
@require_POST
async def chat_completions(request):
    return await _complete(request, "chat")


@csrf_exempt
@require_POST
async def completions(request):
    return await _complete(request, "completion")


async def _complete(request, kind: str):
    call = services.ApiCall(endpoint=request.path)
    layer = get_channel_layer()
    channel = await layer.new_channel()
    try:
        prepared = await start_request(call=call, kind=kind, body=request.body, reply_channel=channel,
                                       authorization=request.headers.get("Authorization", ""))
    except ApiError as error:
        await _failed(call, error)
        return error.response()
    fmt = openai_format.Formatter(kind=kind, request_id=call.request_id, model=call.model_name,
                                  created=call.created, fingerprint=f"lanthorn-{call.version_digest[:12]}",
                                  include_usage=prepared.include_usage)
    events = worker_events(layer, channel)
    # Wait for the worker's first word, so that an error before any text (a prompt too long
    # for the context, say) still gets its own HTTP status, streamed or not.
    try:
        head = await anext(events)
        if head["type"] == "inference.error":
            raise ApiError.from_dict(head["error"])
    except ApiError as error:
        await events.aclose()
        await _failed(call, error)
        return error.response()
    except asyncio.CancelledError:
        await _cancelled(call, status=499)
        raise
    events = _chain(head, events)
    if prepared.stream:
        response = StreamingHttpResponse(_stream(call, fmt, events), content_type="text/event-stream")
        response["Cache-Control"] = "no-cache"
        response["X-Accel-Buffering"] = "no"
        return response
    return await _collect(call, fmt, events)


async def _chain(head: dict, events):
    yield head
    async for message in events:
        yield message


async def _cancelled(call: services.ApiCall, *, status: int) -> None:
    """The client went away: stop the worker and record the request."""
    call.status_code, call.outcome, call.finish_reason = status, "cancelled", "cancelled"
    await cancel_request(request_id=call.request_id)
    await finish_request(call=call)


async def _failed(call: services.ApiCall, error: ApiError) -> None:
    """The request failed after it was enqueued: make sure no worker still works on it."""
    call.fail(error)
    await cancel_request(request_id=call.request_id)
    await finish_request(call=call)


def _on_done(call: services.ApiCall, message: dict) -> dict:
    call.prompt_tokens = message["prompt_tokens"]
    call.completion_tokens = message["completion_tokens"]
    call.finish_reason = message["finish_reason"]
    return openai_format.usage(call.prompt_tokens, call.completion_tokens)


async def _stream(call, fmt, events):
    first = True
    try:
        async for message in events:
            if message["type"] == "inference.token":
                if first:
                    call.ttft = time.monotonic() - call.started
                for text in message["text"]:
                    call.completion_tokens += 1
                    yield fmt.text_chunk(text, first=first)
                    first = False
            elif message["type"] == "inference.done":
                usage = _on_done(call, message)
                yield fmt.final_chunks(finish_reason=call.finish_reason, first=first, usage=usage)
            else:
                raise ApiError.from_dict(message["error"])
    except ApiError as error:
        yield error.sse() + openai_format.DONE
        await _failed(call, error)
        return
    except (asyncio.CancelledError, GeneratorExit):
        await _cancelled(call, status=200)
        raise
    else:
        await finish_request(call=call)


async def _collect(call, fmt, events):
    parts = []
    try:
        async for message in events:
            if message["type"] == "inference.token":
                if call.ttft is None:
                    call.ttft = time.monotonic() - call.started
                parts.extend(message["text"])
            elif message["type"] == "inference.done":
                usage = _on_done(call, message)
                body = fmt.response(text="".join(parts), finish_reason=call.finish_reason, usage=usage)
                await finish_request(call=call)
                return JsonResponse(body, json_dumps_params={"ensure_ascii": False})
            else:
                raise ApiError.from_dict(message["error"])
    except ApiError as error:
        await _failed(call, error)
        return error.response()
    except asyncio.CancelledError:
        call.completion_tokens = len(parts)
        await _cancelled(call, status=499)
        raise


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


class ListModelsView(APIView):
    """GET /v1/models: the models that have an active version."""

    def get(self, request):
        models = Model.objects.filter(active_version__isnull=False)
        return Response({"object": "list", "data": ModelOutputSerializer(models, many=True).data})
