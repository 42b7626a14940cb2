"""A built-in, local stand-in for AI providers: demos, tests and benchmarks need no API key."""

from oisp_sensor.demo.provider import Exchange, FakeProvider, FakeToolCall, Script, SentChunk

__all__ = ["Exchange", "FakeProvider", "FakeToolCall", "Script", "SentChunk"]
