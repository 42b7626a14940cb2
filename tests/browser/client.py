"""An ordinary AI program, unaware of oisp-sensor: its environment (HTTPS_PROXY and the
CA bundle, as `oisp-sensor run` sets them) is what sends its calls through the sensor.

    python -m tests.browser.client '<json spec>'      prints what the SDK returned, as JSON

Specs: {"sdk": "openai", "messages": [...], "tools": [...], "model": "...", "agent": true}
(`agent`: answer the model's tool calls with `results` and call it again, like an
agent loop), or {"sdk": "anthropic", "messages": [...], "stream": true}.
"""

from __future__ import annotations

import json
import sys
from typing import Any


def run_openai(spec: dict[str, Any]) -> dict[str, Any]:
    import openai

    client = openai.OpenAI(api_key="sk-proj-browsertest-0123456789abcdef", max_retries=0)
    messages = list(spec["messages"])
    kwargs: dict[str, Any] = {"model": spec.get("model", "gpt-4o-mini"), "messages": messages}
    if spec.get("tools"):
        kwargs["tools"] = spec["tools"]
    out: dict[str, Any] = {"responses": []}
    while True:
        completion = client.chat.completions.create(**kwargs)
        out["responses"].append(completion.model_dump())
        message = completion.choices[0].message
        if not (spec.get("agent") and message.tool_calls):
            return out
        messages.append(message.model_dump(exclude_none=True))
        for call in message.tool_calls:
            result = spec.get("results", {}).get(call.function.name, "done")
            messages.append({"role": "tool", "tool_call_id": call.id, "content": result})


def run_anthropic(spec: dict[str, Any]) -> dict[str, Any]:
    import anthropic

    client = anthropic.Anthropic(api_key="sk-ant-api03-browsertest-0123456789", max_retries=0)
    kwargs = {
        "model": spec.get("model", "claude-sonnet-4-5"),
        "max_tokens": 512,
        "messages": spec["messages"],
    }
    if spec.get("system"):
        kwargs["system"] = spec["system"]
    if spec.get("stream"):
        with client.messages.stream(**kwargs) as stream:
            return {"responses": [stream.get_final_message().model_dump()]}
    return {"responses": [client.messages.create(**kwargs).model_dump()]}


def main() -> None:
    spec = json.loads(sys.argv[1])
    run = run_anthropic if spec.get("sdk") == "anthropic" else run_openai
    try:
        result = run(spec)
    except Exception as e:  # the provider said no: report it like a program would
        status = getattr(e, "status_code", None)
        if status is None:
            raise
        result = {"error": status, "message": str(e)}
    print(json.dumps(result, default=str))


if __name__ == "__main__":
    main()
