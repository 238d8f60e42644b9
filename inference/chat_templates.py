"""Turning chat messages into a prompt for a model.

The model's own template (GGUF `tokenizer.chat_template`) wins. A GGUF without one
gets the template of its architecture's family; Lanthorn never falls back silently
to the Llama-2 format, which would make most models talk nonsense.
"""

import logging

log = logging.getLogger(__name__)

# Gemma's turn format (the Gemma 3 template, without its image handling).
GEMMA = (
    "{{ bos_token }}"
    "{%- if messages[0]['role'] == 'system' -%}"
    "{%- set first_user_prefix = messages[0]['content'] + '\n\n' -%}"
    "{%- set loop_messages = messages[1:] -%}"
    "{%- else -%}"
    "{%- set first_user_prefix = '' -%}"
    "{%- set loop_messages = messages -%}"
    "{%- endif -%}"
    "{%- for message in loop_messages -%}"
    "{%- set role = 'model' if message['role'] == 'assistant' else message['role'] -%}"
    "{{ '<start_of_turn>' + role + '\n' + (first_user_prefix if loop.first else '') "
    "+ message['content'] | trim + '<end_of_turn>\n' }}"
    "{%- endfor -%}"
    "{%- if add_generation_prompt -%}{{ '<start_of_turn>model\n' }}{%- endif -%}"
)

CHATML = (
    "{%- for message in messages -%}"
    "{{ '<|im_start|>' + message['role'] + '\n' + message['content'] + '<|im_end|>\n' }}"
    "{%- endfor -%}"
    "{%- if add_generation_prompt -%}{{ '<|im_start|>assistant\n' }}{%- endif -%}"
)

BY_ARCHITECTURE = {"gemma": GEMMA, "gemma2": GEMMA, "gemma3": GEMMA, "gemma3n": GEMMA}
# Strings that end a turn in these templates; the engine stops on them as tokens.
TURN_ENDS = {GEMMA: ["<end_of_turn>"], CHATML: ["<|im_end|>"]}


def template_for(*, architecture: str, gguf_template: str) -> tuple[str, list[str]]:
    """The Jinja template to use and the strings that end the model's turn."""
    if gguf_template:
        return gguf_template, []
    if architecture in BY_ARCHITECTURE:
        template = BY_ARCHITECTURE[architecture]
    else:
        log.warning("model architecture %r has no chat template; using ChatML", architecture)
        template = CHATML
    return template, TURN_ENDS[template]
