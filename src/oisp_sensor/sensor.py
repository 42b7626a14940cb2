"""Assembles a working sensor from a Config: registry, decoder, enrichers, redactor, sinks.

Commands (`record`, `run`, `demo`, `replay`) call these builders; nothing else
constructs layers, so every entry point decodes and redacts identically.
"""

from __future__ import annotations

from collections.abc import Sequence

from oisp_sensor.config import Config
from oisp_sensor.counters import Counters
from oisp_sensor.decode.decoder import Decoder
from oisp_sensor.decode.registry import ProviderRegistry, ProviderSpec
from oisp_sensor.pipeline import Pipeline
from oisp_sensor.privacy.hashing import KeyedHasher
from oisp_sensor.sinks.base import Sink

# Config `api` names -> the decoder shapes a custom endpoint speaks.
_API_SHAPES = {
    "openai": ("openai.responses", "openai.chat", "openai.completions", "openai.embeddings"),
    "anthropic": ("anthropic.messages",),
    "gemini": ("gemini",),
    "ollama": ("ollama.chat", "ollama.generate", "ollama.embed", "openai.chat"),
    "bedrock": ("bedrock.converse", "bedrock.invoke"),
    "cohere": ("cohere.chat",),
}


def build_registry(config: Config) -> ProviderRegistry:
    extra = [
        ProviderSpec(
            id=p.provider,
            oisp_name=p.provider if p.provider in _OISP_NAMES else "other",
            hosts=(p.host,) if p.port is None else (),
            ports=(p.port,) if p.port is not None else (),
            apis=_API_SHAPES[p.api],
            display=p.provider,
            scheme=p.scheme,
        )
        for p in config.providers
    ]
    return ProviderRegistry(extra)


def build_pipeline(
    config: Config,
    *,
    sinks: Sequence[Sink] = (),
    counters: Counters | None = None,
    redaction: str | None = None,
    hasher: KeyedHasher | None = None,
) -> Pipeline:
    counters = counters or Counters()
    hasher = hasher or KeyedHasher.from_file()
    decoder = Decoder(
        registry=build_registry(config),
        hasher=hasher,
        counters=counters,
        record_chunks=config.capture.record_chunks,
    )
    return Pipeline(
        decoder=decoder,
        sinks=sinks,
        counters=counters,
        idle_timeout_s=config.capture.idle_timeout_s,
    )


from oisp_sensor.decode.registry import OISP_PROVIDER_NAMES as _OISP_NAMES  # noqa: E402
