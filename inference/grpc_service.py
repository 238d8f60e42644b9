"""The gRPC door (proto/lanthorn/v1/inference.proto), served by `lanthorn grpc` on grpcio's
asyncio server, so each call drives a RequestSession directly: the same validation, queues,
watchdog, cancel and usage rows (interface `grpc.chat`, `grpc.generate`, `grpc.embed`) as
every other door. A call the client cancels (or whose deadline passes) cancels its session,
which stops the generation in the worker. Server reflection and the standard health service
are on; health says SERVING while an inference worker is alive.
"""

import asyncio
import logging
import signal

import grpc
from channels.db import database_sync_to_async
from grpc_health.v1 import health, health_pb2, health_pb2_grpc
from grpc_reflection.v1alpha import reflection

from console import services as console_services
from core.errors import ApiError, invalid_key
from core.workers import INFERENCE, live_workers
from inference.grpc_stubs import pb2, pb2_grpc
from inference.session import Done, Embedded, Failed, RequestSession, Text

log = logging.getLogger(__name__)

SERVICE = pb2.DESCRIPTOR.services_by_name["Inference"].full_name
STATUS = {400: grpc.StatusCode.INVALID_ARGUMENT, 401: grpc.StatusCode.UNAUTHENTICATED,
          403: grpc.StatusCode.PERMISSION_DENIED, 404: grpc.StatusCode.NOT_FOUND,
          429: grpc.StatusCode.RESOURCE_EXHAUSTED, 499: grpc.StatusCode.CANCELLED,
          503: grpc.StatusCode.UNAVAILABLE, 504: grpc.StatusCode.DEADLINE_EXCEEDED}
HEALTH_INTERVAL = 5.0


def authorization(context) -> str:
    """The `authorization` metadata as an HTTP header: `Bearer <key>` (a bare key is taken too)."""
    value = dict(context.invocation_metadata()).get("authorization", "")
    return value if not value or value.lower().startswith("bearer ") else f"Bearer {value}"


def origin(context) -> dict:
    """`source_ip` and `user_agent` of a call, for the audit trail (peers read `ipv4:1.2.3.4:5678`,
    `ipv6:[::1]:5678`)."""
    peer = context.peer() or ""
    address = peer.partition(":")[2].rsplit(":", 1)[0].strip("[]") if peer.startswith(("ipv4:", "ipv6:")) else ""
    agent = dict(context.invocation_metadata()).get("user-agent", "")
    return {"source_ip": address, "user_agent": agent[:300]}


async def abort(context, error: ApiError):
    context.set_trailing_metadata((("lanthorn-error-code", error.code or error.type),
                                   ("lanthorn-error-param", error.param or "")))
    await context.abort(STATUS.get(error.status, grpc.StatusCode.INTERNAL), error.message)


def sampling(options) -> dict:
    out = {name: getattr(options, name) for name in ("max_tokens", "temperature", "top_p", "seed")
           if options.HasField(name)}
    if options.stop:
        out["stop"] = list(options.stop)
    return out


def usage(prompt_tokens: int, completion_tokens: int = 0) -> pb2.Usage:
    return pb2.Usage(prompt_tokens=prompt_tokens, completion_tokens=completion_tokens,
                     total_tokens=prompt_tokens + completion_tokens)


async def started(context, interface: str, kind: str, body: dict) -> RequestSession:
    """A session that has checked the key and queued the request; aborts the call on an error."""
    session = RequestSession(interface=interface, kind=kind, origin=origin(context))
    try:
        await session.start(body, authorization=authorization(context))
    except ApiError as error:
        await abort(context, error)
    return session


_authenticate = database_sync_to_async(console_services.authenticate_key, thread_sensitive=False)


@database_sync_to_async
def _models() -> list:
    from registry.models import Model

    return [pb2.Model(name=m.name, version=v.number, digest=v.digest, size=v.size, architecture=v.architecture,
                      quantization=v.quantization, context_length=v.context_length or 0)
            for m in Model.objects.select_related("active_version").filter(active_version__isnull=False)
            for v in [m.active_version]]


class InferenceService(pb2_grpc.InferenceServicer):
    async def Chat(self, request, context):
        body = {"model": request.model, "messages": [{"role": m.role, "content": m.content}
                                                     for m in request.messages], **sampling(request.options)}
        async for response in self._stream(context, "grpc.chat", "chat", body):
            yield response

    async def Generate(self, request, context):
        body = {"model": request.model, "prompt": request.prompt, **sampling(request.options)}
        async for response in self._stream(context, "grpc.generate", "completion", body):
            yield response

    async def _stream(self, context, interface: str, kind: str, body: dict):
        session = await started(context, interface, kind, {**body, "stream": True})
        try:
            async for event in session.events():
                if isinstance(event, Text):
                    for text in event.pieces:
                        yield pb2.GenerateResponse(text=text, request_id=session.request_id)
                elif isinstance(event, Done):
                    yield pb2.GenerateResponse(finish_reason=event.finish_reason, request_id=session.request_id,
                                               usage=usage(event.prompt_tokens, event.completion_tokens))
                elif isinstance(event, Failed):
                    await abort(context, event.error)
        finally:
            await session.cancel()  # the call was cancelled: stop the worker (a no-op once it ended)

    async def Embed(self, request, context):
        session = await started(context, "grpc.embed", "embedding",
                                {"model": request.model, "input": list(request.input)})
        async for event in session.events():
            if isinstance(event, Embedded):
                return pb2.EmbedResponse(model=request.model, usage=usage(event.prompt_tokens),
                                         embeddings=[pb2.Embedding(values=v) for v in event.vectors])
            if isinstance(event, Failed):
                await abort(context, event.error)

    async def ListModels(self, request, context):
        try:
            await _authenticate(raw=console_services.bearer_token(authorization(context)))
        except console_services.InvalidKey as exc:
            await abort(context, invalid_key(str(exc)))
        return pb2.ListModelsResponse(models=await _models())


async def watch_health(servicer) -> None:
    """SERVING while an inference worker sends heartbeats, NOT_SERVING otherwise."""
    serving = health_pb2.HealthCheckResponse.SERVING
    while True:
        try:
            alive = bool(await asyncio.to_thread(live_workers, kind=INFERENCE))
        except Exception:
            log.warning("the health check could not reach Redis", exc_info=True)
            alive = False
        status = serving if alive else health_pb2.HealthCheckResponse.NOT_SERVING
        for name in ("", SERVICE):
            await servicer.set(name, status)
        await asyncio.sleep(HEALTH_INTERVAL)


async def serve(*, host: str, port: int) -> None:
    server = grpc.aio.server()
    pb2_grpc.add_InferenceServicer_to_server(InferenceService(), server)
    health_servicer = health.aio.HealthServicer()
    health_pb2_grpc.add_HealthServicer_to_server(health_servicer, server)
    reflection.enable_server_reflection(
        (SERVICE, health_pb2.DESCRIPTOR.services_by_name["Health"].full_name, reflection.SERVICE_NAME), server)
    if server.add_insecure_port(f"{host}:{port}") == 0:
        raise RuntimeError(f"could not listen on {host}:{port}: set LANTHORN_GRPC_PORT to a free port")
    await server.start()
    watcher = asyncio.create_task(watch_health(health_servicer))
    loop = asyncio.get_running_loop()
    for sig in (signal.SIGTERM, signal.SIGINT):  # calls in flight are cancelled: their generations stop
        loop.add_signal_handler(sig, lambda: asyncio.ensure_future(server.stop(2)))
    print(f"Lanthorn gRPC API on {host}:{port}", flush=True)
    await server.wait_for_termination()
    watcher.cancel()
