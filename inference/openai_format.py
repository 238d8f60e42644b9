"""OpenAI's response and stream-chunk shapes for chat and text completions."""

from dataclasses import dataclass

from core.encoding import DONE, sse


@dataclass
class Formatter:
    kind: str  # "chat" or "completion"
    request_id: str
    model: str
    created: int
    fingerprint: str
    include_usage: bool = False

    @property
    def id(self) -> str:
        return ("chatcmpl-" if self.kind == "chat" else "cmpl-") + self.request_id

    def _base(self, object_name: str) -> dict:
        return {"id": self.id, "object": object_name, "created": self.created, "model": self.model,
                "system_fingerprint": self.fingerprint}

    def _chunk(self, choice: dict) -> bytes:
        body = self._base("chat.completion.chunk" if self.kind == "chat" else "text_completion")
        body["choices"] = [{"index": 0, **choice, "logprobs": None}]
        if self.include_usage:
            body["usage"] = None
        return sse(body)

    def text_chunk(self, text: str, *, first: bool) -> bytes:
        if self.kind == "chat":
            delta = {"role": "assistant", "content": text} if first else {"content": text}
            return self._chunk({"delta": delta, "finish_reason": None})
        return self._chunk({"text": text, "finish_reason": None})

    def final_chunks(self, *, finish_reason: str, first: bool, usage: dict) -> bytes:
        if self.kind == "chat":
            delta = {"role": "assistant", "content": ""} if first else {}
            out = self._chunk({"delta": delta, "finish_reason": finish_reason})
        else:
            out = self._chunk({"text": "", "finish_reason": finish_reason})
        if self.include_usage:
            body = self._base("chat.completion.chunk" if self.kind == "chat" else "text_completion")
            body["choices"] = []
            body["usage"] = usage
            out += sse(body)
        return out + DONE

    def response(self, *, text: str, finish_reason: str, usage: dict) -> dict:
        if self.kind == "chat":
            body = self._base("chat.completion")
            choice = {"message": {"role": "assistant", "content": text, "refusal": None}}
        else:
            body = self._base("text_completion")
            choice = {"text": text}
        body["choices"] = [{"index": 0, **choice, "logprobs": None, "finish_reason": finish_reason}]
        body["usage"] = usage
        return body


def usage(prompt_tokens: int, completion_tokens: int) -> dict:
    return {"prompt_tokens": prompt_tokens, "completion_tokens": completion_tokens,
            "total_tokens": prompt_tokens + completion_tokens}
