"""Model metadata from the model id: its family, in one table that is easy to extend.

Ids arrive dressed differently by each route to the same model: OpenRouter says
`openai/gpt-4o`, Together `meta-llama/Llama-3.3-70B-Instruct-Turbo`, Fireworks
`accounts/fireworks/models/llama-v3p1-70b-instruct`, Bedrock
`us.anthropic.claude-3-5-sonnet-20241022-v2:0` (or an ARN ending in one), Vertex
`publishers/google/models/gemini-2.0-flash`, Ollama `llama3.2:3b`. `model_family`
first strips that dressing down to the bare name, then the first pattern of
`FAMILIES` that matches names the family; its groups fill the `{}`s
(`claude-3-5-sonnet-20241022` -> `claude-3.5`, `gpt-4o-mini` -> `gpt-4o`).
"""

from __future__ import annotations

import functools
import re

# (pattern on the bare, lower-cased id, family). First match wins: list specific first.
FAMILIES: tuple[tuple[str, str], ...] = (
    # OpenAI
    (r"(?:chatgpt-4o|gpt-4o)", "gpt-4o"),
    (r"gpt-oss", "gpt-oss"),
    (r"gpt-(\d+(?:\.\d+)?)", "gpt-{0}"),
    (r"(o\d+)(?:-|$)", "{0}"),
    (r"(?:text-embedding|embedding)", "text-embedding"),
    (r"(?:davinci|babbage)", "gpt-3"),
    (r"(?:dall-e|gpt-image)", "gpt-image"),
    (r"(?:whisper|tts-)", "openai-audio"),
    # Anthropic: claude-3-5-sonnet, claude-3-haiku, claude-sonnet-4-5, claude-opus-4-1, claude-2.1
    (r"claude-(\d+)-(\d)-", "claude-{0}.{1}"),
    (r"claude-(\d+)(?:\.(\d))?(?:-|$|@)", "claude-{0}.{1}"),
    (r"claude-[a-z]+-(\d+)-(\d)(?:-|$|@)", "claude-{0}.{1}"),
    (r"claude-[a-z]+-(\d+)", "claude-{0}"),
    (r"claude-instant", "claude-instant"),
    # Google
    (r"gemini-(\d+(?:\.\d+)?)", "gemini-{0}"),
    (r"(?:gemini-)?embedding|text-embedding-00|text-multilingual-embedding", "gemini-embedding"),
    (r"gemma-?(\d+)?", "gemma{0}"),
    # Meta: llama-3.3-70b, llama3.2:3b, llama3-1-70b-instruct (Bedrock), llama-v3p1 (Fireworks)
    (r"llama-?v?(\d+)[.p-](\d)(?![\db])", "llama-{0}.{1}"),
    (r"llama-?v?(\d+)", "llama-{0}"),
    (r"llama", "llama"),
    # Mistral
    (r"(?:codestral|devstral)", "codestral"),
    (r"(?:mistral|mixtral|ministral|magistral|pixtral|open-mistral|open-mixtral)", "mistral"),
    # Others
    (r"deepseek", "deepseek"),
    (r"grok-?(\d+)?", "grok-{0}"),
    (r"command-?a", "command-a"),
    (r"command-r", "command-r"),
    (r"command", "command"),
    (r"embed-", "cohere-embed"),
    (r"qwen-?(\d+(?:\.\d+)?)?", "qwen{0}"),
    (r"qwq", "qwen"),
    (r"nova", "amazon-nova"),
    (r"titan", "amazon-titan"),
    (r"sonar", "sonar"),
    (r"phi-?(\d+)?", "phi-{0}"),
    (r"jamba", "jamba"),
    (r"kimi", "kimi"),
    (r"glm-?(\d+(?:\.\d+)?)?", "glm-{0}"),
    (r"(?:nomic-embed|mxbai-embed|bge-|all-minilm)", "open-embedding"),
)
_COMPILED = tuple((re.compile(p), f) for p, f in FAMILIES)

# Bedrock's cross-region inference-profile prefixes, then its vendor prefixes.
_REGION_PREFIXES = ("us.", "eu.", "apac.", "ap.", "jp.", "au.", "ca.", "us-gov.", "global.")
_VENDOR_PREFIXES = (
    "anthropic.",
    "meta.",
    "mistral.",
    "cohere.",
    "ai21.",
    "deepseek.",
    "amazon.",
    "openai.",
    "qwen.",
    "writer.",
    "google.",
)


def bare_model_ids(model_id: str) -> tuple[str, str]:
    """The model's name without routing dressing (path, region, vendor), and the same
    with its vendor kept — `deepseek.r1-v1:0` is only recognisable by its vendor."""
    mid = model_id.strip().lower()
    mid = mid.rsplit("/", 1)[-1]  # openai/gpt-4o, ARNs, publishers/google/models/x
    for prefix in _REGION_PREFIXES:
        if mid.startswith(prefix):
            mid = mid[len(prefix) :]
            break
    for vendor in _VENDOR_PREFIXES:
        if mid.startswith(vendor):
            return mid[len(vendor) :], mid
    return mid, mid


@functools.lru_cache(maxsize=1024)
def model_family(model_id: str | None) -> str | None:
    """The family of a model id, or None when the table does not know it.

    Every request and response asks for the same few ids, and the answer depends on
    the id alone: each is worked out once (~2.5 us of prefix and pattern tests). The
    cache is bounded and holds ids the decoder read from requests and responses.
    """
    if not model_id:
        return None
    for mid in dict.fromkeys(bare_model_ids(model_id)):
        for pattern, family in _COMPILED:
            m = pattern.match(mid)
            if m:
                return family.format(*(g or "" for g in m.groups())).rstrip("-.")
    return None
