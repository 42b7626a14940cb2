"""Who made the call: the process, its command line, working directory, user and parents.

Capture sources give a pid and little else (eBPF knows `comm`, the relay knows the
peer port). The rest is read from the OS through psutil once per process and kept
in a bounded LRU keyed by (pid, create time), so later events of the same process
cost a dictionary lookup, and events decoded after the process exited (a response
completes when its connection closes) still get what was learned while it lived.

A pid is only trusted for an event when the process holding it now started before
the event: pids are reused, and a capture file replayed later (or elsewhere) must
not be attributed to whatever runs under that pid today. Events older than
`max_event_age_s` are therefore enriched from the cache only.

What the capture itself said wins over what is read later; nothing here reads
environment variables. Command lines can carry secrets: redaction, which runs
after enrichment, is where they are removed.
"""

from __future__ import annotations

import os
import re
import shlex
import subprocess
import sys
import time
from collections import OrderedDict
from dataclasses import dataclass, field
from functools import lru_cache
from typing import Any

import psutil

from oisp_sensor.events import Event, rfc3339

MAX_ANCESTORS = 5
MAX_CMDLINE_CHARS = 16 * 1024
# psutil derives create_time from boot time, which /proc gives in whole seconds.
_START_SLACK_NS = 2_000_000_000
_CONTAINER_ID = re.compile(r"(?<![0-9a-f])([0-9a-f]{64})(?![0-9a-f])")
_INFO_ATTRS = tuple(
    a
    for a in ("name", "exe", "cmdline", "cwd", "ppid", "uids", "gids", "username")
    if hasattr(psutil.Process, a)
)


@dataclass(slots=True)
class ProcessFacts:
    """What was learned about one process (one pid generation) when first seen."""

    pid: int
    create_time: float
    fields: dict[str, Any]  # `process` fields: name, exe, cmdline, cwd, parent, ancestors...
    actor: dict[str, Any]  # uid, gid, user
    checked: float = 0.0  # monotonic time the pid's owner was last checked

    @property
    def started_ns(self) -> int:
        return int(self.create_time * 1e9)


@dataclass(slots=True)
class _Generations:
    """Every known process that held a pid, oldest first."""

    facts: list[ProcessFacts] = field(default_factory=list)


class ProcessEnricher:
    """Fills `process` (cmdline, exe, cwd, start_time, parent, ancestors) and `actor.user`."""

    def __init__(
        self,
        *,
        cache_size: int = 2048,
        recheck_s: float = 1.0,
        max_event_age_s: float = 900.0,
    ) -> None:
        self.cache_size = cache_size
        self.recheck_s = recheck_s
        self.max_event_age_ns = int(max_event_age_s * 1e9)
        self._lru: OrderedDict[tuple[int, float], ProcessFacts] = OrderedDict()
        self._by_pid: dict[int, _Generations] = {}

    def __len__(self) -> int:
        """How many processes are remembered."""
        return len(self._lru)

    def enrich(self, event: Event) -> None:
        proc = event.process
        if not proc:
            return
        pid = proc.get("pid")
        if isinstance(pid, bool) or not isinstance(pid, int) or pid <= 0:
            return
        facts = self.lookup(pid, event.ts_ns)
        if facts is None:
            return
        # The capture saw the process at the moment of the call; where it disagrees
        # with what we read (a parent that exited and was replaced by init), the
        # parent chain we read describes a different tree, so it is left out.
        same_parent = proc.get("ppid", facts.fields.get("ppid")) == facts.fields.get("ppid")
        for key, value in facts.fields.items():
            if key not in proc and (same_parent or key not in ("parent", "ancestors")):
                proc[key] = _copy(value)  # the event's own: no change to it reaches the cache
        actor = event.actor if event.actor is not None else {}
        uid = actor.get("uid")
        if isinstance(uid, int) and "user" not in actor:
            user = user_name(uid)
            if user:
                actor["user"] = user
        if uid is None or uid == facts.actor.get("uid"):
            for key, value in facts.actor.items():
                actor.setdefault(key, value)
        if actor:
            event.actor = actor

    def lookup(self, pid: int, ts_ns: int) -> ProcessFacts | None:
        """The process that held `pid` at `ts_ns`, from the cache or the OS."""
        generations = self._by_pid.get(pid)
        latest = generations.facts[-1] if generations else None
        now = time.monotonic()
        if latest is not None and now - latest.checked < self.recheck_s:
            return self._known(pid, ts_ns)
        if abs(time.time_ns() - ts_ns) > self.max_event_age_ns:
            return self._known(pid, ts_ns)
        try:
            proc = psutil.Process(pid)
            create_time = proc.create_time()
        except (psutil.Error, OSError):  # exited, or not ours to read: keep what we know
            if latest is not None:
                latest.checked = now
            return self._known(pid, ts_ns)
        if latest is not None and latest.create_time == create_time:
            latest.checked = now
            return self._known(pid, ts_ns)
        # A process not seen before, or the pid was reused. Remember it either way:
        # `_known` then picks whichever generation was running at the event's time.
        facts = collect(proc, create_time)
        if facts is None:
            return self._known(pid, ts_ns)
        facts.checked = now
        self._remember(facts)
        return self._known(pid, ts_ns)

    def _known(self, pid: int, ts_ns: int) -> ProcessFacts | None:
        generations = self._by_pid.get(pid)
        if generations is None:
            return None
        for facts in reversed(generations.facts):
            if facts.started_ns <= ts_ns + _START_SLACK_NS:
                self._lru.move_to_end((pid, facts.create_time))
                return facts
        return None

    def _remember(self, facts: ProcessFacts) -> None:
        self._lru[(facts.pid, facts.create_time)] = facts
        self._by_pid.setdefault(facts.pid, _Generations()).facts.append(facts)
        while len(self._lru) > self.cache_size:
            (pid, _), old = self._lru.popitem(last=False)
            generations = self._by_pid[pid]
            generations.facts.remove(old)
            if not generations.facts:
                del self._by_pid[pid]


def _copy(value: Any) -> Any:
    if isinstance(value, dict):
        return dict(value)
    if isinstance(value, list):
        return [dict(v) if isinstance(v, dict) else v for v in value]
    return value


def collect(proc: psutil.Process, create_time: float) -> ProcessFacts | None:
    """Read one process and its ancestors; None if it vanished meanwhile."""
    try:
        info = proc.as_dict(list(_INFO_ATTRS), ad_value=None)
    except (psutil.Error, OSError):
        return None
    fields: dict[str, Any] = {}
    for key in ("name", "exe", "cwd"):
        if isinstance(info.get(key), str) and info[key]:
            fields[key] = info[key]
    args = info.get("cmdline")
    if isinstance(args, list) and args:
        fields["cmdline"], fields["cmdline_args"] = join_cmdline(args)
    ppid = info.get("ppid")
    if isinstance(ppid, int):
        fields["ppid"] = ppid
    fields["start_time"] = rfc3339(int(create_time * 1e9))
    ancestors = read_ancestors(proc.pid, ppid)
    if ancestors:
        fields["parent"] = ancestors[0]
        fields["ancestors"] = [
            {k: v for k, v in a.items() if k in ("pid", "name", "exe")} for a in ancestors
        ]
    fields.update(read_cgroup(proc.pid))
    actor: dict[str, Any] = {}
    uids, gids = info.get("uids"), info.get("gids")
    if uids is not None:
        actor["uid"] = uids.real
    if gids is not None:
        actor["gid"] = gids.real
    if isinstance(info.get("username"), str) and info["username"]:
        actor["user"] = info["username"]
    return ProcessFacts(proc.pid, create_time, fields, actor)


def read_ancestors(pid: int, ppid: Any, limit: int = MAX_ANCESTORS) -> list[dict[str, Any]]:
    """Parent first: pid, name, exe (and the parent's cmdline), as far as can be read."""
    chain: list[dict[str, Any]] = []
    seen = {pid}
    while isinstance(ppid, int) and ppid > 0 and ppid not in seen and len(chain) < limit:
        seen.add(ppid)
        wanted = ["name", "exe", "ppid"] + (["cmdline"] if not chain else [])
        try:
            info = psutil.Process(ppid).as_dict(wanted, ad_value=None)
        except (psutil.Error, OSError):
            break
        node: dict[str, Any] = {"pid": ppid}
        for key in ("name", "exe"):
            if isinstance(info.get(key), str) and info[key]:
                node[key] = info[key]
        args = info.get("cmdline")
        if isinstance(args, list) and args:
            node["cmdline"] = join_cmdline(args)[0]
        chain.append(node)
        ppid = info.get("ppid")
    return chain


def join_cmdline(args: list[str]) -> tuple[str, list[str]]:
    """The command line as one string (quoted as the platform's shell would) and as
    arguments, both capped: a command line can be megabytes long."""
    kept: list[str] = []
    size = 0
    for arg in args:
        size += len(arg) + 1
        if size > MAX_CMDLINE_CHARS:
            kept.append(arg[: max(0, MAX_CMDLINE_CHARS - (size - len(arg) - 1))] + "…")
            break
        kept.append(arg)
    joined = subprocess.list2cmdline(kept) if os.name == "nt" else shlex.join(kept)
    return joined, kept


def read_cgroup(pid: int) -> dict[str, str]:
    """`cgroup` and `container_id` (Docker, containerd, CRI-O, Podman) on Linux."""
    if not sys.platform.startswith("linux"):
        return {}
    try:
        with open(f"/proc/{pid}/cgroup", encoding="utf-8", errors="replace") as f:
            text = f.read(16 * 1024)
    except OSError:
        return {}
    out: dict[str, str] = {}
    paths: dict[str, str] = {}
    for line in text.splitlines():
        parts = line.split(":", 2)  # hierarchy-ID:controller-list:cgroup-path (cgroups(7))
        if len(parts) == 3:
            paths[parts[1]] = parts[2]
    path = paths.get("") or paths.get("name=systemd")
    if path and path != "/":
        out["cgroup"] = path
    ids = _CONTAINER_ID.findall(text)
    if ids:
        out["container_id"] = ids[-1]
    return out


@lru_cache(maxsize=256)
def user_name(uid: int) -> str | None:
    """The login name of a uid, if this system knows it."""
    try:
        import pwd
    except ImportError:  # Windows: psutil's username() is used instead
        return None
    try:
        return pwd.getpwuid(uid).pw_name
    except (KeyError, OverflowError):
        return None
