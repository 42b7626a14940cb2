"""API-shape decoders, one module each, listed in one registry (`API_DECODERS`).

A provider (decode/registry.py) names the shapes it speaks; the first whose
`matches()` accepts a request decodes it, and `UnknownEndpoint` catches the rest.
"""

from __future__ import annotations

from oisp_sensor.decode.providers.anthropic import AnthropicMessages
from oisp_sensor.decode.providers.base import ApiDecoder, HttpRequest
from oisp_sensor.decode.providers.bedrock import BedrockConverse, BedrockInvoke
from oisp_sensor.decode.providers.cohere import CohereChat, CohereEmbed
from oisp_sensor.decode.providers.gemini import Gemini
from oisp_sensor.decode.providers.generic import UnknownEndpoint
from oisp_sensor.decode.providers.ollama import OllamaChat, OllamaEmbed, OllamaGenerate
from oisp_sensor.decode.providers.openai_chat import OpenAIChat
from oisp_sensor.decode.providers.openai_compat import PerplexityChat, XaiChat
from oisp_sensor.decode.providers.openai_legacy import OpenAICompletions, OpenAIEmbeddings
from oisp_sensor.decode.providers.openai_responses import OpenAIResponses
from oisp_sensor.decode.registry import ProviderSpec

API_DECODERS: dict[str, ApiDecoder] = {
    d.name: d
    for d in (
        OpenAIChat(),
        AnthropicMessages(),
        OpenAIResponses(),
        OpenAICompletions(),
        OpenAIEmbeddings(),
        OllamaChat(),
        OllamaGenerate(),
        OllamaEmbed(),
        Gemini(),
        BedrockConverse(),
        BedrockInvoke(),
        CohereChat(),
        CohereEmbed(),
        XaiChat(),
        PerplexityChat(),
    )
}
FALLBACK = UnknownEndpoint()


def find_decoder(provider: ProviderSpec, req: HttpRequest) -> ApiDecoder | None:
    """The decoder for this request, the fallback for other writes, None for reads."""
    for name in provider.apis:
        decoder = API_DECODERS.get(name)
        if decoder is not None and decoder.matches(req):
            return decoder
    return FALLBACK if FALLBACK.matches(req) else None
