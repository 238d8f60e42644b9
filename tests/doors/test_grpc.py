"""The gRPC API (`lanthorn grpc`) on the real stack."""

import grpc
import pytest
from grpc_health.v1 import health_pb2, health_pb2_grpc
from grpc_reflection.v1alpha import reflection_pb2, reflection_pb2_grpc

from console.models import UsageRecord
from core.anonymous import refusal_counts
from inference.grpc_stubs import pb2, pb2_grpc
from tests.doors.helpers import LONG_PROMPT, LONG_TOKENS, NEXT_DEADLINE, wait_for_row

pytestmark = pytest.mark.django_db(transaction=True)

GREEDY = pb2.SamplingOptions(temperature=0, seed=42, max_tokens=6)
MESSAGES = [pb2.Message(role="user", content="Name three colours.")]


@pytest.fixture
def stub(grpc_channel, default_model):
    return pb2_grpc.InferenceStub(grpc_channel)


@pytest.fixture
def auth(member_key):
    return (("authorization", f"Bearer {member_key.raw}"),)


def test_it_streams_a_chat_answer(stub, auth):
    replies = list(stub.Chat(pb2.ChatRequest(model="gemma3-270m", messages=MESSAGES, options=GREEDY),
                             metadata=auth, timeout=120))
    *chunks, last = replies
    assert "".join(c.text for c in chunks).strip()
    assert last.finish_reason in ("stop", "length") and not last.text
    assert 0 < last.usage.completion_tokens <= 6 and last.usage.prompt_tokens > 5
    assert len({r.request_id for r in replies}) == 1


def test_it_generates_from_a_prompt(stub, auth):
    replies = list(stub.Generate(pb2.GenerateRequest(model="gemma3-270m", prompt="1, 2, 3,", options=GREEDY),
                                 metadata=auth, timeout=120))
    assert "4" in "".join(r.text for r in replies)
    assert replies[-1].usage.completion_tokens == 6 and replies[-1].finish_reason == "length"


def test_each_call_leaves_one_usage_row_tagged_grpc(stub, auth, member_key):
    list(stub.Chat(pb2.ChatRequest(model="gemma3-270m", messages=MESSAGES, options=GREEDY), metadata=auth))
    stub.Embed(pb2.EmbedRequest(model="gemma3-270m", input=["hello"]), metadata=auth)
    rows = {r.endpoint: r for r in UsageRecord.objects.all()}
    assert set(rows) == {"grpc.chat", "grpc.embed"}
    assert all(r.api_key == member_key.key and r.outcome == "ok" for r in rows.values())


def test_it_lists_models_and_embeds(stub, auth):
    [model] = stub.ListModels(pb2.ListModelsRequest(), metadata=auth).models
    assert (model.name, model.version, model.architecture) == ("gemma3-270m", 1, "gemma3")
    assert model.digest.startswith("a5fd3b62") and model.size > 200_000_000
    result = stub.Embed(pb2.EmbedRequest(model="gemma3-270m", input=["one", "two"]), metadata=auth)
    assert [len(e.values) for e in result.embeddings] == [640, 640]
    assert result.usage.prompt_tokens > 0


def code_of(call) -> tuple[grpc.StatusCode, dict]:
    with pytest.raises(grpc.RpcError) as caught:
        call()
    return caught.value.code(), dict(caught.value.trailing_metadata() or ())


def test_a_bad_key_is_unauthenticated(stub):
    refused = refusal_counts().get("invalid_api_key", 0)
    bad = (("authorization", "Bearer lt-wrong"),)
    code, meta = code_of(lambda: list(stub.Chat(pb2.ChatRequest(model="gemma3-270m", messages=MESSAGES), metadata=bad)))
    assert code == grpc.StatusCode.UNAUTHENTICATED and meta["lanthorn-error-code"] == "invalid_api_key"
    code, _ = code_of(lambda: stub.ListModels(pb2.ListModelsRequest()))
    assert code == grpc.StatusCode.UNAUTHENTICATED
    # Nobody was authenticated: no usage row, a count instead (issue 8)
    assert refusal_counts().get("invalid_api_key", 0) > refused
    assert not UsageRecord.objects.exists()


def test_an_unknown_model_is_not_found(stub, auth):
    code, meta = code_of(lambda: list(stub.Chat(pb2.ChatRequest(model="no-such-model", messages=MESSAGES),
                                                metadata=auth)))
    assert code == grpc.StatusCode.NOT_FOUND and meta["lanthorn-error-param"] == "model"
    code, _ = code_of(lambda: stub.Embed(pb2.EmbedRequest(model="no-such-model", input=["x"]), metadata=auth))
    assert code == grpc.StatusCode.NOT_FOUND


@pytest.mark.parametrize("request_, param", [
    (pb2.ChatRequest(model="gemma3-270m", messages=MESSAGES, options=pb2.SamplingOptions(temperature=5)), "temperature"),
    (pb2.ChatRequest(model="gemma3-270m"), "messages"),
    (pb2.ChatRequest(model="gemma3-270m", messages=MESSAGES, options=pb2.SamplingOptions(max_tokens=0)), "max_tokens"),
])
def test_bad_arguments_are_invalid_argument(stub, auth, request_, param):
    code, meta = code_of(lambda: list(stub.Chat(request_, metadata=auth)))
    assert code == grpc.StatusCode.INVALID_ARGUMENT and meta["lanthorn-error-param"] == param


def test_a_cancelled_call_stops_the_generation_in_the_worker(stub, auth):
    call = stub.Generate(pb2.GenerateRequest(model="gemma3-270m", prompt=LONG_PROMPT,
                                             options=pb2.SamplingOptions(temperature=0, max_tokens=LONG_TOKENS)),
                         metadata=auth, timeout=120)
    assert next(call).text
    call.cancel()
    row = wait_for_row(outcome="cancelled")
    assert row.endpoint == "grpc.generate" and row.completion_tokens < 100
    # The worker is free: a short request is answered at once, not after the long one's minute.
    replies = list(stub.Generate(pb2.GenerateRequest(model="gemma3-270m", prompt="Hi",
                                                     options=pb2.SamplingOptions(max_tokens=3)),
                                 metadata=auth, timeout=NEXT_DEADLINE))
    assert replies[-1].usage.completion_tokens <= 3


def test_health_and_reflection_are_served(grpc_channel, stack):
    health = health_pb2_grpc.HealthStub(grpc_channel)
    status = health.Check(health_pb2.HealthCheckRequest(service="lanthorn.v1.Inference"), timeout=10).status
    assert status == health_pb2.HealthCheckResponse.SERVING
    reflection = reflection_pb2_grpc.ServerReflectionStub(grpc_channel)
    [answer] = reflection.ServerReflectionInfo(iter([reflection_pb2.ServerReflectionRequest(list_services="")]),
                                               timeout=10)
    names = {s.name for s in answer.list_services_response.service}
    assert {"lanthorn.v1.Inference", "grpc.health.v1.Health"} <= names
