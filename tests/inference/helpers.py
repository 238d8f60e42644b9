import json


def sse_events(response) -> list:
    """The `data:` payloads of an SSE response, JSON-decoded ([DONE] stays a string)."""
    events = []
    for line in response.iter_lines():
        if line.startswith("data: "):
            data = line[len("data: "):]
            events.append(data if data == "[DONE]" else json.loads(data))
    return events


def chat(content: str, **extra) -> dict:
    return {"model": "gemma3-270m", "messages": [{"role": "user", "content": content}],
            "temperature": 0, **extra}
