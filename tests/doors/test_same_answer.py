"""One deterministic request through every door gives one answer."""

import json

import ollama
import pytest
from lanthorn_sdk import LLMClient
from websockets.sync.client import connect

from console.models import UsageRecord
from inference.grpc_stubs import pb2, pb2_grpc

pytestmark = pytest.mark.django_db(transaction=True)

PROMPT = "Write one sentence about lighthouses."
MESSAGES = [{"role": "user", "content": PROMPT}]


def test_every_door_gives_the_same_greedy_answer(api, stack, member_key, grpc_channel):
    request = {"model": "gemma3-270m", "messages": MESSAGES, "temperature": 0, "seed": 7, "max_tokens": 8}
    # A first request leaves the prompt in the engine's cache, so that every compared request
    # evaluates it alike (a prompt evaluated whole and one on a cached prefix may differ in near-ties).
    api.post("/v1/chat/completions", json=request)

    rest = api.post("/v1/chat/completions", json=request).json()["choices"][0]["message"]["content"]

    with connect(stack.url.replace("http://", "ws://") + "/ws/v1/chat",
                 additional_headers={"Authorization": f"Bearer {member_key.raw}"}, open_timeout=10) as ws:
        ws.send(json.dumps({"id": "same", "type": "chat", **request}))
        pieces = []
        while (frame := json.loads(ws.recv(timeout=120)))["type"] == "token":
            pieces.append(frame["text"])
        assert frame["type"] == "done"
    websocket = "".join(pieces)

    client = ollama.Client(host=stack.url, headers={"Authorization": f"Bearer {member_key.raw}"}, timeout=120)
    via_ollama = client.chat(model="gemma3-270m", messages=MESSAGES,
                             options={"temperature": 0, "seed": 7, "num_predict": 8}).message.content

    stub = pb2_grpc.InferenceStub(grpc_channel)
    replies = stub.Chat(pb2.ChatRequest(model="gemma3-270m",
                                        messages=[pb2.Message(role="user", content=PROMPT)],
                                        options=pb2.SamplingOptions(temperature=0, seed=7, max_tokens=8)),
                        metadata=(("authorization", f"Bearer {member_key.raw}"),), timeout=120)
    via_grpc = "".join(r.text for r in replies)

    with LLMClient(endpoint=stack.url, api_key=member_key.raw) as sdk:
        via_sdk = sdk.chat(messages=MESSAGES, model="gemma3-270m", temperature=0, seed=7, max_tokens=8).text

    assert rest.strip()
    assert {"websocket": websocket, "ollama": via_ollama, "grpc": via_grpc, "python sdk": via_sdk} == {
        "websocket": rest, "ollama": rest, "grpc": rest, "python sdk": rest}
    assert sorted(UsageRecord.objects.values_list("endpoint", flat=True)) == [
        "/v1/chat/completions", "/v1/chat/completions", "/v1/chat/completions", "grpc.chat", "ollama.chat",
        "ws.chat"]
