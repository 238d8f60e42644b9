"""The Ollama-compatible API: `/api/chat`, `/api/generate` and `/api/embed` (consumers on the
RequestSession, like the OpenAI doors), `/api/pull` (a consumer streaming the registry's pull
job), and `/api/tags`, `/api/show`, `/api/ps`, `/api/version` (plain views, ollama_views.py).

An Ollama request is translated into the OpenAI-shaped request the session validates, so the
limits, checks and usage rows are the same as on every other door. Ollama's `options` map onto
the sampling and load configuration: `num_predict` → max_tokens, `temperature`, `top_p`,
`seed`, `stop`, and `num_ctx` (at most the model's loaded n_ctx). Model names may carry
Ollama's `:latest` tag. Errors are Ollama's `{"error": "…"}`.
"""

import json
import time
from datetime import datetime, timezone

from channels.db import database_sync_to_async
from channels.exceptions import StopConsumer
from channels.generic.http import AsyncHttpConsumer

from console import services as console_services
from console.roles import is_admin
from core.encoding import json_bytes
from core.errors import ApiError, invalid_key
from inference.consumers import EmbeddingsConsumer, SessionConsumer
from inference.services import Prepared
from inference.session import Done, Embedded, Failed, Text
from registry import services as registry_services
from registry.views import progress_lines

NDJSON_HEADERS = [(b"Content-Type", b"application/x-ndjson")]
SAMPLING_OPTIONS = {"num_predict": "max_tokens", "temperature": "temperature", "top_p": "top_p",
                    "top_k": "top_k", "seed": "seed", "stop": "stop", "num_ctx": "num_ctx"}
OPTION_OF = {field: option for option, field in SAMPLING_OPTIONS.items()}


def model_name(name):
    """Lanthorn's name for an Ollama model name (`gemma3-270m:latest` is `gemma3-270m`)."""
    if isinstance(name, str) and name.endswith(":latest"):
        return name[: -len(":latest")]
    return name


def now_iso() -> str:
    return datetime.now(timezone.utc).isoformat().replace("+00:00", "Z")


def parse_body(body: bytes) -> dict:
    try:
        data = json.loads(body or b"{}")
    except ValueError:
        raise ApiError(400, "We could not parse the JSON body of your request.") from None
    if not isinstance(data, dict):
        raise ApiError(400, "The request body must be a JSON object.")
    return data


def ollama_error(error: ApiError) -> dict:
    """Ollama's error body; a bad option is named as the client sent it (`options.num_predict`)."""
    message = error.message
    option = OPTION_OF.get(error.param or "")
    if option and message.startswith(f"{error.param}:"):
        message = f"options.{option}:" + message[len(error.param) + 1:]
    return {"error": message}


def refuse_unsupported(data: dict, *fields: str) -> None:
    for field in fields:
        if data.get(field):
            raise ApiError(400, f"{field}: not supported by Lanthorn.", param=field, code="unsupported")


def sampling(data: dict) -> dict:
    """Ollama's `options` as the session's sampling fields (other options are ignored, as Ollama
    ignores the ones a model does not use)."""
    options = data.get("options") or {}
    if not isinstance(options, dict):
        raise ApiError(400, "options: must be an object.", param="options")
    out = {"model": model_name(data.get("model")), "stream": data.get("stream", True)}
    for ollama, field in SAMPLING_OPTIONS.items():
        if options.get(ollama) is not None:
            out[field] = options[ollama]
    if isinstance(out.get("max_tokens"), int) and out["max_tokens"] < 0:
        del out["max_tokens"]  # Ollama's -1 (no limit) and -2 (fill the context): the model's max_tokens
    return out


class OllamaConsumer(SessionConsumer):
    """What /api/chat and /api/generate share: NDJSON lines, or one object with `stream: false`."""

    interface_name = ""
    raw_body = False  # request_data parses and translates the body

    def interface(self) -> str:
        return self.interface_name

    def error_body(self, error: ApiError) -> dict:
        return ollama_error(error)

    def line(self, text: str) -> dict:
        raise NotImplementedError

    async def respond(self, prepared: Prepared) -> None:
        call = self.session.call
        started, parts = False, []
        async for event in self.session.events():
            if isinstance(event, Text):
                if not prepared.stream:
                    parts.extend(event.pieces)
                    continue
                if not started:
                    started = True
                    await self.send_headers(status=200, headers=NDJSON_HEADERS)
                await self.send_body(b"".join(json_bytes(self.line(t)) + b"\n" for t in event.pieces),
                                     more_body=True)
            elif isinstance(event, Done):
                total = time.monotonic() - call.started
                first = call.ttft if call.ttft is not None else total
                last = {**self.line("".join(parts)), "done": True, "done_reason": event.finish_reason,
                        "total_duration": int(total * 1e9), "load_duration": 0,
                        "prompt_eval_count": event.prompt_tokens, "prompt_eval_duration": int(first * 1e9),
                        "eval_count": event.completion_tokens, "eval_duration": int((total - first) * 1e9)}
                if not prepared.stream:
                    await self.send_json(200, last)
                    return
                if not started:
                    await self.send_headers(status=200, headers=NDJSON_HEADERS)
                await self.send_body(json_bytes(last) + b"\n")
            elif isinstance(event, Failed):
                if started:  # the status line has gone: the error travels as a line
                    await self.send_body(json_bytes(self.error_body(event.error)) + b"\n")
                else:
                    await self.send_error(event.error)


class ChatConsumer(OllamaConsumer):
    """POST /api/chat."""

    interface_name = "ollama.chat"

    def request_data(self, body: bytes) -> tuple[str, dict]:
        data = parse_body(body)
        self.model = data.get("model")
        refuse_unsupported(data, "format", "tools")
        return "chat", {**sampling(data), "messages": data.get("messages")}

    def line(self, text: str) -> dict:
        return {"model": self.model, "created_at": now_iso(), "message": {"role": "assistant", "content": text},
                "done": False}


class GenerateConsumer(OllamaConsumer):
    """POST /api/generate: the prompt in the model's chat template (with `system`), or as it is
    with `raw: true`."""

    interface_name = "ollama.generate"

    def request_data(self, body: bytes) -> tuple[str, dict]:
        data = parse_body(body)
        self.model = data.get("model")
        refuse_unsupported(data, "format", "images", "suffix", "template", "context")
        if data.get("raw"):
            return "completion", {**sampling(data), "prompt": data.get("prompt")}
        messages = [{"role": "user", "content": data.get("prompt")}]
        if data.get("system"):
            messages.insert(0, {"role": "system", "content": data["system"]})
        return "chat", {**sampling(data), "messages": messages}

    def line(self, text: str) -> dict:
        return {"model": self.model, "created_at": now_iso(), "response": text, "done": False}


class EmbedConsumer(EmbeddingsConsumer):
    """POST /api/embed: Ollama's embeddings (`input`: a string or a list)."""

    raw_body = False  # request_data parses and translates the body

    def interface(self) -> str:
        return "ollama.embed"

    def error_body(self, error: ApiError) -> dict:
        return ollama_error(error)

    def request_data(self, body: bytes) -> tuple[str, dict]:
        data = parse_body(body)
        self.model = data.get("model")
        return "embedding", {"model": model_name(data.get("model")), "input": data.get("input")}

    async def respond(self, prepared: Prepared) -> None:
        call = self.session.call
        async for event in self.session.events():
            if isinstance(event, Embedded):
                await self.send_json(200, {
                    "model": self.model, "embeddings": event.vectors, "load_duration": 0,
                    "total_duration": int((time.monotonic() - call.started) * 1e9),
                    "prompt_eval_count": event.prompt_tokens})
            elif isinstance(event, Failed):
                await self.send_error(event.error)


@database_sync_to_async
def _admin(authorization: str):
    """The admin an `Authorization` header's key belongs to; ApiError 401 or 403 otherwise."""
    try:
        key = console_services.authenticate_key(raw=console_services.bearer_token(authorization))
    except console_services.InvalidKey as exc:
        raise invalid_key(str(exc)) from exc
    if not is_admin(key.user):
        raise ApiError(403, "Only an admin can pull models.", code="permission_denied")
    return key.user


_start_pull = database_sync_to_async(registry_services.start_pull)


class PullConsumer(AsyncHttpConsumer):
    """POST /api/pull {"model", "stream"}: an admin's key starts the registry's pull job for a
    name (a catalog name, or any source `lanthorn pull` takes) and follows its progress, as
    NDJSON lines, or as the one final line with `stream: false`."""

    channel_layer_alias = None

    async def http_request(self, message):
        self.body.append(message.get("body", b""))
        if message.get("more_body"):
            return
        try:
            if self.scope["method"] != "POST":
                raise ApiError(405, "Use POST for this endpoint.", code="method_not_allowed")
            user = await _admin(dict(self.scope["headers"]).get(b"authorization", b"").decode("latin-1"))
            data = parse_body(b"".join(self.body))
            name = model_name(data.get("model") or data.get("name"))
            if not isinstance(name, str) or not name:
                raise ApiError(400, "model: required.", param="model")
            pull = await _start_pull(source=name, user=user)
        except ApiError as error:
            await self.send_response(error.status, json_bytes({"error": error.message}), headers=[
                (b"Content-Type", b"application/json")])
            raise StopConsumer()
        if data.get("stream", True):
            await self.send_headers(status=200, headers=NDJSON_HEADERS)
            await self.send_body(json_bytes({"status": "pulling manifest"}) + b"\n", more_body=True)
            async for line in progress_lines(pull.pk):
                await self.send_body(json_bytes(line) + b"\n", more_body=True)
            await self.send_body(b"")
        else:
            async for line in progress_lines(pull.pk):
                pass
            await self.send_response(500 if "error" in line else 200, json_bytes(line),
                                     headers=[(b"Content-Type", b"application/json")])
        raise StopConsumer()
