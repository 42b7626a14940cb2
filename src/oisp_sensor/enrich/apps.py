"""Which application made the call: Claude Code, Cursor, VS Code, a browser, a script.

Identification reads the process (exe path, process name, command line) that the
process enricher filled in, against one small table, `APPS`; adding an app means
adding one `AppSignature`. First match wins, so specific entries come before
broad ones (Claude Code runs as `node .../claude`, so it must be recognised before
the generic "node script" rule).

An app found in the table is tier `identified`. Anything else is tier `unknown`
(common/app.schema.json: "process found but no app match"), named after what is
known: a Python or Node script by its script name (`agent.py`, category `cli`),
anything else by its program name. When an unknown or non-AI program was started
by an identified app (a `python` run by Claude Code), `launched_by` names that app.
"""

from __future__ import annotations

import fnmatch
import ntpath
import posixpath
import re
from collections import OrderedDict
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

from oisp_sensor.events import Event


@dataclass(frozen=True, slots=True)
class AppSignature:
    """One known application and how to recognise its processes.

    `programs` are globs on the program name (basename of the exe, the process name
    or argv[0], lower case, without `.exe`); `scripts` are globs on the script a
    Python/Node runtime runs (basename, or the module of `python -m`); `markers` are
    substrings of the exe path or of any argument (lower case, `/` separators).
    """

    app_id: str
    name: str
    vendor: str
    category: str  # dev_tools chat productivity creative browser cli server other
    type: str  # native web extension cli server
    is_ai_app: bool
    is_ai_host: bool = False
    programs: tuple[str, ...] = ()
    scripts: tuple[str, ...] = ()
    markers: tuple[str, ...] = ()

    def as_app(self) -> dict[str, Any]:
        app: dict[str, Any] = {
            "app_id": self.app_id,
            "name": self.name,
            "vendor": self.vendor,
            "category": self.category,
            "tier": "identified",
            "is_ai_app": self.is_ai_app,
            "type": self.type,
        }
        if self.is_ai_host:
            app["is_ai_host"] = True
        return app


APPS: tuple[AppSignature, ...] = (
    AppSignature(
        "claude-desktop",
        "Claude",
        "Anthropic",
        "chat",
        "native",
        is_ai_app=True,
        programs=("claude-desktop",),
        markers=("/claude.app/", "/anthropicclaude/"),
    ),
    AppSignature(
        "claude-code",
        "Claude Code",
        "Anthropic",
        "dev_tools",
        "cli",
        is_ai_app=True,
        programs=("claude",),
        scripts=("claude",),
        markers=("@anthropic-ai/claude-code", "/claude/versions/"),
    ),
    AppSignature(
        "codex",
        "Codex CLI",
        "OpenAI",
        "dev_tools",
        "cli",
        is_ai_app=True,
        programs=("codex", "codex-*"),
        scripts=("codex",),
        markers=("@openai/codex",),
    ),
    AppSignature(
        "gemini-cli",
        "Gemini CLI",
        "Google",
        "dev_tools",
        "cli",
        is_ai_app=True,
        programs=("gemini",),
        scripts=("gemini",),
        markers=("@google/gemini-cli",),
    ),
    AppSignature(
        "aider",
        "Aider",
        "Aider AI",
        "dev_tools",
        "cli",
        is_ai_app=True,
        programs=("aider",),
        scripts=("aider", "aider.main"),
    ),
    AppSignature(
        "github-copilot",
        "GitHub Copilot",
        "GitHub",
        "dev_tools",
        "extension",
        is_ai_app=True,
        programs=("copilot-language-server",),
        markers=("copilot-language-server",),
    ),
    AppSignature(
        "cursor",
        "Cursor",
        "Anysphere Inc.",
        "dev_tools",
        "native",
        is_ai_app=True,
        is_ai_host=True,
        programs=("cursor", "cursor-agent", "cursor helper*"),
        markers=("/cursor.app/",),
    ),
    AppSignature(
        "vscode",
        "Visual Studio Code",
        "Microsoft",
        "dev_tools",
        "native",
        is_ai_app=False,
        is_ai_host=True,
        programs=("code", "code-insiders", "code-oss", "code helper*"),
        markers=("/visual studio code.app/", "/visual studio code - insiders.app/"),
    ),
    AppSignature(
        "chrome",
        "Google Chrome",
        "Google",
        "browser",
        "native",
        is_ai_app=False,
        programs=("chrome", "google-chrome*", "google chrome*"),
        markers=("/google chrome.app/",),
    ),
    AppSignature(
        "chromium",
        "Chromium",
        "The Chromium Project",
        "browser",
        "native",
        is_ai_app=False,
        programs=("chromium", "chromium-browser", "chrome-headless-shell", "headless_shell"),
        markers=("/chromium.app/",),
    ),
    AppSignature(
        "firefox",
        "Firefox",
        "Mozilla",
        "browser",
        "native",
        is_ai_app=False,
        programs=("firefox", "firefox-esr", "firefox-bin", "firefox.real"),
        markers=("/firefox.app/",),
    ),
    AppSignature(
        "ollama",
        "Ollama",
        "Ollama",
        "server",
        "server",
        is_ai_app=True,
        programs=("ollama", "ollama app"),
        markers=("/ollama.app/",),
    ),
    AppSignature(
        "curl",
        "curl",
        "curl",
        "cli",
        "cli",
        is_ai_app=False,
        programs=("curl",),
    ),
)

_PYTHON = re.compile(r"^(python|pythonw|pypy)(\d+(\.\d+)*)?[tw]?$|^py$")
_NODE = frozenset({"node", "nodejs", "bun", "deno"})
_SHELLS = frozenset(
    {"sh", "bash", "zsh", "fish", "dash", "ksh", "tcsh", "cmd", "powershell", "pwsh"}
)
# Interpreter options that take a value in the next argument.
_PYTHON_VALUE_OPTS = frozenset({"-W", "-X", "--check-hash-based-pycs"})
_NODE_VALUE_OPTS = frozenset(
    {
        "-r",
        "--require",
        "--import",
        "--loader",
        "--experimental-loader",
        "--env-file",
        "-C",
        "--conditions",
        "--title",
        "--input-type",
        "--inspect-port",
    }
)
_NODE_INLINE_OPTS = frozenset({"-e", "--eval", "-p", "--print"})


@dataclass(frozen=True, slots=True)
class _View:
    """A process seen the way signatures look at it."""

    programs: tuple[str, ...]
    script: str | None
    runtime: str | None  # "python" | "node" when the program is an interpreter
    haystack: tuple[str, ...]  # exe path and arguments, lower case, "/" separators


def program_name(path: str) -> str:
    base = ntpath.basename(posixpath.basename(path)) if path else ""
    base = base.lower()
    return base[:-4] if base.endswith(".exe") else base


def runtime_of(program: str) -> str | None:
    if _PYTHON.match(program):
        return "python"
    if program in _NODE:
        return "node"
    return None


def runtime_script(runtime: str, args: Sequence[str]) -> str | None:
    """What `python ...`/`node ...` runs: the script's basename, or the module of `-m`;
    None for inline code (`-c`, `-e`) and interactive sessions."""
    value_opts = _PYTHON_VALUE_OPTS if runtime == "python" else _NODE_VALUE_OPTS
    i = 1
    while i < len(args):
        arg = args[i]
        if runtime == "python":
            if arg == "-m":
                return args[i + 1] if i + 1 < len(args) else None
            if arg.startswith("-m") and not arg.startswith("--"):
                return arg[2:]
            if arg.startswith("-c") and not arg.startswith("--"):
                return None
        elif arg in _NODE_INLINE_OPTS:
            return None
        if arg == "-" or arg == "--":
            return None
        if arg in value_opts:
            i += 2
            continue
        if arg.startswith("-"):
            i += 1
            continue
        return program_name(arg) if runtime == "python" else _script_base(arg)
    return None


def _script_base(path: str) -> str:
    return ntpath.basename(posixpath.basename(path)).lower()


def _str(value: Any) -> str:
    return value if isinstance(value, str) else ""


def view_of(process: dict[str, Any]) -> _View:
    exe, name = _str(process.get("exe")), _str(process.get("name"))
    args = process.get("cmdline_args")
    if not isinstance(args, list) or not all(isinstance(a, str) for a in args):
        cmdline = process.get("cmdline")
        args = cmdline.split() if isinstance(cmdline, str) else []
    programs = tuple(
        dict.fromkeys(
            p for p in (program_name(exe), name.lower(), program_name(args[0] if args else "")) if p
        )
    )
    runtime = next((r for p in programs if (r := runtime_of(p))), None)
    script = runtime_script(runtime, args) if runtime and args else None
    haystack = tuple(s.lower().replace("\\", "/") for s in (exe, *args[1:]) if s)
    return _View(programs, script.lower() if script else None, runtime, haystack)


def match(view: _View, apps: Sequence[AppSignature] = APPS) -> AppSignature | None:
    for sig in apps:
        if any(fnmatch.fnmatchcase(p, g) for p in view.programs for g in sig.programs):
            return sig
        if view.script and any(fnmatch.fnmatchcase(view.script, g) for g in sig.scripts):
            return sig
        if sig.markers and any(m in s for s in view.haystack for m in sig.markers):
            return sig
    return None


def identify(process: dict[str, Any], apps: Sequence[AppSignature] = APPS) -> dict[str, Any] | None:
    """The `app` object for a process, or None when nothing about it is known."""
    view = view_of(process)
    sig = match(view, apps)
    if sig is not None:
        app = sig.as_app()
    elif view.runtime and view.script:
        app = {
            "app_id": f"{view.runtime}:{view.script}",
            "name": view.script,
            "category": "cli",
            "tier": "unknown",
            "type": "cli",
        }
    elif view.programs:
        program = view.runtime or view.programs[0]
        app = {"app_id": program, "name": process.get("name") or program, "tier": "unknown"}
    else:
        return None
    if sig is None or not sig.is_ai_app:
        launcher = _launcher(process, apps, sig)
        if launcher is not None:
            app["launched_by"] = launcher.app_id
    return app


def _launcher(
    process: dict[str, Any], apps: Sequence[AppSignature], own: AppSignature | None
) -> AppSignature | None:
    """The nearest identified ancestor (its name and exe are all we have of it)."""
    ancestors = process.get("ancestors")
    if not isinstance(ancestors, list):
        return None
    for node in ancestors:
        if not isinstance(node, dict):
            continue
        exe, name = _str(node.get("exe")), _str(node.get("name"))
        programs = tuple(p for p in (program_name(exe), name.lower()) if p)
        if any(p in _SHELLS for p in programs):
            continue
        haystack = (exe.lower().replace("\\", "/"),) if exe else ()
        found = match(_View(programs, None, None, haystack), apps)
        if found is not None and found is not own:
            return found
    return None


class AppEnricher:
    """Sets `app` from `process` (run it after the process enricher)."""

    def __init__(self, apps: Sequence[AppSignature] = APPS, *, cache_size: int = 2048) -> None:
        self.apps = tuple(apps)
        self.cache_size = cache_size
        self._cache: OrderedDict[tuple[Any, ...], dict[str, Any] | None] = OrderedDict()

    def enrich(self, event: Event) -> None:
        proc = event.process
        if not proc or event.app:
            return
        key = (
            proc.get("pid"),
            proc.get("start_time"),
            proc.get("name"),
            proc.get("exe"),
            proc.get("cmdline"),
        )
        try:
            app = self._cache[key]
            self._cache.move_to_end(key)
        except KeyError:
            app = self._cache[key] = identify(proc, self.apps)
            if len(self._cache) > self.cache_size:
                self._cache.popitem(last=False)
        except TypeError:  # an unhashable value in a hand-made process object
            app = identify(proc, self.apps)
        if app is not None:
            event.app = dict(app)
