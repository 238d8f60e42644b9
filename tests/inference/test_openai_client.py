"""The unmodified `openai` package as the client."""

import openai
import pytest

pytestmark = pytest.mark.django_db(transaction=True)


@pytest.fixture
def client(stack, default_model, member_key):
    return openai.OpenAI(base_url=stack.url + "/v1", api_key=member_key.raw, max_retries=0)


def test_openai_client_streams_a_chat_answer(client):
    stream = client.chat.completions.create(
        model="gemma3-270m", messages=[{"role": "user", "content": "Say hello."}],
        max_tokens=10, temperature=0, stream=True, stream_options={"include_usage": True})
    chunks = list(stream)
    text = "".join(c.choices[0].delta.content or "" for c in chunks if c.choices)
    assert text.strip()
    assert chunks[-1].usage.completion_tokens <= 10


def test_openai_client_gets_a_chat_answer(client):
    answer = client.chat.completions.create(
        model="gemma3-270m", messages=[{"role": "system", "content": "Be brief."},
                                       {"role": "user", "content": "What is 2 + 2?"}],
        max_tokens=10, temperature=0)
    assert answer.choices[0].message.content.strip()
    assert answer.usage.total_tokens == answer.usage.prompt_tokens + answer.usage.completion_tokens


def test_openai_client_gets_a_text_completion(client):
    answer = client.completions.create(model="gemma3-270m", prompt="Water boils at", max_tokens=6,
                                       temperature=0)
    assert answer.choices[0].text.strip()


def test_openai_client_raises_not_found_for_an_unknown_model(client):
    with pytest.raises(openai.NotFoundError) as caught:
        client.chat.completions.create(model="no-such-model", messages=[{"role": "user", "content": "hi"}])
    assert caught.value.code == "model_not_found"


def test_openai_client_raises_authentication_error_for_a_bad_key(stack, default_model):
    client = openai.OpenAI(base_url=stack.url + "/v1", api_key="lt-wrong", max_retries=0)
    with pytest.raises(openai.AuthenticationError) as caught:
        client.models.list()
    assert caught.value.code == "invalid_api_key"
