"""Screenshots of the dashboard's main views, against realistic demo traffic.

    .venv/bin/python -m tests.browser.screenshots [--out docs/screenshots] [--serve]

A week of history is decoded by the real pipeline from wire bytes the fake provider
really sent (OpenAI, Anthropic and Gemini formats, streamed and not, tool calls,
errors), timestamped over the past seven days for a handful of programs; then real
programs (the openai and anthropic Python SDKs, Node's openai SDK, curl) call through
the running sensor's relay, so the newest rows, process trees and call details are
live captures. Headless Chromium (/usr/bin/chromium) takes the pictures. `--serve`
keeps the sensor running afterwards, to look around by hand.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import random
import shutil
import ssl
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

REPO = Path(__file__).resolve().parents[2]
HOUR = 3600 * 1_000_000_000


# --- a week of history, from real provider bytes -----------------------------------------------


PROGRAMS = [
    # (comm, exe, cmdline, weight, [(provider host, kind, model)])
    (
        "cursor",
        "/opt/Cursor/cursor",
        "/opt/Cursor/cursor --type=utility",
        5,
        [("api.anthropic.com", "anthropic-stream", "claude-sonnet-4-5")],
    ),
    (
        "aider",
        "/usr/bin/python3.11",
        "python3 /home/dev/.local/bin/aider --model gpt-4.1",
        3,
        [("api.openai.com", "openai", "gpt-4.1"), ("api.openai.com", "openai", "gpt-4.1-mini")],
    ),
    (
        "python3",
        "/usr/bin/python3.11",
        "python3 support_bot.py",
        4,
        [("api.openai.com", "openai-tools", "gpt-4o-mini")],
    ),
    (
        "node",
        "/usr/bin/node",
        "node docs-assistant/index.mjs",
        2,
        [("generativelanguage.googleapis.com", "gemini", "gemini-2.5-flash")],
    ),
    (
        "claude",
        "/usr/local/bin/node",
        "node /usr/local/lib/node_modules/@anthropic-ai/claude-code/cli.js",
        3,
        [
            ("api.anthropic.com", "anthropic-stream", "claude-sonnet-4-5"),
            ("api.anthropic.com", "anthropic", "claude-haiku-4-5"),
        ],
    ),
]

CONVERSATIONS = [
    (
        "Refactor the retry loop in client.py to use exponential backoff.",
        "Wrap the call in a backoff that starts at 0.5 s and doubles up to 8 s, with jitter.",
    ),
    (
        "Summarise the open incidents from today's on-call notes.",
        "Three are open: the billing webhook delay, a flaky login test and disk alerts on db-2.",
    ),
    (
        "Why does this test fail only on CI? The traceback mentions a timezone.",
        "The test builds a naive datetime; CI runs in UTC while your laptop does not.",
    ),
    (
        "Write a SQL query for weekly active users by plan.",
        "SELECT plan, date_trunc('week', ts) AS week, count(DISTINCT user_id) FROM events "
        "GROUP BY 1, 2 ORDER BY 2;",
    ),
    (
        "Explain the difference between these two migrations.",
        "The second adds the index concurrently, so it does not lock the table while it builds.",
    ),
    (
        "Find the bug: the cache never expires entries.",
        "`expires_at` is compared with time.monotonic() but stored from time.time().",
    ),
    (
        "Where is order 4471? The customer asked twice.",
        "",  # answered with a tool call
    ),
]
PIDS = {"cursor": 48213, "aider": 51877, "python3": 53002, "node": 47120, "claude": 49931}


def request_for(kind: str, model: str, prompt: str) -> tuple[str, dict[str, Any]]:
    user = [{"role": "user", "content": prompt}]
    if kind.startswith("anthropic"):
        return "/v1/messages", {
            "model": model,
            "max_tokens": 1024,
            "system": "You are a careful senior engineer. Be concise.",
            "messages": user,
            "stream": kind.endswith("stream"),
        }
    if kind == "gemini":
        return f"/v1beta/models/{model}:generateContent", {
            "contents": [{"role": "user", "parts": [{"text": prompt}]}]
        }
    body: dict[str, Any] = {
        "model": model,
        "messages": [{"role": "system", "content": "You are a helpful assistant."}, *user],
    }
    if kind == "openai-tools":
        body["tools"] = [
            {
                "type": "function",
                "function": {
                    "name": "lookup_order",
                    "description": "Find an order by number",
                    "parameters": {"type": "object", "properties": {"number": {"type": "string"}}},
                },
            }
        ]
    return "/v1/chat/completions", body


async def history(rig: Any, db: Path, days: int = 7) -> int:
    """Decode a week of calls (real fake-provider bytes, shifted in time) into the store."""
    import httpx

    from oisp_sensor.config import Config
    from oisp_sensor.demo.provider import FakeToolCall, Script
    from oisp_sensor.events import CaptureKind, RawCapture
    from oisp_sensor.privacy.hashing import KeyedHasher
    from oisp_sensor.sensor import build_pipeline
    from oisp_sensor.sinks.store import StoreSink
    from tests.browser.harness import TEST_KEY

    rng = random.Random(7)
    now = time.time_ns()
    fake = rig.fake
    direct = httpx.AsyncClient(verify=False, timeout=10)  # straight to the local fake
    pipeline = build_pipeline(Config(), sinks=[StoreSink(db)], hasher=KeyedHasher(TEST_KEY))
    await pipeline.start()
    count = 0
    weights = [p[3] for p in PROGRAMS]
    # Busier in working hours and in the last day; a burst in the last hour.
    times = []
    for _ in range(420):
        t = now - int(rng.random() ** 1.8 * days * 24 * HOUR)
        hour = time.localtime(t / 1e9).tm_hour
        if 8 <= hour <= 19 or rng.random() < 0.25:
            times.append(t)
    times += [now - int(rng.random() * HOUR) for _ in range(30)]
    # Older than the process enricher's look-back (15 min): these pids are made up.
    minute = 60 * 1_000_000_000
    times = [t for t in times if now - t > 16 * minute]
    times += [now - int(rng.uniform(16, 55) * minute) for _ in range(8)]
    for i, t in enumerate(sorted(times)):
        comm, exe, cmdline, _, calls = rng.choices(PROGRAMS, weights)[0]
        host, kind, model = rng.choice(calls)
        prompt, reply = rng.choice(CONVERSATIONS[:-1])
        if kind == "openai-tools" and rng.random() < 0.5:
            prompt, reply = CONVERSATIONS[-1]
        error = 429 if rng.random() < 0.03 else 500 if rng.random() < 0.01 else None
        tool = not reply
        fake.queue(
            Script(
                text=reply,
                tool_calls=(
                    FakeToolCall("lookup_order", {"number": "4471"}, id=f"call_lookup_{i}"),
                )
                if tool
                else (),
                prompt_tokens=rng.randint(300, 6000)
                if "claude" in comm or "cursor" in comm
                else rng.randint(80, 1800),
                completion_tokens=rng.randint(40, 900),
                cached_tokens=rng.choice([0, 0, 256, 1024]) if kind.startswith("anth") else 0,
                error_status=error,
                thinking="Let me look at the code path first." if rng.random() < 0.2 else None,
            )
        )
        path, body = request_for(kind, model, prompt)
        bodies = [body]
        if tool and not error:  # the agent runs the tool and sends its result back
            fake.queue(Script(text="Order 4471 shipped on Monday; it arrives Thursday."))
            call = {
                "id": f"call_lookup_{i}",
                "type": "function",
                "function": {"name": "lookup_order", "arguments": '{"number":"4471"}'},
            }
            bodies.append(
                {
                    **body,
                    "messages": [
                        *body["messages"],
                        {"role": "assistant", "content": None, "tool_calls": [call]},
                        {
                            "role": "tool",
                            "tool_call_id": call["id"],
                            "content": '{"status": "shipped", "eta": "Thursday"}',
                        },
                    ],
                }
            )
        pid = PIDS[comm]
        meta = {"comm": comm, "exe": exe, "cmdline": cmdline, "uid": 1000, "fd": 3 + i % 40}
        base = dict(pid=pid, metadata=meta, remote_host=host, remote_port=443)
        raws = []
        at = t
        for b in bodies:
            await direct.post(f"{fake.url}{path}", json=b)
            ex = fake.sent[-1]
            request_bytes = _request_bytes(host, path, ex.request_body, kind)
            response_bytes = _response_bytes(ex)
            latency = int(rng.lognormvariate(7.0 if "stream" in kind else 6.4, 0.5) * 1e6)
            raws.append(
                RawCapture(kind=CaptureKind.SSL_WRITE, timestamp_ns=at, data=request_bytes, **base)
            )
            pieces = _split(response_bytes, 4 if ex.streaming else 1)
            for k, piece in enumerate(pieces):
                when = at + int(latency * (0.35 + 0.65 * (k + 1) / len(pieces)))
                raws.append(
                    RawCapture(kind=CaptureKind.SSL_READ, timestamp_ns=when, data=piece, **base)
                )
            at += latency + int(rng.uniform(80, 900) * 1e6)  # the tool runs meanwhile
        raws.append(RawCapture(kind=CaptureKind.CONN_CLOSE, timestamp_ns=at, **base))
        for raw in raws:
            while not pipeline.submit(raw):
                await asyncio.sleep(0.01)
        count += 1
    await pipeline.stop()
    await direct.aclose()
    fake.sent.clear()
    return count


def _request_bytes(host: str, path: str, body: bytes, kind: str) -> bytes:
    auth = (
        "x-api-key: sk-ant-api03-demo-0123456789abcdef\r\nanthropic-version: 2023-06-01"
        if kind.startswith("anthropic")
        else "x-goog-api-key: AIzaDemoKey0123456789"
        if kind == "gemini"
        else "Authorization: Bearer sk-proj-demo-0123456789abcdef"
    )
    head = (
        f"POST {path} HTTP/1.1\r\nHost: {host}\r\nContent-Type: application/json\r\n"
        f"{auth}\r\nUser-Agent: demo/1.0\r\nContent-Length: {len(body)}\r\n\r\n"
    )
    return head.encode() + body


def _response_bytes(ex: Any) -> bytes:
    lines = [f"HTTP/1.1 {ex.status} OK"] + [f"{k}: {v}" for k, v in ex.response_headers]
    head = ("\r\n".join(lines) + "\r\n\r\n").encode()
    if ex.streaming:
        body = b"".join(b"%x\r\n%s\r\n" % (len(c.data), c.data) for c in ex.chunks) + b"0\r\n\r\n"
        return head + body
    return head + ex.body


def _split(data: bytes, n: int) -> list[bytes]:
    size = max(1, -(-len(data) // n))
    return [data[i : i + size] for i in range(0, len(data), size)]


# --- live programs through the relay ----------------------------------------------------------


async def live_traffic(rig: Any, tmp: Path) -> None:
    from oisp_sensor.demo.provider import FakeToolCall, Script

    rig.queue(
        Script(
            text="",
            tool_calls=(FakeToolCall("get_weather", {"city": "Paris", "unit": "celsius"}),),
            prompt_tokens=412,
        ),
        Script(text="It is 18 °C with light rain in Paris; take an umbrella.", prompt_tokens=468),
    )
    await rig.call(
        {
            "sdk": "openai",
            "model": "gpt-4o-mini",
            "messages": [
                {
                    "role": "system",
                    "content": "You are a travel assistant. Use tools for live data and answer "
                    "in one or two sentences.",
                },
                {"role": "user", "content": "Do I need an umbrella in Paris this afternoon?"},
            ],
            "tools": [
                {
                    "type": "function",
                    "function": {
                        "name": "get_weather",
                        "description": "Current weather for a city",
                        "parameters": {
                            "type": "object",
                            "properties": {
                                "city": {"type": "string"},
                                "unit": {"type": "string", "enum": ["celsius", "fahrenheit"]},
                            },
                            "required": ["city"],
                        },
                    },
                }
            ],
            "agent": True,
            "results": {
                "get_weather": '{"temp_c": 18, "conditions": "light rain", "wind_kmh": 14}'
            },
        }
    )
    rig.queue(
        Script(
            text="Logs scroll at midnight —\nan error blooms, then is caught:\n"
            "the pager stays dark.",
            thinking="A haiku: five, seven, five syllables. Make it about logs and on-call.",
            interval_s=0.03,
            prompt_tokens=96,
        )
    )
    await rig.call(
        {
            "sdk": "anthropic",
            "stream": True,
            "model": "claude-sonnet-4-5",
            "system": "You are a poet for tired engineers.",
            "messages": [{"role": "user", "content": "Write a haiku about on-call logs."}],
        }
    )
    if shutil.which("node") and (REPO / "tests/node/node_modules/openai").exists():
        rig.queue(Script(text="Hello from Node! Everything works.", interval_s=0.02))
        await rig.run_program("node", str(REPO / "tests/node/chat.mjs"), "stream")
    if shutil.which("curl"):
        rig.queue(Script(text="Paris is the capital of France.", prompt_tokens=9))
        body = json.dumps(
            {"contents": [{"role": "user", "parts": [{"text": "Capital of France?"}]}]}
        )
        await rig.run_program(
            "curl",
            "-sS",
            "-H",
            "x-goog-api-key: AIzaDemoKey0123456789",
            "-H",
            "Content-Type: application/json",
            "-d",
            body,
            "https://generativelanguage.googleapis.com/v1beta/models/gemini-2.5-flash:generateContent",
        )
    rig.queue(Script(text="", error_status=429))
    await rig.call(
        {
            "sdk": "openai",
            "model": "gpt-4.1",
            "messages": [{"role": "user", "content": "Summarise the release notes for v2.3."}],
        }
    )
    rig.queue(
        Script(text="Done: the cache now expires entries after their TTL.", prompt_tokens=1840)
    )
    await rig.call(
        {
            "sdk": "openai",
            "model": "gpt-4.1-mini",
            "messages": [
                {"role": "user", "content": "Find the bug: the cache never expires entries."}
            ],
        }
    )


# --- pictures --------------------------------------------------------------------------------


async def shoot(rig: Any, out: Path, scheme: str = "light", *, all_views: bool = True) -> None:
    from playwright.async_api import async_playwright

    from tests.browser.harness import CHROMIUM, CHROMIUM_ARGS

    async with async_playwright() as p:
        browser = await p.chromium.launch(executable_path=CHROMIUM, args=CHROMIUM_ARGS)
        context = await browser.new_context(
            viewport={"width": 1440, "height": 900}, device_scale_factor=1, color_scheme=scheme
        )
        page = await context.new_page()
        suffix = "" if scheme == "light" else "-dark"

        async def view(name: str, ready: str, *, full: bool = False) -> None:
            await page.goto(f"{rig.web_url}#/{name}")
            await page.locator(ready).first.wait_for()
            await page.wait_for_timeout(600)
            await page.mouse.move(0, 0)
            await page.screenshot(
                path=str(out / f"{name.split('/')[0]}{suffix}.png"), full_page=full
            )

        await page.goto(rig.web_url)
        await page.locator("#conn.on").wait_for()
        await view("overview", ".kpis", full=True)
        await view("live", "#feed tr.row")
        if not all_views:
            await browser.close()
            return
        await view("processes", "#process-matrix")
        await view("settings", "#ca-card .commands")
        # The weather agent's first call: system prompt, tools, a tool call and its result.
        await page.goto(f"{rig.web_url}#/live")
        await page.select_option('select[name="type"]', "ai.response")
        row = page.locator('#feed tr.row:has-text("get_weather")').first
        await row.click()
        await page.locator("#tool-flow").wait_for()
        await page.wait_for_timeout(500)
        await page.screenshot(path=str(out / f"call{suffix}.png"), full_page=True)
        await browser.close()


async def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--out", type=Path, default=REPO / "docs" / "screenshots")
    parser.add_argument("--serve", action="store_true", help="keep serving afterwards")
    args = parser.parse_args()
    home = Path(tempfile.mkdtemp(prefix="oisp-screens-"))
    os.environ["OISP_DATA_DIR"] = str(home / "data")
    os.environ["OISP_CONFIG_DIR"] = str(home / "config")
    sys.path.insert(0, str(REPO))
    from tests.browser.harness import running_sensor

    args.out.mkdir(parents=True, exist_ok=True)
    async with running_sensor(home) as rig:
        ssl._create_default_https_context = ssl._create_unverified_context  # local fake only
        n = await history(rig, rig.db_path)
        print(f"history: {n} calls decoded into {rig.db_path}")
        await live_traffic(rig, home)
        await asyncio.sleep(1.0)
        await shoot(rig, args.out, "light")
        await shoot(rig, args.out, "dark", all_views=False)
        print(f"screenshots in {args.out}")
        if args.serve:
            print(f"serving {rig.web_url} (Ctrl-C to stop)")
            await asyncio.Event().wait()


if __name__ == "__main__":
    asyncio.run(main())
