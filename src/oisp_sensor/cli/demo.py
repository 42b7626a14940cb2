"""`oisp-sensor demo`: the whole product working, with no API key and no internet.

Starts the real sensor (relay, pipeline, store, dashboard) and a built-in demo
provider on 127.0.0.1 that answers in OpenAI's, Anthropic's and Gemini's wire
formats. The relay routes the real provider hosts to it (`--connect-to`), trusting
a throwaway CA made for the demo (`--upstream-ca`), so the traffic takes exactly
the path an app's would: proxy CONNECT, TLS interception, decoding, enrichment,
redaction, sinks. Every event is marked `attrs.demo = true`.
"""

from __future__ import annotations

import asyncio
import contextlib
import functools
import shutil
import ssl
import sys
import tempfile
from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import aiohttp
import click

from oisp_sensor.cli.common import fail, run_async
from oisp_sensor.cli.record import (
    RunSummary,
    SensorFlags,
    recorded_sinks,
    recording_report,
    resolve_config,
    sensor_options,
)
from oisp_sensor.config import Config
from oisp_sensor.errors import CaptureError, ConfigError, SinkError
from oisp_sensor.events import Event

DEMO_HOSTS = ("api.openai.com", "api.anthropic.com", "generativelanguage.googleapis.com")
DEMO_KEYS = {  # obviously fake; the sensor only ever stores a prefix and a keyed hash
    "openai": "sk-demo-not-a-real-key-0000000000",
    "anthropic": "sk-ant-demo-not-a-real-key-000000",
    "gemini": "AIzaDemoNotARealKey000000000000000000",
}


class DemoLabel:
    """Marks every event of a demo run, so nobody mistakes it for real traffic."""

    def enrich(self, event: Event) -> None:
        event.attrs["demo"] = True


# --- the demo provider's TLS ------------------------------------------------------------------


def demo_tls(directory: Path) -> tuple[ssl.SSLContext, Path]:
    """A server context for the provider hosts, signed by a throwaway CA (and its PEM path).

    The CA is name-constrained to the three demo hosts and lives in a temporary folder
    that the demo deletes when it ends. SNI picks the leaf for the host asked for.
    """
    from oisp_sensor.capture.ca import LocalCA

    ca = LocalCA.create(directory, names=DEMO_HOSTS)
    context = ca.leaf_context(DEMO_HOSTS[0])

    def choose(sock: ssl.SSLObject, name: str | None, _: ssl.SSLContext) -> None:
        if name in DEMO_HOSTS and name != DEMO_HOSTS[0]:
            sock.context = ca.leaf_context(name)

    context.sni_callback = choose
    return context, ca.cert_path


# --- the traffic ------------------------------------------------------------------------------


@dataclass(frozen=True, slots=True)
class Call:
    """One request a demo app makes, and what the demo provider answers to it."""

    api: str  # openai | anthropic | gemini
    body: dict[str, Any]
    script: Any  # oisp_sensor.demo.Script
    model: str = ""  # Gemini names the model in the path
    pause_s: float = 0.0  # the app's own work first (running a tool)


def demo_apps() -> list[tuple[str, list[Call]]]:
    """The apps of one round, each a separate process: (process name, its calls in order)."""
    from oisp_sensor.demo import FakeToolCall, Script

    weather = {
        "type": "function",
        "function": {
            "name": "get_weather",
            "description": "Current weather for a city",
            "parameters": {"type": "object", "properties": {"city": {"type": "string"}}},
        },
    }
    question = {"role": "user", "content": "Should I take an umbrella in Paris today?"}
    weather_call = {
        "id": "call_demo_weather",
        "type": "function",
        "function": {"name": "get_weather", "arguments": '{"city": "Paris"}'},
    }
    search = {
        "name": "search_docs",
        "description": "Search the team handbook",
        "input_schema": {"type": "object", "properties": {"query": {"type": "string"}}},
    }
    ask = {"role": "user", "content": "How many vacation days do new hires get?"}
    lookup = {"query": "vacation days new hires"}
    chatbot = [
        Call(
            "openai",
            {
                "model": "gpt-4o-mini",
                "messages": [
                    {"role": "system", "content": "You write taglines."},
                    {"role": "user", "content": "A one-line tagline for a small coffee shop."},
                ],
            },
            Script(
                text="Fresh beans, friendly faces, and the best flat white in town.",
                prompt_tokens=24,
            ),
        ),
        Call(
            "openai",
            {
                "model": "gpt-4o",
                "stream": True,
                "stream_options": {"include_usage": True},
                "messages": [{"role": "user", "content": "Why add jitter to retries?"}],
            },
            Script(
                text="Retries with exponential backoff and jitter spread the load, so a brief "
                "outage does not turn into a thundering herd.",
                interval_s=0.03,
                prompt_tokens=42,
            ),
        ),
        Call(
            "openai",
            {"model": "gpt-4o", "messages": [{"role": "user", "content": "One more, please."}]},
            Script(error_status=429),  # rate limited: failures are events too
        ),
    ]
    agent = [
        Call(
            "openai",
            {"model": "gpt-4o-mini", "messages": [question], "tools": [weather]},
            Script(
                text="",
                tool_calls=(FakeToolCall("get_weather", {"city": "Paris"}, "call_demo_weather"),),
                prompt_tokens=61,
            ),
        ),
        Call(
            "openai",
            {
                "model": "gpt-4o-mini",
                "tools": [weather],
                "messages": [
                    question,
                    {"role": "assistant", "content": None, "tool_calls": [weather_call]},
                    {
                        "role": "tool",
                        "tool_call_id": "call_demo_weather",
                        "content": '{"city": "Paris", "sky": "light rain", "temp_c": 14}',
                    },
                ],
            },
            Script(
                text="Yes: light rain and 14°C in Paris, so take the umbrella.", prompt_tokens=96
            ),
            pause_s=0.15,
        ),
        Call(
            "anthropic",
            {"model": "claude-haiku-4-5", "max_tokens": 512, "tools": [search], "messages": [ask]},
            Script(
                text="Let me check the handbook.",
                tool_calls=(FakeToolCall("search_docs", lookup, "toolu_demo_1"),),
                prompt_tokens=75,
            ),
        ),
        Call(
            "anthropic",
            {
                "model": "claude-haiku-4-5",
                "max_tokens": 512,
                "tools": [search],
                "messages": [
                    ask,
                    {
                        "role": "assistant",
                        "content": [
                            {"type": "text", "text": "Let me check the handbook."},
                            {
                                "type": "tool_use",
                                "id": "toolu_demo_1",
                                "name": "search_docs",
                                "input": lookup,
                            },
                        ],
                    },
                    {
                        "role": "user",
                        "content": [
                            {
                                "type": "tool_result",
                                "tool_use_id": "toolu_demo_1",
                                "content": "Handbook 4.2: 25 days of paid vacation a year.",
                            }
                        ],
                    },
                ],
            },
            Script(text="New hires get 25 vacation days a year.", prompt_tokens=140),
            pause_s=0.1,
        ),
    ]
    writer = [
        Call(
            "anthropic",
            {
                "model": "claude-sonnet-4-5",
                "max_tokens": 1024,
                "stream": True,
                "thinking": {"type": "enabled", "budget_tokens": 512},
                "messages": [{"role": "user", "content": "Why is my orders query slow?"}],
            },
            Script(
                text="Index the foreign key first; the join then avoids a full scan.",
                thinking="The slow query joins orders to customers on customer_id...",
                interval_s=0.03,
                prompt_tokens=180,
            ),
        ),
        Call(
            "gemini",
            {"contents": [{"role": "user", "parts": [{"text": "A haiku about server logs"}]}]},
            Script(text="Logs scroll through the night / quiet errors bloom", interval_s=0.03),
            model="gemini-2.5-flash",
        ),
    ]
    return [("demo-chatbot", chatbot), ("demo-agent", agent), ("demo-writer", writer)]


def _request(call: Call) -> tuple[str, dict[str, str]]:
    if call.api == "openai":
        url = "https://api.openai.com/v1/chat/completions"
        return url, {"Authorization": f"Bearer {DEMO_KEYS['openai']}"}
    if call.api == "anthropic":
        headers = {"x-api-key": DEMO_KEYS["anthropic"], "anthropic-version": "2023-06-01"}
        return "https://api.anthropic.com/v1/messages", headers
    url = (
        "https://generativelanguage.googleapis.com/v1beta/models/"
        f"{call.model}:streamGenerateContent?alt=sse"
    )
    return url, {"x-goog-api-key": DEMO_KEYS["gemini"]}


async def send_calls(calls: list[Call], proxy: str, trust: ssl.SSLContext) -> None:
    """What a demo app does: its calls in order, through the proxy, reading streams as they come."""
    async with aiohttp.ClientSession() as session:
        for call in calls:
            await asyncio.sleep(call.pause_s)
            url, headers = _request(call)
            async with session.post(
                url, json=call.body, headers=headers, proxy=proxy, ssl=trust
            ) as response:
                async for _ in response.content.iter_any():
                    pass


def app_main() -> None:
    """A demo app process: `python -c ... NAME PROXY CA_PEM` (started by the demo)."""
    name, proxy, ca_pem = sys.argv[1:4]
    _set_process_name(name)
    calls = dict(demo_apps())[name]
    trust = ssl.create_default_context(cafile=ca_pem)
    try:
        asyncio.run(send_calls(calls, proxy, trust))
    except aiohttp.ClientError as e:
        print(f"{name}: a demo request failed: {e}", file=sys.stderr)
        sys.exit(1)


def _set_process_name(name: str) -> None:
    """Linux: the name `ps` and the sensor's process attribution show (comm, 15 bytes)."""
    if not sys.platform.startswith("linux"):
        return
    with contextlib.suppress(OSError, AttributeError):
        import ctypes

        libc = ctypes.CDLL(None)
        libc.prctl(15, name.encode()[:15], 0, 0, 0)  # PR_SET_NAME


async def run_round(fake: Any, proxy: str, ca_pem: Path) -> int:
    """Each app in turn, as its own process; returns how many apps failed."""
    failed = 0
    for name, calls in demo_apps():
        fake.queue(*(call.script for call in calls))
        proc = await asyncio.create_subprocess_exec(
            sys.executable,
            "-c",
            "from oisp_sensor.cli.demo import app_main; app_main()",
            name,
            proxy,
            str(ca_pem),
            start_new_session=True,  # Ctrl-C is for the demo; it stops its apps itself
        )
        try:
            status = await proc.wait()
        except asyncio.CancelledError:
            with contextlib.suppress(ProcessLookupError):
                proc.kill()
            await proc.wait()
            raise
        if status != 0:
            failed += 1
            fake._scripts.clear()  # an app that stopped early leaves its answers unused
    return failed


# --- the command ------------------------------------------------------------------------------


@click.command()
@sensor_options
@click.option("--once", is_flag=True, help="Send one round of demo traffic, then stop.")
@click.option(
    "--every",
    type=click.FloatRange(min=0),
    default=30.0,
    show_default=True,
    help="Seconds between rounds of demo traffic while running (0: only one round).",
)
@click.pass_obj
def demo(obj: dict[str, Any] | None, /, **kwargs: Any) -> None:
    """See it work: real relay and pipeline, a built-in demo provider, no API keys.

    Sends realistic traffic (OpenAI, Anthropic, Gemini; streaming; tool calls and their
    results; a rate-limit error) through the sensor into the event store and the
    dashboard, then keeps running until Ctrl-C (or stops at once with --once).
    """
    once = bool(kwargs.pop("once"))
    every = float(kwargs.pop("every"))
    flags = SensorFlags.from_kwargs(kwargs)
    # Self-contained unless asked otherwise: any free proxy port, no shared socket.
    if flags.proxy_port is None:
        flags.proxy_port = 0
    if flags.socket_path is None:
        flags.no_socket = True
    config = resolve_config(obj, flags)
    run_async(_demo(config, flags, once=once, every=every))


async def _demo(config: Config, flags: SensorFlags, *, once: bool, every: float) -> None:
    from oisp_sensor.demo import FakeProvider
    from oisp_sensor.sensor import Sensor

    folder = Path(tempfile.mkdtemp(prefix="oisp-demo-"))
    try:
        server_tls, demo_ca = await asyncio.to_thread(demo_tls, folder)
        fake = FakeProvider(ssl_context=server_tls, keep_log=False)
        await fake.start()
        routes = tuple(f"{h}:443=127.0.0.1:{fake.port}" for h in DEMO_HOSTS)
        try:
            config = config.replace(
                "capture",
                connect_to=config.capture.connect_to + routes,
                upstream_ca=(*config.capture.upstream_ca, str(demo_ca)),
            )
        except ConfigError as e:
            fail(f"invalid option: {e}", status=2)
        sensor = Sensor(config, command="demo", redaction=flags.redaction)
        try:
            await sensor.start()
        except (CaptureError, SinkError, ConfigError, OSError) as e:
            await fake.close()
            fail(str(e))
        assert sensor.pipeline is not None and sensor.ca is not None
        sensor.pipeline.enrichers.append(DemoLabel())
        summary = RunSummary()
        sensor.pipeline.add_listener(summary.add)
        traffic = functools.partial(run_round, fake, sensor.proxy_url, sensor.ca.cert_path)
        click.echo(_intro(fake.port, sensor))
        try:
            await _round(traffic, sensor)
            click.echo(summary.render())
            click.echo(_where_to_look(sensor, once))
            if not once:
                await _keep_running(sensor, traffic, every)
        finally:
            await sensor.stop()
            await fake.close()
    finally:
        shutil.rmtree(folder, ignore_errors=True)
    click.echo("oisp-sensor demo: stopped.")
    for line in recording_report(sensor.counters.snapshot(), recorded_sinks(sensor)):
        click.echo(line)


async def _round(traffic: Callable[[], Awaitable[int]], sensor: Any) -> None:
    """One round, then wait until the store holds every event it produced."""
    if failed := await traffic():
        click.echo(f"oisp-sensor demo: {failed} demo app(s) failed (see above)", err=True)
    await _settled(sensor.counters.get, "events.total", "sink.store.written", sensor.db_path)


async def _settled(
    get: Callable[[str], int], produced: str, stored: str, db: Path | None, timeout: float = 10.0
) -> None:
    if db is None:
        return
    deadline = asyncio.get_running_loop().time() + timeout
    last = -1
    while asyncio.get_running_loop().time() < deadline:
        total = get(produced)
        if total == last and get(stored) >= total:
            return
        last = total
        await asyncio.sleep(0.2)


async def _keep_running(sensor: Any, traffic: Callable[[], Awaitable[int]], every: float) -> None:
    """Until SIGINT/SIGTERM: a round every `every` seconds. The apps stop before the sensor."""
    from oisp_sensor.sensor import stop_signals

    async def repeat() -> None:
        while every > 0:
            await asyncio.sleep(every)
            await _round(traffic, sensor)

    async with stop_signals() as stop:
        task = asyncio.create_task(repeat(), name="demo-traffic")
        click.echo("Demo running; press Ctrl-C to stop.")
        try:
            await stop.wait()
        finally:
            task.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await task


def _intro(port: int, sensor: Any) -> str:
    return "\n".join(
        [
            "oisp-sensor demo",
            f"  DEMO PROVIDER on 127.0.0.1:{port} answers as OpenAI, Anthropic and Gemini.",
            "  Nothing leaves this machine and no API key is used: the answers are canned,",
            "  but every call takes the real path through the sensor's proxy "
            f"({sensor.proxy_url}).",
            "  Demo events are marked attrs.demo = true.",
            "",
        ]
    )


def _where_to_look(sensor: Any, once: bool) -> str:
    lines = ["", "Where to look:"]
    if sensor.db_path is not None:
        db = sensor.db_path
        default = Config().db_path
        db_flag = "" if default is not None and Path(db) == default else f" --db {db}"
        lines += [
            f"  oisp-sensor show{db_flag}                  the events, one line each",
            f"  oisp-sensor analyze{db_flag} --report costs   cost by provider and model",
            f"  oisp-sensor analyze{db_flag} --report tools   tool calls and round trips",
        ]
    if sensor.jsonl_path is not None:
        lines.append(f"  {sensor.jsonl_path}   (JSON Lines)")
    dashboard = getattr(sensor, "dashboard", None)
    if dashboard is not None and not once:
        lines.append(f"  {dashboard.login_url}   the dashboard (while the demo runs)")
    elif getattr(sensor, "web_error", ""):
        lines.append(f"  dashboard disabled: {sensor.web_error} (try --port)")
    lines.append("  To remove the demo events later: oisp-sensor purge --process 'demo-*'")
    return "\n".join(lines)
