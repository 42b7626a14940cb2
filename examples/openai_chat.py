"""A plain OpenAI SDK program that knows nothing about oisp-sensor.

    oisp-sensor run -- python examples/openai_chat.py

The sensor captures the call (prompt, answer, tokens, cost, the process that made it)
without any change here. Needs OPENAI_API_KEY (and the internet) for the real API;
`oisp-sensor demo` shows the same with a built-in fake provider and no key.
"""

from __future__ import annotations

import os
import sys

from openai import OpenAI


def main() -> int:
    client = OpenAI(api_key=os.environ.get("OPENAI_API_KEY"))
    model = os.environ.get("OPENAI_MODEL", "gpt-4o-mini")
    stream = client.chat.completions.create(
        model=model,
        messages=[
            {"role": "system", "content": "You answer in one short sentence."},
            {"role": "user", "content": "What does an AI observability sensor do?"},
        ],
        stream=True,
        stream_options={"include_usage": True},
    )
    for chunk in stream:
        if chunk.choices and chunk.choices[0].delta.content:
            print(chunk.choices[0].delta.content, end="", flush=True)
    print()
    return 0


if __name__ == "__main__":
    sys.exit(main())
