"""`oisp-sensor run -- CMD` and `oisp-sensor record`, as a user runs them (real subprocesses)."""

from __future__ import annotations

import json
import os
import re
import shutil
import signal
import ssl
import subprocess
import sys
import time
from pathlib import Path

import httpx
import pytest

from oisp_sensor.capture.ca import LocalCA, write_bundle
from oisp_sensor.demo import FakeProvider, FakeToolCall, Script
from tests.conformance import assert_valid_file
from tests.integration.conftest import UpstreamCerts, by_type, connect_to_fake

ROOT = Path(__file__).resolve().parents[2]
SENSOR = [sys.executable, "-m", "oisp_sensor"]
NODE_DIR = ROOT / "tests" / "node"


def sensor_flags(fake: FakeProvider, certs: UpstreamCerts, events: Path) -> list[str]:
    flags = ["--no-db", "--output", str(events), "--upstream-ca", str(certs.ca_path)]
    for route in connect_to_fake(fake.port):
        flags += ["--connect-to", route]
    return flags


def run_sensor(args: list[str], **kwargs: object) -> subprocess.CompletedProcess[str]:
    env = dict(os.environ, OPENAI_API_KEY="sk-test-run-0123456789abcdef")
    return subprocess.run(
        [*SENSOR, *args], env=env, capture_output=True, text=True, timeout=60, check=False, **kwargs
    )  # type: ignore[call-overload]


def test_run_python_example_like_a_new_user(
    fake_upstream: FakeProvider, upstream_certs: UpstreamCerts, tmp_path: Path
) -> None:
    events_file = tmp_path / "events.jsonl"
    fake_upstream.queue(Script(text="A sensor watches AI calls.", interval_s=0.01))
    result = run_sensor(
        [
            "run",
            *sensor_flags(fake_upstream, upstream_certs, events_file),
            "--",
            sys.executable,
            str(ROOT / "examples" / "openai_chat.py"),
        ],
        cwd=tmp_path,
    )
    assert result.returncode == 0, result.stderr
    assert result.stdout == "A sensor watches AI calls.\n"  # the program's own output, untouched
    summary = result.stderr
    assert "1 AI call captured" in summary
    assert re.search(r"openai\s+gpt-4o-mini\s+1\s+21\s+\d+\s+\$", summary), summary
    assert str(events_file) in summary
    events = assert_valid_file(events_file)
    (response,) = by_type(events, "ai.response")
    assert response["data"]["choices"][0]["message"]["content"] == "A sensor watches AI calls."
    assert response["process"]["name"].startswith("python")
    assert "openai_chat.py" in response["process"]["cmdline"]
    assert "sk-test-run-0123456789abcdef" not in events_file.read_text()


@pytest.mark.parametrize(
    ("code", "expected"),
    [
        ("import sys; sys.exit(3)", 3),
        ("import os, signal; os.kill(os.getpid(), signal.SIGTERM)", 128 + signal.SIGTERM),
    ],
)
def test_run_exits_with_the_command_status(tmp_path: Path, code: str, expected: int) -> None:
    result = run_sensor(["run", "--no-db", "--", sys.executable, "-c", code], cwd=tmp_path)
    assert result.returncode == expected, result.stderr
    assert "no AI calls captured" in result.stderr


def test_run_unknown_command(tmp_path: Path) -> None:
    result = run_sensor(["run", "--no-db", "--", "no-such-command-oisp"], cwd=tmp_path)
    assert result.returncode == 127
    assert "command not found: no-such-command-oisp" in result.stderr


def test_run_gives_the_child_the_proxy_and_ca_environment(tmp_path: Path) -> None:
    show = (
        "import json, os; print(json.dumps({k: os.environ.get(k) for k in "
        "['HTTPS_PROXY', 'http_proxy', 'NO_PROXY', 'SSL_CERT_FILE', 'NODE_EXTRA_CA_CERTS',"
        " 'NODE_OPTIONS', 'REQUESTS_CA_BUNDLE']}))"
    )
    env_extra = {"NO_PROXY": "localhost,.openai.com,internal.corp", "NODE_OPTIONS": "--no-warnings"}
    result = subprocess.run(
        [*SENSOR, "run", "--no-db", "--", sys.executable, "-c", show],
        env=dict(os.environ, **env_extra),
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
        cwd=tmp_path,
    )
    assert result.returncode == 0, result.stderr
    seen = json.loads(result.stdout)
    assert re.fullmatch(r"http://127\.0\.0\.1:\d+", seen["HTTPS_PROXY"])
    assert seen["http_proxy"] == seen["HTTPS_PROXY"]
    assert seen["NO_PROXY"] == "localhost,internal.corp"  # never exempts an AI host
    assert Path(seen["SSL_CERT_FILE"]).is_file()
    assert seen["REQUESTS_CA_BUNDLE"] == seen["SSL_CERT_FILE"]
    assert "OISP Local CA" in Path(seen["SSL_CERT_FILE"]).read_text()
    assert Path(seen["NODE_EXTRA_CA_CERTS"]).is_file()
    assert seen["NODE_OPTIONS"].startswith("--no-warnings --require ")
    assert "node_preload.cjs" in seen["NODE_OPTIONS"]


def _node_sdk() -> None:
    """Node and the openai npm package (./test installs it with `npm ci` in tests/node)."""
    missing = None
    if shutil.which("node") is None:
        missing = "node is not installed"
    elif not (NODE_DIR / "node_modules" / "openai").is_dir():
        missing = "tests/node has no node_modules: run ./test (it runs npm ci there)"
    if missing:
        if os.environ.get("OISP_REQUIRE_NODE"):
            pytest.fail(missing)
        pytest.skip(missing)


@pytest.mark.node
@pytest.mark.parametrize("mode", ["stream", "tools", "https"])
def test_node_openai_sdk_through_run(
    fake_upstream: FakeProvider, upstream_certs: UpstreamCerts, tmp_path: Path, mode: str
) -> None:
    _node_sdk()
    events_file = tmp_path / "events.jsonl"
    if mode == "stream":
        fake_upstream.queue(Script(text="Hello from the fake, to Node.", interval_s=0.04))
    elif mode == "https":
        fake_upstream.queue(Script(text="Hello to Node's https module."))
    else:
        fake_upstream.queue(
            Script(text="", tool_calls=(FakeToolCall("get_weather", {"city": "Oslo"}),))
        )
    result = run_sensor(
        [
            "run",
            *sensor_flags(fake_upstream, upstream_certs, events_file),
            "--",
            "node",
            str(NODE_DIR / "chat.mjs"),
            mode,
        ],
        cwd=tmp_path,
    )
    assert result.returncode == 0, result.stderr
    sdk = json.loads(result.stdout)
    sent = fake_upstream.sent[-1]
    events = assert_valid_file(events_file)
    (request,) = by_type(events, "ai.request")
    (response,) = by_type(events, "ai.response")
    assert request["process"]["name"] == "node"
    assert response["data"]["usage"]["prompt_tokens"] == sdk["usage"]["prompt_tokens"]
    assert response["data"]["usage"]["completion_tokens"] == sdk["usage"]["completion_tokens"]
    if mode == "stream":
        assert sdk["text"] == "Hello from the fake, to Node."
        assert response["data"]["choices"][0]["message"]["content"] == sdk["text"]
        # Chunks reached the SDK as they were sent (Node clock in ms; the fake's in ns).
        assert sdk["chunks"][0] < sent.chunks[-1].ts_ns
        assert len(sdk["chunks"]) == len(sent.chunks) - 1
    elif mode == "https":
        assert sdk["text"] == "Hello to Node's https module."
        assert response["data"]["choices"][0]["message"]["content"] == sdk["text"]
    else:
        (call,) = sdk["tool_calls"]
        assert response["data"]["tool_calls"][0]["id"] == call["id"]
        assert response["data"]["tool_calls"][0]["arguments"] == call["function"]["arguments"]
        (tool_call,) = by_type(events, "agent.tool_call")
        assert tool_call["data"]["arguments"] == {"city": "Oslo"}


def test_record_until_sigterm_flushes_everything(
    fake_upstream: FakeProvider, upstream_certs: UpstreamCerts, tmp_path: Path
) -> None:
    events_file = tmp_path / "events.jsonl"
    socket_path = tmp_path / "oisp.sock"
    args = [
        *SENSOR,
        "record",
        *sensor_flags(fake_upstream, upstream_certs, events_file),
        "--proxy-port",
        "0",
        "--no-web",
        "--socket",
        str(socket_path),
    ]
    with subprocess.Popen(
        args, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True, cwd=tmp_path
    ) as proc:
        try:
            out, err = _drive_record(proc, fake_upstream, socket_path)
        finally:
            if proc.poll() is None:
                proc.kill()
    assert proc.returncode == 0, err
    assert "stopped" in out
    events = assert_valid_file(events_file)
    (answer,) = by_type(events, "ai.response")
    assert answer["data"]["choices"][0]["message"]["content"] == "recorded"
    assert not socket_path.exists()  # the bridge removed its socket on the way out


def _drive_record(
    proc: subprocess.Popen[str], fake: FakeProvider, socket_path: Path
) -> tuple[str, str]:
    """Wait for the banner, make one call through the proxy, SIGTERM, collect the output."""
    assert proc.stdout is not None and proc.stderr is not None
    banner = ""
    deadline = time.monotonic() + 30
    while "Press Ctrl-C" not in banner and time.monotonic() < deadline:
        line = proc.stdout.readline()
        if not line:
            break
        banner += line
    match = re.search(r"proxy\s+(http://127\.0\.0\.1:\d+)", banner)
    assert match, banner
    proxy = match.group(1)
    assert f"export HTTPS_PROXY={proxy}" in banner
    assert 'eval "$(oisp-sensor ca env)"' in banner
    assert str(socket_path) in banner
    ca = LocalCA.load()
    assert ca is not None
    trust = ssl.create_default_context(cafile=str(write_bundle(ca)))
    fake.queue(Script(text="recorded"))
    with httpx.Client(proxy=proxy, verify=trust, timeout=10) as client:
        response = client.post(
            "https://api.openai.com/v1/chat/completions",
            json={"model": "gpt-4o-mini", "messages": [{"role": "user", "content": "x"}]},
            headers={"Authorization": "Bearer sk-test-record-0123456789"},
        )
    assert response.status_code == 200
    proc.send_signal(signal.SIGTERM)
    return proc.communicate(timeout=30)
