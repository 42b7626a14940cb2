"""OpenAI's legacy Completions (`POST /v1/completions`) and Embeddings (`POST /v1/embeddings`).

Wire formats: https://platform.openai.com/docs/api-reference/completions and
.../embeddings; every OpenAI-compatible server (Azure, Together, Fireworks, Ollama's
`/v1`, LM Studio, ...) copies them. Usage has OpenAI's meaning (cached tokens are
part of prompt_tokens). An embeddings response is summarised by how many vectors
came back and their dimensions (attrs.embedding) — the vectors are never kept.
"""

from __future__ import annotations

from typing import Any

from oisp_sensor.decode.providers.base import (
    ApiDecoder,
    DecodedRequest,
    HttpRequest,
    ResponseAssembler,
    as_int,
    copy_parameters,
    error_from_body,
)
from oisp_sensor.decode.providers.common import RequestBuilder, not_an_object, record_embeddings
from oisp_sensor.decode.providers.openai_chat import PARAMETERS, ChatAssembler, openai_usage

_COMPLETION_PARAMETERS = {**PARAMETERS, "best_of": "best_of"}


def prompts(value: Any) -> tuple[list[str], int]:
    """The texts of a `prompt`/`input` value, and how many inputs were token ids instead.

    The field takes a string, a list of strings, a list of token ids, or a list of
    token-id lists; returns the strings, and the number of token ids seen.
    """
    if isinstance(value, str):
        return [value], 0
    if not isinstance(value, list):
        return [], 0
    if value and all(isinstance(v, int) for v in value):
        return [], len(value)
    texts: list[str] = []
    tokens = 0
    for item in value:
        if isinstance(item, str):
            texts.append(item)
        elif isinstance(item, list):
            tokens += len(item)
    return texts, tokens


def input_count(value: Any) -> int:
    """How many separate inputs an embeddings request carries."""
    if isinstance(value, str):
        return 1
    if isinstance(value, list):
        return 1 if value and all(isinstance(v, int) for v in value) else len(value)
    return 0


class CompletionsAssembler(ChatAssembler):
    """`choices[].text`, whole or in SSE chunks; ids, model and usage as in Chat."""

    def on_json(self, obj: Any) -> None:
        self._common(obj)
        self._choices(obj)

    def on_sse(self, event: bytes, data: bytes) -> None:
        if data == b"[DONE]":
            return
        obj = self.sse_json(event, data)
        if "error" in obj and not obj.get("choices"):
            self.builder.error = error_from_body(obj)
            return
        self._common(obj)
        self._choices(obj)

    def _choices(self, obj: dict[str, Any]) -> None:
        b = self.builder
        for choice in obj.get("choices") or []:
            index = as_int(choice.get("index")) or 0
            text = choice.get("text")
            if isinstance(text, str):
                b.add_text(text, index)
            else:
                b.choice(index)
            if choice.get("finish_reason"):
                b.choice(index).finish_reason = choice["finish_reason"]


class OpenAICompletions(ApiDecoder):
    name = "openai.completions"
    request_type = "completion"
    assembler_class = CompletionsAssembler

    def matches(self, req: HttpRequest) -> bool:
        path = req.path.rstrip("/")
        return (
            req.method == "POST"
            and path.endswith("/completions")
            and not path.endswith("/chat/completions")
        )

    def decode_request(self, req: HttpRequest) -> DecodedRequest:
        body = req.json()
        if not isinstance(body, dict):
            return not_an_object(self.request_type)
        rb = RequestBuilder(self.request_type)
        texts, tokens = prompts(body.get("prompt"))
        for text in texts:
            rb.message("user", text)
        if tokens:
            rb.attrs["prompt_token_ids"] = tokens
        if isinstance(body.get("suffix"), str):
            rb.chars += len(body["suffix"])
        return rb.build(
            model=body.get("model"),
            streaming=body.get("stream") is True,
            parameters=copy_parameters(body, _COMPLETION_PARAMETERS),
            extra_tokens=tokens,
        )


class EmbeddingsAssembler(ResponseAssembler):
    def on_json(self, obj: Any) -> None:
        b = self.builder
        b.model = obj.get("model")
        data = obj.get("data")
        if isinstance(data, list):
            record_embeddings(b, [item.get("embedding") for item in data])
        b.set_usage(openai_usage(obj.get("usage")))


class OpenAIEmbeddings(ApiDecoder):
    name = "openai.embeddings"
    request_type = "embedding"
    assembler_class = EmbeddingsAssembler

    def matches(self, req: HttpRequest) -> bool:
        return req.method == "POST" and req.path.rstrip("/").endswith("/embeddings")

    def decode_request(self, req: HttpRequest) -> DecodedRequest:
        body = req.json()
        if not isinstance(body, dict):
            return not_an_object(self.request_type)
        rb = RequestBuilder(self.request_type)
        texts, tokens = prompts(body.get("input"))
        rb.chars = sum(len(t) for t in texts)
        rb.attrs["input_count"] = input_count(body.get("input"))
        params: dict[str, Any] = {}
        if as_int(body.get("dimensions")):
            params["dimensions"] = body["dimensions"]
        if isinstance(body.get("encoding_format"), str):
            params["encoding_format"] = body["encoding_format"]
        return rb.build(
            model=body.get("model"), streaming=False, parameters=params, extra_tokens=tokens
        )
