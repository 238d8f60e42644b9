"""`LLMClient` and `AsyncLLMClient`: the same calls, blocking or async, over Lanthorn's
OpenAI-compatible API (`/v1/completions`, `/v1/chat/completions`, `/v1/models`, `/v1/embeddings`).

What a call sends and how an answer is read lives once, in `_Base`; the two classes only do
the I/O. Failed calls raise typed errors (errors.py). 429 and 503 answers and connection
failures are retried up to `max_retries` times, waiting as `Retry-After` says (else 0.5 s,
doubling); a stream is retried only before its first byte.
"""

from __future__ import annotations

import asyncio
import json
import os
import time
from collections.abc import AsyncIterator, Iterator

import httpx

from lanthorn_sdk.errors import (
    APIConnectionError,
    LanthornError,
    RateLimitError,
    ServiceUnavailableError,
    from_response,
)
from lanthorn_sdk.types import Generation, Model, Usage

RETRYABLE = (RateLimitError, ServiceUnavailableError, APIConnectionError)
UNAVAILABLE_CODES = {"no_worker", "worker_lost", "model_unavailable", "timeout"}
MAX_WAIT = 30.0


class _Base:
    def __init__(self, endpoint: str | None = None, api_key: str | None = None, *, model: str | None = None,
                 timeout: float = 120.0, max_retries: int = 2):
        """`endpoint` and `api_key` default to $LANTHORN_ENDPOINT (else http://localhost:8000) and
        $LANTHORN_API_KEY; `model` to the first model the server lists."""
        self.endpoint = (endpoint or os.environ.get("LANTHORN_ENDPOINT") or "http://localhost:8000").rstrip("/")
        self.api_key = api_key or os.environ.get("LANTHORN_API_KEY") or ""
        self.model = model
        self.timeout = timeout
        self.max_retries = max_retries

    def _headers(self) -> dict:
        headers = {"User-Agent": "lanthorn-sdk-python/0.1"}
        if self.api_key:
            headers["Authorization"] = f"Bearer {self.api_key}"
        return headers

    @staticmethod
    def _body(model: str, params: dict, **fields) -> dict:
        return {"model": model, **fields, **{k: v for k, v in params.items() if v is not None}}

    def _wait(self, attempt: int, error: LanthornError) -> float | None:
        """Seconds to wait before trying again, or None to give up."""
        if attempt >= self.max_retries or not isinstance(error, RETRYABLE):
            return None
        if error.retry_after is not None:
            return min(error.retry_after, MAX_WAIT)
        return min(0.5 * 2 ** attempt, MAX_WAIT)

    @staticmethod
    def _error(response: httpx.Response, content: bytes) -> LanthornError:
        try:
            body = json.loads(content)
        except ValueError:
            body = None
        try:
            retry_after = float(response.headers["Retry-After"])
        except (KeyError, ValueError):
            retry_after = None
        return from_response(response.status_code, body, retry_after)

    @staticmethod
    def _sse_data(line: str) -> dict | None:
        """The JSON of one SSE line (None for other lines and [DONE]); raises a streamed error."""
        if not line.startswith("data: ") or line == "data: [DONE]":
            return None
        data = json.loads(line[len("data: "):])
        if "error" in data:
            error = data["error"]
            cls = ServiceUnavailableError if error.get("code") in UNAVAILABLE_CODES else LanthornError
            raise cls(error.get("message", "the stream failed"), code=error.get("code"),
                      param=error.get("param"), type=error.get("type"))
        return data

    @staticmethod
    def _chunk_text(chunk: dict) -> str:
        choice = (chunk.get("choices") or [{}])[0]
        if "delta" in choice:
            return choice["delta"].get("content") or ""
        return choice.get("text") or ""

    @staticmethod
    def _generation(body: dict) -> Generation:
        choice = body["choices"][0]
        text = choice["message"]["content"] if "message" in choice else choice["text"]
        return Generation(text=text or "", finish_reason=choice.get("finish_reason"),
                          usage=Usage(**body.get("usage") or {}), model=body.get("model", ""), id=body.get("id", ""))

    @staticmethod
    def _models(body: dict) -> list[Model]:
        return [Model(id=m["id"], created=m.get("created", 0), owned_by=m.get("owned_by", "")) for m in body["data"]]

    @staticmethod
    def _request_for(prompt: str | None, messages: list[dict] | None) -> tuple[str, dict]:
        if (prompt is None) == (messages is None):
            raise ValueError("give either prompt or messages")
        if messages is not None:
            return "/v1/chat/completions", {"messages": messages}
        return "/v1/completions", {"prompt": prompt}

    def _default_model(self, listed: list[Model]) -> str:
        """The first model the server lists, remembered for later calls."""
        if not listed:
            raise LanthornError("the server lists no models: pass model=")
        self.model = listed[0].id
        return self.model

    @staticmethod
    def _embeddings(body: dict) -> list[list[float]]:
        return [item["embedding"] for item in sorted(body["data"], key=lambda item: item["index"])]


class LLMClient(_Base):
    """The blocking client. Use it as a context manager, or call close()."""

    def __init__(self, endpoint: str | None = None, api_key: str | None = None, **options):
        super().__init__(endpoint, api_key, **options)
        self._http = httpx.Client(base_url=self.endpoint, timeout=self.timeout, headers=self._headers())

    def __enter__(self) -> LLMClient:
        return self

    def __exit__(self, *exc) -> None:
        self.close()

    def close(self) -> None:
        self._http.close()

    def generate(self, prompt: str, *, model: str | None = None, **params) -> Generation:
        """A text completion. params: max_tokens, temperature, top_p, stop, seed."""
        return self._generation(self._call("POST", "/v1/completions",
                                           self._body(self._model(model), params, prompt=prompt)))

    def chat(self, messages: list[dict], *, model: str | None = None, **params) -> Generation:
        """A chat completion of `messages` ([{"role": "user", "content": "…"}, …])."""
        return self._generation(self._call("POST", "/v1/chat/completions",
                                           self._body(self._model(model), params, messages=messages)))

    def stream(self, prompt: str | None = None, *, messages: list[dict] | None = None, model: str | None = None,
               **params) -> Iterator[str]:
        """Yields the answer's text as it is generated (a prompt, or chat messages)."""
        path, fields = self._request_for(prompt, messages)
        body = self._body(self._model(model), params, stream=True, **fields)
        started = False
        for attempt in range(self.max_retries + 1):
            try:
                with self._http.stream("POST", path, json=body) as response:
                    if response.status_code >= 400:
                        raise self._error(response, response.read())
                    for line in response.iter_lines():
                        chunk = self._sse_data(line)
                        if chunk is not None:
                            text = self._chunk_text(chunk)
                            if text:
                                started = True
                                yield text
                    return
            except httpx.TransportError as exc:
                error: LanthornError = APIConnectionError(str(exc))
            except LanthornError as exc:
                error = exc
            wait = None if started else self._wait(attempt, error)
            if wait is None:
                raise error
            time.sleep(wait)

    def models(self) -> list[Model]:
        return self._models(self._call("GET", "/v1/models"))

    def embed(self, input: str | list[str], *, model: str | None = None) -> list[list[float]]:
        """One embedding per input string."""
        return self._embeddings(self._call("POST", "/v1/embeddings", {"model": self._model(model), "input": input}))

    def _model(self, model: str | None) -> str:
        return model or self.model or self._default_model(self.models())

    def _call(self, method: str, path: str, body: dict | None = None) -> dict:
        for attempt in range(self.max_retries + 1):
            try:
                response = self._http.request(method, path, json=body)
                if response.status_code < 400:
                    return response.json()
                error: LanthornError = self._error(response, response.content)
            except httpx.TransportError as exc:
                error = APIConnectionError(str(exc))
            wait = self._wait(attempt, error)
            if wait is None:
                raise error
            time.sleep(wait)
        raise AssertionError("unreachable")


class AsyncLLMClient(_Base):
    """The async client: the same calls, awaited; `stream` is an async iterator."""

    def __init__(self, endpoint: str | None = None, api_key: str | None = None, **options):
        super().__init__(endpoint, api_key, **options)
        self._http = httpx.AsyncClient(base_url=self.endpoint, timeout=self.timeout, headers=self._headers())

    async def __aenter__(self) -> AsyncLLMClient:
        return self

    async def __aexit__(self, *exc) -> None:
        await self.close()

    async def close(self) -> None:
        await self._http.aclose()

    async def generate(self, prompt: str, *, model: str | None = None, **params) -> Generation:
        return self._generation(await self._call("POST", "/v1/completions",
                                                 self._body(await self._model(model), params, prompt=prompt)))

    async def chat(self, messages: list[dict], *, model: str | None = None, **params) -> Generation:
        return self._generation(await self._call("POST", "/v1/chat/completions",
                                                 self._body(await self._model(model), params, messages=messages)))

    async def stream(self, prompt: str | None = None, *, messages: list[dict] | None = None,
                     model: str | None = None, **params) -> AsyncIterator[str]:
        path, fields = self._request_for(prompt, messages)
        body = self._body(await self._model(model), params, stream=True, **fields)
        started = False
        for attempt in range(self.max_retries + 1):
            try:
                async with self._http.stream("POST", path, json=body) as response:
                    if response.status_code >= 400:
                        raise self._error(response, await response.aread())
                    async for line in response.aiter_lines():
                        chunk = self._sse_data(line)
                        if chunk is not None:
                            text = self._chunk_text(chunk)
                            if text:
                                started = True
                                yield text
                    return
            except httpx.TransportError as exc:
                error: LanthornError = APIConnectionError(str(exc))
            except LanthornError as exc:
                error = exc
            wait = None if started else self._wait(attempt, error)
            if wait is None:
                raise error
            await asyncio.sleep(wait)

    async def models(self) -> list[Model]:
        return self._models(await self._call("GET", "/v1/models"))

    async def embed(self, input: str | list[str], *, model: str | None = None) -> list[list[float]]:
        return self._embeddings(await self._call("POST", "/v1/embeddings",
                                                 {"model": await self._model(model), "input": input}))

    async def _model(self, model: str | None) -> str:
        return model or self.model or self._default_model(await self.models())

    async def _call(self, method: str, path: str, body: dict | None = None) -> dict:
        for attempt in range(self.max_retries + 1):
            try:
                response = await self._http.request(method, path, json=body)
                if response.status_code < 400:
                    return response.json()
                error: LanthornError = self._error(response, response.content)
            except httpx.TransportError as exc:
                error = APIConnectionError(str(exc))
            wait = self._wait(attempt, error)
            if wait is None:
                raise error
            await asyncio.sleep(wait)
        raise AssertionError("unreachable")
