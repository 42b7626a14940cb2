"""OpenAI Chat as xAI and Perplexity speak it: the same wire format, two differences.

- xAI reports `reasoning_tokens` *beside* `completion_tokens` (its total is prompt +
  completion + reasoning), where OpenAI counts them inside. Whenever a usage object
  adds up that way, completion_tokens is raised by the reasoning tokens so every
  event means the same thing (reasoning is part of completion; cost follows).
- Perplexity returns the sources it searched as `citations` (URLs) and
  `search_results`; they go to attrs.citations and attrs.search_results_count.
"""

from __future__ import annotations

from typing import Any

from oisp_sensor.decode.providers.openai_chat import ChatAssembler, OpenAIChat
from oisp_sensor.events.data import Usage

MAX_CITATIONS = 100


def reasoning_inside_completion(usage: Usage) -> None:
    """Move reasoning tokens reported beside completion tokens inside them (idempotent)."""
    reasoning = usage.get("reasoning_tokens")
    prompt, completion = usage.get("prompt_tokens"), usage.get("completion_tokens")
    if reasoning and prompt is not None and completion is not None:
        if usage.get("total_tokens") == prompt + completion + reasoning:
            usage["completion_tokens"] = completion + reasoning


class CompatAssembler(ChatAssembler):
    def _common(self, obj: dict[str, Any]) -> None:
        super()._common(obj)
        b = self.builder
        if b.usage is not None:
            reasoning_inside_completion(b.usage)
        citations = obj.get("citations")
        if isinstance(citations, list):
            b.attrs["citations"] = [c for c in citations if isinstance(c, str)][:MAX_CITATIONS]
        results = obj.get("search_results")
        if isinstance(results, list):
            b.attrs["search_results_count"] = len(results)


class XaiChat(OpenAIChat):
    name = "xai.chat"
    assembler_class = CompatAssembler


class PerplexityChat(OpenAIChat):
    name = "perplexity.chat"
    assembler_class = CompatAssembler
