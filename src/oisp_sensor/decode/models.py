"""Model metadata from the model id: its family, in one table that is easy to extend.

Ordered patterns, first match wins; the captured version groups build the family
(`claude-3-5-sonnet-20241022` -> `claude-3.5`, `gpt-4o-mini` -> `gpt-4o`).
"""

from __future__ import annotations

import re

_FAMILIES: tuple[tuple[re.Pattern[str], str], ...] = tuple(
    (re.compile(p), f)
    for p, f in (
        (r"^(?:openai/)?gpt-4o", "gpt-4o"),
        (r"^(?:openai/)?gpt-4\.1", "gpt-4.1"),
        (r"^(?:openai/)?gpt-4\.5", "gpt-4.5"),
        (r"^(?:openai/)?gpt-(\d+(?:\.\d+)?)", "gpt-{0}"),
        (r"^(?:openai/)?(o\d+)(?:-|$)", "{0}"),
        (r"^(?:openai/)?(?:text-embedding|embedding)", "text-embedding"),
        (r"^(?:openai/)?(?:davinci|babbage)", "gpt-3"),
        # claude-3-5-sonnet, claude-3-haiku, claude-sonnet-4-5, claude-opus-4-1, claude-haiku-4-5
        (r"^(?:anthropic[./])?claude-(\d+)-(\d)-", "claude-{0}.{1}"),
        (r"^(?:anthropic[./])?claude-(\d+)-", "claude-{0}"),
        (r"^(?:anthropic[./])?claude-[a-z]+-(\d+)-(\d)(?:-|$|@)", "claude-{0}.{1}"),
        (r"^(?:anthropic[./])?claude-[a-z]+-(\d+)", "claude-{0}"),
        (r"^(?:models/)?gemini-(\d+(?:\.\d+)?)", "gemini-{0}"),
        (r"^(?:models/)?gemma-?(\d+)?", "gemma{0}"),
        (r"^(?:meta[./-])?llama-?(\d+(?:\.\d+)?)?", "llama-{0}"),
        (
            r"^(?:mistralai/)?(?:mistral|mixtral|codestral|ministral|magistral|pixtral|devstral)",
            "mistral",
        ),
        (r"^(?:deepseek[./-])", "deepseek"),
        (r"^grok-?(\d+)?", "grok-{0}"),
        (r"^command", "command"),
        (r"^qwen-?(\d+(?:\.\d+)?)?", "qwen{0}"),
        (r"^(?:amazon\.)?(?:nova|titan)", "amazon"),
        (r"^sonar", "sonar"),
        (r"^phi-?(\d+)?", "phi-{0}"),
    )
)


def model_family(model_id: str | None) -> str | None:
    """The family of a model id, or None when the table does not know it."""
    if not model_id:
        return None
    mid = model_id.lower()
    # Bedrock ids carry a vendor and maybe a region prefix: us.anthropic.claude-3-5-...
    for prefix in ("us.", "eu.", "apac.", "global."):
        if mid.startswith(prefix):
            mid = mid[len(prefix) :]
    for vendor in ("anthropic.", "meta.", "mistral.", "cohere.", "ai21.", "deepseek."):
        if mid.startswith(vendor):
            mid = mid[len(vendor) :]
            break
    mid = mid.rsplit("/", 1)[-1] if "/" in mid and not mid.startswith("models/") else mid
    for pattern, family in _FAMILIES:
        m = pattern.match(mid)
        if m:
            return family.format(*(g or "" for g in m.groups())).rstrip("-")
    return None
