"""Python client for Lanthorn: generate, stream, chat, list models and embed, sync or async.

    from lanthorn_sdk import LLMClient

    client = LLMClient(endpoint="http://localhost:8000", api_key="lt-…")
    print(client.generate(prompt="Once upon a time", max_tokens=200).text)
    for text in client.stream(prompt="Tell me a story"):
        print(text, end="", flush=True)
"""

from lanthorn_sdk.client import AsyncLLMClient, LLMClient
from lanthorn_sdk.errors import (
    APIConnectionError,
    AuthenticationError,
    BadRequestError,
    LanthornError,
    NotFoundError,
    PermissionDeniedError,
    RateLimitError,
    ServiceUnavailableError,
)
from lanthorn_sdk.types import Generation, Model, Usage

__all__ = [
    "APIConnectionError", "AsyncLLMClient", "AuthenticationError", "BadRequestError", "Generation",
    "LLMClient", "LanthornError", "Model", "NotFoundError", "PermissionDeniedError", "RateLimitError",
    "ServiceUnavailableError", "Usage",
]
