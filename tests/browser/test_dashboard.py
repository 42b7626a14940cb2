"""The dashboard in real headless Chromium, fed by real programs calling (the fake of)
the AI providers through the real relay."""

from __future__ import annotations

import asyncio
import json
import subprocess
import sys
from pathlib import Path
from typing import Any

import pytest
from playwright.async_api import expect

from oisp_sensor.demo.provider import FakeToolCall, Script
from oisp_sensor.store import EventStore
from tests.browser.harness import Rig
from tests.conformance import assert_valid_events

pytestmark = pytest.mark.browser

SYSTEM = "You are a weather assistant. Answer in one sentence."
QUESTION = "What's the weather in Paris right now?"
TOOLS = [
    {
        "type": "function",
        "function": {
            "name": "get_weather",
            "description": "Current weather for a city",
            "parameters": {"type": "object", "properties": {"city": {"type": "string"}}},
        },
    }
]
WEATHER_AGENT = {
    "sdk": "openai",
    "messages": [{"role": "system", "content": SYSTEM}, {"role": "user", "content": QUESTION}],
    "tools": TOOLS,
    "agent": True,
    "results": {"get_weather": "18°C, light rain"},
}


def queue_weather(rig: Rig) -> None:
    rig.queue(
        Script(text="", tool_calls=(FakeToolCall("get_weather", {"city": "Paris"}),)),
        Script(text="It is 18°C with light rain in Paris.", prompt_tokens=64),
    )


def stored(rig: Rig) -> list[dict[str, Any]]:
    with EventStore(rig.db_path) as store:
        rows = store.conn.execute("SELECT body FROM bodies ORDER BY id").fetchall()
    return [json.loads(r[0]) for r in rows]


async def settled(rig: Rig) -> None:
    """Everything captured so far is decoded and every sink has finished with it."""
    pipeline = rig.sensor.pipeline
    assert pipeline is not None
    counters = rig.sensor.counters

    def done() -> bool:
        total = counters.get("events.total")
        return pipeline.queue.empty() and all(
            sum(counters.get(f"sink.{r.sink.name}.{k}") for k in ("written", "dropped", "errors"))
            == total
            for r in pipeline.runners
        )

    for _ in range(500):
        if done():
            return
        await asyncio.sleep(0.02)
    raise AssertionError(f"pipeline did not settle: {counters.snapshot()}")


def response_row(page: Any, pid: int) -> Any:
    return page.locator(f'#feed tr[data-type="ai.response"]:has(.pid:text-is("{pid}"))')


async def test_a_call_appears_in_the_live_feed_within_a_second(page: Any, rig: Rig) -> None:
    queue_weather(rig)
    pid, result = await rig.call(WEATHER_AGENT)
    assert result["responses"][-1]["choices"][0]["message"]["content"].startswith("It is 18°C")
    # The program has its answer: its calls must be on screen within a second.
    rows = response_row(page, pid)
    await rows.nth(1).wait_for(state="visible", timeout=1000)
    assert await rows.count() == 2
    first = page.locator("#feed tr.row").first
    assert await first.get_attribute("data-type") == "ai.response"  # newest first
    assert "18°C with light rain" in await first.inner_text()
    tool_row = page.locator('#feed tr[data-type="agent.tool_call"]')
    assert 'get_weather({"city":"Paris"})' in await tool_row.inner_text()
    assert_valid_events(stored(rig))


async def test_call_detail_shows_messages_tool_calls_and_cost(page: Any, rig: Rig) -> None:
    queue_weather(rig)
    pid, result = await rig.call(WEATHER_AGENT)
    await settled(rig)
    first_call = response_row(page, pid).last  # the older of the two responses
    await first_call.wait_for()
    await first_call.click()
    await page.locator("#request").wait_for()
    assert "#/call/" in page.url

    assert await page.locator("#system-prompt .content").inner_text() == SYSTEM
    messages = page.locator("#messages .msg")
    assert await messages.count() == 1
    assert QUESTION in await messages.first.inner_text()
    tools_offered = await page.locator("#tools").inner_text()
    assert "get_weather" in tools_offered and "Current weather for a city" in tools_offered

    calls = await page.locator("#response-tool-calls").inner_text()
    assert "get_weather()" in calls
    assert json.loads(await page.locator("#response-tool-calls pre.json").inner_text()) == {
        "city": "Paris"
    }
    flow = await page.locator("#tool-flow").inner_text()
    assert "18°C, light rain" in flow  # the result, from the program's next request

    store = {e["event_id"]: e for e in stored(rig)}
    event_id = page.url.rsplit("/", 1)[1]
    usage = store[event_id]["data"]["usage"]
    sdk_usage = result["responses"][0]["usage"]
    assert usage["prompt_tokens"] == sdk_usage["prompt_tokens"]
    cost = await page.locator("#stat-cost .stat-value").inner_text()
    assert cost == f"${usage['total_cost_usd']:.6f}"
    provenance = await page.locator("#cost-provenance").inner_text()
    assert provenance.startswith("computed from genai-prices")
    assert await page.locator("#stat-http .stat-value").inner_text() == "200"
    assert await page.locator("#stat-input .stat-value").inner_text() == str(
        sdk_usage["prompt_tokens"]
    )
    tree = await page.locator("#process-tree").inner_text()
    assert str(pid) in tree and "made this call" in tree
    headers = await page.locator("#http").inner_text()
    assert "user-agent" in headers.lower() and "sk-proj-browsertest" not in headers

    # Following the tool result leads to the call that carried it.
    await page.locator("#tool-flow a", has_text="next call").click()
    await page.locator("#response .assistant-text").wait_for()
    assert "It is 18°C with light rain" in await page.locator("#response").inner_text()
    tool_messages = page.locator("#messages .msg.role-tool")
    assert "18°C, light rain" in await tool_messages.inner_text()


async def test_pause_stops_recording_and_resume_restarts_it(page: Any, rig: Rig) -> None:
    await page.locator("#capture-toggle").click()
    await page.locator("#paused-banner").wait_for(state="visible")
    assert await page.locator("#capture-state").inner_text() == "Paused"
    assert rig.sensor.pipeline is not None and rig.sensor.pipeline.paused

    paused_question = "Is this recorded while paused?"
    _, result = await rig.call(
        {"sdk": "openai", "messages": [{"role": "user", "content": paused_question}]}
    )
    assert result["responses"][0]["choices"][0]["message"]["content"]  # traffic still flows
    await settled(rig)
    assert rig.sensor.counters.get("events.paused_dropped") >= 2
    assert paused_question not in json.dumps(stored(rig))
    await page.wait_for_timeout(300)
    assert await page.locator("#feed tr.row").count() == 0
    # Paused shows on every view.
    await page.goto(rig.web_url + "#/overview")
    await page.locator("#paused-banner").wait_for(state="visible")

    await page.locator("#banner-resume").click()
    await page.locator("#paused-banner").wait_for(state="hidden")
    assert not rig.sensor.pipeline.paused
    await page.goto(rig.web_url + "#/live")
    resumed_question = "And now, after resuming?"
    pid, _ = await rig.call(
        {"sdk": "openai", "messages": [{"role": "user", "content": resumed_question}]}
    )
    await response_row(page, pid).wait_for(timeout=1000)
    await settled(rig)
    text = json.dumps(stored(rig))
    assert resumed_question in text and paused_question not in text


async def test_overview_numbers_match_analyze(page: Any, rig: Rig, tmp_path: Path) -> None:
    queue_weather(rig)
    await rig.call(WEATHER_AGENT)
    rig.queue(Script(text="A haiku.", thinking="Five, seven, five.", interval_s=0.01))
    await rig.call(
        {"sdk": "anthropic", "stream": True, "messages": [{"role": "user", "content": "Haiku?"}]}
    )
    _, failed = await rig.call(
        {"sdk": "openai", "model": "fake-error-429", "messages": [{"role": "user", "content": "x"}]}
    )
    assert failed["error"] == 429
    await settled(rig)
    await page.goto(rig.web_url + "#/overview")
    body = page.locator(".overview-body[data-since]")
    await body.wait_for()
    since, until = await body.get_attribute("data-since"), await body.get_attribute("data-until")
    command = await page.locator(".reproduce code").inner_text()
    args = command.split()[2:]
    assert args[0] == "--since" and args[2] == "--until"
    analyze = subprocess.run(
        [
            sys.executable,
            "-m",
            "oisp_sensor",
            "analyze",
            "--db",
            str(rig.db_path),
            "--format",
            "json",
            *[a.strip("'") for a in args],
        ],
        capture_output=True,
        text=True,
        check=True,
    )
    summary = {r["metric"]: r["value"] for r in json.loads(analyze.stdout)["rows"]}
    assert summary["requests"] == 4 and summary["responses"] == 4 and summary["errors"] == 1

    async def kpi(name: str) -> tuple[str, str]:
        card = page.locator(f"#kpi-{name}")
        return await card.get_attribute("data-value") or "", await card.locator(
            ".kpi-value"
        ).inner_text()

    value, shown = await kpi("requests")
    assert int(value) == summary["requests"] and shown == str(summary["requests"])
    value, shown = await kpi("tokens")
    assert int(value) == summary["total_tokens"]
    value, shown = await kpi("cost")
    assert round(float(value), 10) == summary["cost_usd"]
    assert shown == f"${summary['cost_usd']:.6f}"
    value, _ = await kpi("latency_p95")
    assert round(float(value), 3) == summary["latency_p95_ms"]
    value, shown = await kpi("error_rate")
    assert float(value) == summary["error_rate"] == 0.25 and shown == "25.0%"
    assert int(since or 0) < int(until or 0)


async def test_a_prompt_with_markup_is_shown_as_text(page: Any, rig: Rig) -> None:
    attack = '<img src=x onerror="window.__pwned=1"><script>window.__pwned=2</script>'
    rig.queue(Script(text='<b onmouseover="window.__pwned=3">bold?</b>'))
    pid, _ = await rig.call({"sdk": "openai", "messages": [{"role": "user", "content": attack}]})
    request_row = page.locator(f'#feed tr[data-type="ai.request"]:has(.pid:text-is("{pid}"))')
    await request_row.wait_for()
    assert attack in await request_row.inner_text()
    await settled(rig)
    await request_row.click()
    await page.locator("#messages .msg").wait_for()
    assert attack in await page.locator("#messages").inner_text()
    assert (
        '<b onmouseover="window.__pwned=3">bold?</b>'
        in await page.locator("#response").inner_text()
    )
    await page.locator("#response").hover()
    assert await page.evaluate("window.__pwned") is None
    assert await page.locator("#view img, #view script, #view b").count() == 0


async def test_feed_pause_holds_rows_back_without_pausing_capture(page: Any, rig: Rig) -> None:
    await page.locator("#feed-toggle").click()
    assert await page.locator("#feed-toggle").inner_text() == "Resume feed"
    pid, _ = await rig.call({"sdk": "openai", "messages": [{"role": "user", "content": "held?"}]})
    await page.locator("#feed-held", has_text="new").wait_for()
    await settled(rig)
    assert await response_row(page, pid).count() == 0
    assert "held?" in json.dumps(stored(rig))  # recorded all the same
    held = await page.locator("#feed-held").inner_text()
    assert int(held.split()[0]) >= 2
    await page.locator("#feed-toggle").click()
    await response_row(page, pid).wait_for(timeout=1000)


async def test_filters_narrow_the_feed(page: Any, rig: Rig) -> None:
    await rig.call({"sdk": "openai", "messages": [{"role": "user", "content": "one"}]})
    rig.queue(Script(text="two"))
    await rig.call({"sdk": "anthropic", "messages": [{"role": "user", "content": "two"}]})
    await settled(rig)
    await page.locator('select[name="provider"] option[value="anthropic"]').wait_for(
        state="attached"
    )
    await page.select_option('select[name="provider"]', "anthropic")
    await page.select_option('select[name="type"]', "ai.response")
    rows = page.locator("#feed tr.row")
    await expect(rows).to_have_count(1)  # (a CSP without unsafe-eval: no string predicates)
    assert "anthropic" in await rows.first.inner_text()
    # A new call that does not match stays out.
    await rig.call({"sdk": "openai", "messages": [{"role": "user", "content": "three"}]})
    await settled(rig)
    await page.wait_for_timeout(300)
    assert await rows.count() == 1


async def test_processes_and_settings(page: Any, rig: Rig) -> None:
    pid, _ = await rig.call({"sdk": "openai", "messages": [{"role": "user", "content": "hi"}]})
    await settled(rig)
    await page.goto(rig.web_url + "#/processes")
    matrix = page.locator("#process-matrix")
    await matrix.wait_for()
    text = await matrix.inner_text()
    assert "openai" in text and sys.executable.rsplit("/", 1)[1][:6] in text

    await page.goto(rig.web_url + "#/settings")
    await page.locator("#ca-card .commands, #ca-card .pill.ok").first.wait_for()
    ca_text = await page.locator("#ca-card").inner_text()
    assert "oisp-sensor ca env" in ca_text
    await page.locator('input[name="redaction_mode"][value="minimal"]').check()
    await page.fill("#retention", "-2")
    page.errors.allow("status of 400")  # the invalid value, refused by the API
    await page.locator("#save-settings").click()
    await page.locator("#settings-message .error-text").wait_for()
    assert "retention_days" in await page.locator("#settings-message").inner_text()
    assert await page.locator("#field-retention_days.invalid").count() == 1
    assert not rig.config_path.exists()
    await page.fill("#retention", "3")
    await page.locator("#add-endpoint").click()
    await page.locator('tr.endpoint input[name="host"]').fill("llm.corp.example")
    await page.locator("#save-settings").click()
    await page.locator("#settings-message .ok-text").wait_for()
    saved = rig.config_path.read_text()
    assert 'mode = "minimal"' in saved and "days = 3" in saved and "llm.corp.example" in saved
    assert rig.sensor.pipeline is not None
    assert getattr(rig.sensor.pipeline.redactor, "mode", None) == "minimal"

    await page.locator("#settings-capture-toggle").click()
    await page.locator("#paused-banner").wait_for(state="visible")
    await page.locator("#settings-capture-toggle", has_text="Resume capture").click()
    await page.locator("#paused-banner").wait_for(state="hidden")


async def test_live_view_skips_are_not_shown_as_losses(page: Any, rig: Rig) -> None:
    """A slow tab missing live updates loses nothing recorded; a sink's full queue does.
    (The counters are set directly: a tab too slow for a 256-message queue is hard to make.)"""
    rig.sensor.counters.inc("web.live_dropped", 7)
    rig.sensor.counters.inc("sink.store.dropped", 2)
    await page.goto(rig.web_url + "#/settings")
    card = page.locator("#capture-card")
    await card.locator("dt", has_text="live view skipped").wait_for()
    warnings = await card.locator(".warn-text").all_inner_texts()
    assert "sink.store.dropped" in warnings
    assert not any("live" in w for w in warnings), warnings
    skipped = card.locator("dt:has-text('live view skipped') + dd")
    assert "7 updates" in await skipped.inner_text()
    assert "nothing recorded is missing" in await skipped.inner_text()


async def test_dark_mode_follows_the_system(browser: Any, rig: Rig) -> None:
    colours = []
    for scheme in ("light", "dark"):
        context = await browser.new_context(color_scheme=scheme)
        page = await context.new_page()
        await page.goto(rig.web_url)
        colours.append(await page.evaluate("getComputedStyle(document.body).backgroundColor"))
        await context.close()
    assert colours[0] != colours[1]


async def test_remote_dashboard_with_its_token(browser: Any, tmp_path: Path) -> None:
    """Bound to the machine's network address: the printed link logs the browser in (an
    HttpOnly cookie, then the token leaves the address bar); without it, nothing."""
    from tests.browser.harness import running_sensor
    from tests.unit.web.test_security import HOST_IP

    if HOST_IP is None:
        pytest.skip("this machine has no non-loopback IPv4 address to bind to")
    async with running_sensor(tmp_path, bind=HOST_IP) as remote:
        dashboard = remote.sensor.dashboard
        assert dashboard is not None and dashboard.token_generated
        context = await browser.new_context()
        page = await context.new_page()
        response = await page.goto(dashboard.url)
        assert response is not None and response.status == 401
        await page.goto(dashboard.login_url)
        assert page.url == dashboard.url  # redirected: no token in the address bar
        await page.locator("#conn.on").wait_for(timeout=5000)  # WebSocket with the cookie
        pid, _ = await remote.call(
            {"sdk": "openai", "messages": [{"role": "user", "content": "from afar"}]}
        )
        await response_row(page, pid).wait_for(timeout=2000)
        cookies = await context.cookies()
        assert [c["httpOnly"] for c in cookies] == [True]
        await context.close()
