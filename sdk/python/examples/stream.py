"""Streams a short answer to stdout. Reads LANTHORN_ENDPOINT and LANTHORN_API_KEY.

    LANTHORN_ENDPOINT=http://localhost:8000 LANTHORN_API_KEY=lt-… python examples/stream.py
"""

from lanthorn_sdk import LLMClient

with LLMClient() as client:
    for text in client.stream(prompt="The three primary colours are", max_tokens=32, temperature=0):
        print(text, end="", flush=True)
print()
