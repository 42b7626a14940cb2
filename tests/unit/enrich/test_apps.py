"""App identification: real processes on this machine, and the process shapes the
apps have on each platform (taken from how they are installed and launched)."""

from __future__ import annotations

import shutil
import socket
import subprocess
import sys
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import psutil
import pytest

from oisp_sensor.enrich.apps import APPS, AppEnricher, AppSignature, identify
from oisp_sensor.enrich.process import ProcessEnricher
from oisp_sensor.events import Event
from tests.conformance import assert_valid_events
from tests.unit.enrich.events import response_event

APP_CATEGORIES = {
    "dev_tools",
    "chat",
    "productivity",
    "creative",
    "browser",
    "cli",
    "server",
    "other",
}
APP_TYPES = {"native", "web", "extension", "cli", "server"}


def enriched(pid: int) -> Event:
    event = response_event("anthropic", "claude-sonnet-4-20250514", None, process={"pid": pid})
    ProcessEnricher().enrich(event)
    AppEnricher().enrich(event)
    assert_valid_events([event.to_dict()])
    return event


def wait_for(pid: int, marker: str) -> None:
    deadline = time.monotonic() + 10
    while time.monotonic() < deadline:
        try:
            if marker in " ".join(psutil.Process(pid).cmdline()):
                return
        except psutil.Error:
            pass
        time.sleep(0.01)
    raise AssertionError(f"{pid} never ran {marker}")


@pytest.fixture
def spawn() -> Iterator[Any]:
    started: list[subprocess.Popen[bytes]] = []

    def run(args: list[str], marker: str, **kwargs: Any) -> subprocess.Popen[bytes]:
        child = subprocess.Popen(args, **kwargs)
        started.append(child)
        wait_for(child.pid, marker)
        return child

    yield run
    for child in started:
        for p in psutil.Process(child.pid).children(recursive=True) if child.poll() is None else []:
            p.kill()
        child.kill()
        child.wait()


def test_python_script_is_named_after_the_script(spawn: Any, tmp_path: Path) -> None:
    script = tmp_path / "agent.py"
    script.write_text("import time\ntime.sleep(60)\n")
    child = spawn([sys.executable, "-u", str(script), "--model", "x"], "agent.py")
    app = enriched(child.pid).app
    assert app == {
        "app_id": "python:agent.py",
        "name": "agent.py",
        "category": "cli",
        "tier": "unknown",
        "type": "cli",
    }


def test_python_module(spawn: Any) -> None:
    child = spawn([sys.executable, "-m", "http.server", "0", "--bind", "127.0.0.1"], "http.server")
    app = enriched(child.pid).app
    assert app is not None and app["app_id"] == "python:http.server"


@pytest.mark.skipif(shutil.which("node") is None, reason="Node.js is not installed")
def test_node_script(spawn: Any, tmp_path: Path) -> None:
    script = tmp_path / "server.js"
    script.write_text("setTimeout(() => {}, 60000);\n")
    child = spawn(["node", "--no-warnings", str(script)], "server.js")
    app = enriched(child.pid).app
    assert app is not None
    assert (app["app_id"], app["name"], app["tier"]) == ("node:server.js", "server.js", "unknown")


@pytest.mark.skipif(shutil.which("curl") is None, reason="curl is not installed")
def test_curl(spawn: Any) -> None:
    with socket.create_server(("127.0.0.1", 0)) as server:  # accepts, never answers
        port = server.getsockname()[1]
        child = spawn(["curl", "-s", "-m", "30", f"http://127.0.0.1:{port}/v1/models"], "curl")
        app = enriched(child.pid).app
    assert app is not None
    assert (app["app_id"], app["tier"], app["category"], app["is_ai_app"]) == (
        "curl",
        "identified",
        "cli",
        False,
    )


def test_claude_code_and_what_it_launches(spawn: Any, tmp_path: Path) -> None:
    """A program installed as `claude` (here: the Python interpreter under that name, as
    Claude Code's native installer names its binary) is Claude Code; a script it runs is
    that script, launched by Claude Code."""
    claude = tmp_path / "bin" / "claude"
    claude.parent.mkdir()
    claude.symlink_to(sys.executable)
    script = tmp_path / "tool.py"
    script.write_text("import time\ntime.sleep(60)\n")
    parent = spawn(
        [
            str(claude),
            "-c",
            f"import subprocess; subprocess.run([{sys.executable!r}, {str(script)!r}])",
        ],
        "subprocess",
    )
    app = enriched(parent.pid).app
    assert app is not None
    assert (app["app_id"], app["name"], app["vendor"], app["tier"], app["is_ai_app"]) == (
        "claude-code",
        "Claude Code",
        "Anthropic",
        "identified",
        True,
    )
    deadline = time.monotonic() + 10
    while not (children := psutil.Process(parent.pid).children()):
        assert time.monotonic() < deadline
        time.sleep(0.01)
    wait_for(children[0].pid, "tool.py")
    tool = enriched(children[0].pid).app
    assert tool is not None
    assert tool["app_id"] == "python:tool.py"
    assert tool["launched_by"] == "claude-code"


def test_nothing_known_about_the_process() -> None:
    event = response_event("openai", "gpt-4o", None, process={"pid": 999_999_999})
    AppEnricher().enrich(event)
    assert event.app is None
    event = response_event("openai", "gpt-4o", None)
    AppEnricher().enrich(event)
    assert event.app is None


def test_an_app_set_by_the_source_is_kept() -> None:
    event = response_event("openai", "gpt-4o", None, process={"pid": 1, "name": "curl"})
    event.app = {"app_id": "from-source", "tier": "profiled"}
    AppEnricher().enrich(event)
    assert event.app == {"app_id": "from-source", "tier": "profiled"}


def proc(exe: str = "", *args: str, name: str | None = None, **extra: Any) -> dict[str, Any]:
    process: dict[str, Any] = {"pid": 4242}
    if exe:
        process["exe"] = exe
    process["name"] = name if name is not None else exe.replace("\\", "/").rsplit("/", 1)[-1]
    if args:
        process["cmdline_args"] = list(args)
    process.update(extra)
    return process


# (how the process looks, expected app_id) — from each app's installers and launchers.
PROCESSES = [
    # Claude Code via npm: `claude` is a node script (#!/usr/bin/env node).
    (proc("/usr/bin/node", "node", "/usr/local/bin/claude", "--print", "hi"), "claude-code"),
    # ... and on Windows through the npm .cmd shim.
    (
        proc(
            r"C:\Program Files\nodejs\node.exe",
            r"C:\Program Files\nodejs\node.exe",
            r"C:\Users\a\AppData\Roaming\npm\node_modules\@anthropic-ai\claude-code\cli.js",
        ),
        "claude-code",
    ),
    # Claude Code's native installer: ~/.local/bin/claude -> ~/.local/share/claude/versions/X
    (proc("/home/a/.local/share/claude/versions/2.0.14", "claude", name="claude"), "claude-code"),
    (proc("/Applications/Claude.app/Contents/MacOS/Claude", name="Claude"), "claude-desktop"),
    (
        proc("/usr/lib/node_modules/@openai/codex/bin/codex-x86_64-unknown-linux-musl", "codex"),
        "codex",
    ),
    (proc("/usr/bin/node", "node", "/usr/bin/codex", "exec", "fix it"), "codex"),
    (proc("/usr/bin/node", "node", "/home/a/.npm-global/bin/gemini", "-p", "hi"), "gemini-cli"),
    (proc("/usr/bin/python3.12", "/home/a/.local/bin/python", "/home/a/.local/bin/aider"), "aider"),
    (proc("/usr/bin/python3", "python3", "-m", "aider", "--model", "sonnet"), "aider"),
    (
        proc(
            "/Applications/Cursor.app/Contents/Frameworks/Cursor Helper (Plugin).app/"
            "Contents/MacOS/Cursor Helper (Plugin)"
        ),
        "cursor",
    ),
    (proc("/tmp/.mount_cursorAbc/cursor", name="cursor"), "cursor"),
    (proc(r"C:\Users\a\AppData\Local\Programs\cursor\Cursor.exe", name="Cursor.exe"), "cursor"),
    (
        proc("/usr/share/code/code", "/usr/share/code/code", "--type=utility", name="code"),
        "vscode",
    ),
    (proc(r"C:\Users\a\AppData\Local\Programs\Microsoft VS Code\Code.exe"), "vscode"),
    (
        proc(
            "/Applications/Visual Studio Code.app/Contents/Frameworks/Code Helper (Plugin).app/"
            "Contents/MacOS/Code Helper (Plugin)"
        ),
        "vscode",
    ),
    (
        proc(
            "/usr/bin/node",
            "node",
            "/home/a/.vscode/extensions/github.copilot-chat-0.30/dist/copilot-language-server.js",
        ),
        "github-copilot",
    ),
    (proc("/opt/google/chrome/chrome", "/opt/google/chrome/chrome", "--type=utility"), "chrome"),
    (
        proc(
            "/Applications/Google Chrome.app/Contents/Frameworks/Google Chrome Framework.framework/"
            "Helpers/Google Chrome Helper.app/Contents/MacOS/Google Chrome Helper"
        ),
        "chrome",
    ),
    (proc("/usr/lib/chromium/chromium", "/usr/lib/chromium/chromium"), "chromium"),
    (proc("/usr/lib/firefox-esr/firefox-esr"), "firefox"),
    (proc("/usr/local/bin/ollama", "ollama", "serve"), "ollama"),
    (proc("/usr/bin/curl", "curl", "https://api.openai.com/v1/models"), "curl"),
    (proc(r"C:\Windows\System32\curl.exe"), "curl"),
    # eBPF sees only comm (15 characters) and the pid's exe.
    (proc("", name="ollama"), "ollama"),
    # Generic: scripts by name, anything else by program name.
    (proc("/usr/bin/python3.11", "python3", "/srv/app/worker.py"), "python:worker.py"),
    (proc("/usr/bin/python3", "python3", "-c", "print(1)"), "python"),
    (
        proc("/usr/bin/node", "node", "--require", "ts-node/register", "src/index.ts"),
        "node:index.ts",
    ),
    (proc("/usr/bin/node", "node", "-e", "fetch('x')"), "node"),
    (proc("/usr/bin/wget", "wget", "-q", "x"), "wget"),
    # A user's own script that happens to be called gemini.py is not Gemini CLI.
    (proc("/usr/bin/python3", "python3", "gemini.py"), "python:gemini.py"),
]


@pytest.mark.parametrize(("process", "app_id"), PROCESSES)
def test_identify(process: dict[str, Any], app_id: str) -> None:
    app = identify(process)
    assert app is not None and app["app_id"] == app_id
    known = next((s for s in APPS if s.app_id == app_id), None)
    assert app["tier"] == ("identified" if known else "unknown")
    event = response_event("openai", "gpt-4o", None, process=process)
    event.app = app
    assert_valid_events([event.to_dict()])


def test_launched_by_skips_shells() -> None:
    process = proc(
        "/usr/bin/python3",
        "python3",
        "ask.py",
        ancestors=[
            {"pid": 10, "name": "bash", "exe": "/usr/bin/bash"},
            {"pid": 9, "name": "code", "exe": "/usr/share/code/code"},
            {"pid": 1, "name": "systemd", "exe": "/usr/lib/systemd/systemd"},
        ],
    )
    app = identify(process)
    assert app is not None and app["launched_by"] == "vscode"


def test_the_table_conforms_to_the_spec() -> None:
    ids = [s.app_id for s in APPS]
    assert len(ids) == len(set(ids))
    for sig in APPS:
        assert sig.category in APP_CATEGORIES and sig.type in APP_TYPES
        assert sig.programs or sig.scripts or sig.markers


def test_the_table_is_extensible() -> None:
    mine = AppSignature(
        "corp-agent", "Corp Agent", "Corp", "productivity", "cli", True, scripts=("corp_agent",)
    )
    event = response_event(
        "openai",
        "gpt-4o",
        None,
        process=proc("/usr/bin/python3", "python3", "-m", "corp_agent"),
    )
    AppEnricher((mine, *APPS)).enrich(event)
    assert event.app is not None and event.app["app_id"] == "corp-agent"


def test_cached_per_process_and_copied_per_event() -> None:
    enricher = AppEnricher()
    process = proc("/usr/bin/curl", "curl", "x", start_time="2026-01-01T00:00:00.000000Z")
    first = response_event("openai", "gpt-4o", None, process=dict(process))
    second = response_event("openai", "gpt-4o", None, process=dict(process))
    enricher.enrich(first)
    enricher.enrich(second)
    assert first.app == second.app and first.app is not second.app
    assert first.app is not None
    first.app["name"] = "changed"
    assert second.app is not None and second.app["name"] == "curl"


def test_pid_reused_by_another_program_is_identified_again() -> None:
    enricher = AppEnricher()
    a = response_event("openai", "gpt-4o", None, process=proc("/usr/bin/curl", "curl"))
    b = response_event("openai", "gpt-4o", None, process=proc("/usr/local/bin/ollama", "ollama"))
    enricher.enrich(a)
    enricher.enrich(b)
    assert a.app is not None and b.app is not None
    assert (a.app["app_id"], b.app["app_id"]) == ("curl", "ollama")
