"""A plain Anthropic SDK program with a tool, unaware of oisp-sensor.

    oisp-sensor run -- python examples/anthropic_tools.py

The sensor records the request, the model's tool_use (as agent.tool_call) and, when
the program sends the tool's result back, the round trip (agent.tool_result).
Needs ANTHROPIC_API_KEY for the real API.
"""

from __future__ import annotations

import os
import sys

import anthropic

WEATHER_TOOL = {
    "name": "get_weather",
    "description": "Current weather for a city.",
    "input_schema": {
        "type": "object",
        "properties": {"city": {"type": "string"}},
        "required": ["city"],
    },
}


def main() -> int:
    client = anthropic.Anthropic(api_key=os.environ.get("ANTHROPIC_API_KEY"))
    model = os.environ.get("ANTHROPIC_MODEL", "claude-sonnet-5")
    messages: list[dict[str, object]] = [
        {"role": "user", "content": "What's the weather in Paris?"}
    ]
    reply = client.messages.create(
        model=model, max_tokens=300, tools=[WEATHER_TOOL], messages=messages
    )
    calls = [block for block in reply.content if block.type == "tool_use"]
    if calls:
        messages.append({"role": "assistant", "content": reply.content})
        messages.append(
            {
                "role": "user",
                "content": [
                    {"type": "tool_result", "tool_use_id": c.id, "content": "18°C, sunny"}
                    for c in calls
                ],
            }
        )
        reply = client.messages.create(
            model=model, max_tokens=300, tools=[WEATHER_TOOL], messages=messages
        )
    print("".join(block.text for block in reply.content if block.type == "text"))
    return 0


if __name__ == "__main__":
    sys.exit(main())
