"""Redaction: the last thing an event goes through before any sink sees it.

The pipeline calls `EventRedactor.redact(event)` after decoding and enrichment, for
every event from every capture source, so JSONL, the store, the web API and every
exporter receive the same redacted event. Three modes (config `redaction.mode`):

- `safe` (default): secrets and personal data are masked, content is kept.
- `full`: content is kept as sent; secrets are still masked.
- `minimal`: no content at all. Messages keep their role, `content_length` and a
  keyed `content_hash`; response text, thinking, tool arguments and tool results
  are removed, their hashes and sizes kept. Where the spec has a content field the
  removed text is replaced by its `redacted_content` marker
  (`{"$redacted": {reason, original_length, hash, redaction_profile}}`).

Masked values become typed placeholders, `[EMAIL:3f2a9c1b]`: the label says what
was there and the hex is the start of the value's keyed hash (privacy/hashing.py),
so the same address correlates across events on this machine without being
revealed. Custom patterns from the config apply in every mode.

A redactor that fails must not let the event through as it was, nor stop the
pipeline: the event is reduced to metadata (`_fail_closed`) and counted.
"""

from __future__ import annotations

import json
import logging
import math
from collections import Counter
from collections.abc import Sequence
from enum import StrEnum
from typing import Any
from urllib.parse import urlsplit, urlunsplit

import orjson

from oisp_sensor.counters import Counters
from oisp_sensor.events import Event
from oisp_sensor.privacy.detectors import UNSCANNED, Finding, Kind, Scanner
from oisp_sensor.privacy.hashing import KeyedHasher

log = logging.getLogger(__name__)


class RedactionMode(StrEnum):
    SAFE = "safe"
    FULL = "full"
    MINIMAL = "minimal"


# Values the sensor itself made (hashes, ids) or enumerations: never scanned.
_SKIP = frozenset({"request_id", "conversation_id", "key_prefix", "event_id"})

# Values without text: `walk` keeps them without looking further.
_SCALARS = frozenset({int, float, bool, type(None)})

_CACHED_LENGTH = 256
_CACHE_ENTRIES = 8192
# Distinct clean process/actor/host/app objects remembered, and the longest remembered
# (as JSON; a longer one, a huge command line, is walked every time): 8 MiB at most.
_META_ENTRIES = 512
_META_BYTES = 16 * 1024

# Confidence reasons added when something was masked (never the values themselves).
_REASONS = {
    Kind.SECRET: "secret_redacted",
    Kind.PII: "pii_redacted",
    Kind.CUSTOM: "custom_pattern_redacted",
    Kind.LIMIT: "redaction_limit_reached",
}

# What survives when redaction itself fails: metadata that never carries content.
_FAIL_CLOSED_KEYS = frozenset(
    {
        "request_id",
        "conversation_id",
        "provider",
        "model",
        "request_type",
        "streaming",
        "messages_count",
        "tools_count",
        "status_code",
        "success",
        "usage",
        "latency_ms",
        "time_to_first_token_ms",
        "finish_reason",
        "tool_calls_count",
        "call_id",
        "tool",
        "duration_ms",
        "result_size_bytes",
        "chunk_index",
        "dest",
        "protocol",
    }
)


class EventRedactor:
    """Applies one redaction mode to events; one instance serves the whole pipeline."""

    def __init__(
        self,
        mode: RedactionMode | str,
        hasher: KeyedHasher,
        *,
        patterns: Sequence[tuple[str, str]] = (),
        counters: Counters | None = None,
    ) -> None:
        self.mode = RedactionMode(mode)
        self.hasher = hasher
        self.counters = counters if counters is not None else Counters()
        # Content: personal data too, except in `full`. Process metadata (command
        # lines, paths): secrets only, in every mode.
        self.content_scanner = Scanner(pii=self.mode is not RedactionMode.FULL, custom=patterns)
        self.meta_scanner = Scanner(pii=False, custom=patterns)
        # Short strings that recur in every event (model ids, endpoints, user agents,
        # process names) and were found clean, per scanner. Only clean strings are
        # kept, so the cache never holds anything that had to be masked.
        self.clean_cache: tuple[set[str], set[str]] = (set(), set())
        # Keys of walked objects whose values are scanned (not ids or hashes): the same
        # few dozen in every event, so each is classified once.
        self.walked_keys: set[Any] = set()
        # Process, actor, host and app objects (their JSON) that the metadata scanner
        # found clean: see `_EventPass.meta`.
        self.clean_meta: set[bytes] = set()
        # Shorter than anything a built-in detector matches; a custom pattern may be short.
        self.min_length = 1 if patterns else 6

    def placeholder(self, finding: Finding) -> str:
        return f"[{finding.label}:{self.hasher.digest(finding.value)[:8]}]"

    def redact(self, event: Event) -> Event:
        try:
            _EventPass(self).apply(event)
        except Exception as e:  # noqa: BLE001 - a redaction bug must not leak or stop capture
            self.counters.inc("redaction.errors")
            # Only the type: an exception message could quote the content.
            log.error("redaction failed (%s); event reduced to metadata", type(e).__name__)
            _fail_closed(event, self.mode)
        return event


class _EventPass:
    """State of redacting one event: which findings, whether content was removed."""

    __slots__ = ("r", "minimal", "found", "removed")

    def __init__(self, redactor: EventRedactor) -> None:
        self.r = redactor
        self.minimal = redactor.mode is RedactionMode.MINIMAL
        self.found: Counter[tuple[str, Kind]] = Counter()
        self.removed = False

    def apply(self, event: Event) -> None:
        r = self.r
        content, meta = r.content_scanner, r.meta_scanner
        event.data = self.data(event.data)
        if event.web_context:
            web = self.walk(event.web_context, content)
            if self.minimal and isinstance(web.get("referer"), str):
                # A page's path can name what the user is doing; its origin says where.
                referer = urlsplit(web["referer"])
                web["referer"] = urlunsplit((referer.scheme, referer.netloc, "/", "", ""))
                self.removed = True
            event.web_context = web
        if event.attrs:
            event.attrs = self.walk(event.attrs, content)
        for name in ("process", "actor", "host", "app"):
            value = getattr(event, name)
            if value:
                setattr(event, name, self.meta(value, meta))
        if self.minimal and event.process:
            event.process = self.program_only(event.process)
        self.mark(event)

    def program_only(self, process: dict[str, Any]) -> dict[str, Any]:
        """Minimal mode keeps which program ran, not what it was told: a command-line
        agent's arguments can be the prompt itself. (The app was identified before.)
        `process` is the walked copy, so it is changed in place."""
        for owner in (process, process.get("parent")):
            if not isinstance(owner, dict):
                continue
            args = owner.get("cmdline_args")
            cmdline = owner.get("cmdline")
            if isinstance(args, list) and len(args) > 1:
                owner["cmdline_args"] = args[:1]
                self.removed = True
            if isinstance(cmdline, str) and " " in cmdline.strip():
                first = args[0] if isinstance(args, list) and args else cmdline.split(" ", 1)[0]
                owner["cmdline"] = str(first)
                self.removed = True
        return process

    def meta(self, value: Any, scanner: Scanner) -> Any:
        """A process, actor, host or app object, walked with the metadata scanner.

        Every event of a connection carries the same ones, so each distinct object is
        scanned once: an object the walk found nothing in comes out equal to what went
        in, and its JSON is remembered; an equal object later (same JSON: same keys in
        the same order, same values) gets a fresh copy parsed from that JSON, which is
        what the walk would have returned, without scanning again. Safe because:
        - only clean objects are remembered, so the memo holds nothing that had to be
          masked (as `clean_cache`), and an object with a finding is walked every time,
          its findings counted every time;
        - only objects of plain JSON types (dict with str keys, list, str, int, finite
          float, bool, None; no subclasses) are remembered, for which parsing the JSON
          gives back an equal object of the same types. An input with the same JSON holds
          the same strings, so its walk finds nothing either and is recorded as the same
          JSON (orjson seals events too);
        - each event gets its own copy (minimal mode's `program_only` edits it in place),
          so nothing is shared between events or connections.
        """
        try:
            key = orjson.dumps(value)
        except TypeError:  # what orjson cannot encode: walked as before
            return self.walk(value, scanner)
        memo = self.r.clean_meta
        if key in memo:
            return orjson.loads(key)
        found = self.found.total()
        out = self.walk(value, scanner)
        if self.found.total() == found and len(key) <= _META_BYTES and _plain(value):
            if len(memo) >= _META_ENTRIES:
                memo.clear()
            memo.add(key)
        return out

    # --- generic --------------------------------------------------------------------------

    def text(self, value: str, scanner: Scanner) -> str:
        n = len(value)
        if n < self.r.min_length:
            return value
        clean = self.r.clean_cache[scanner is self.r.meta_scanner]
        if n <= _CACHED_LENGTH and value in clean:
            return value
        out, found = scanner.redact(value, self.r.placeholder)
        if not found and n <= _CACHED_LENGTH:
            if len(clean) >= _CACHE_ENTRIES:
                clean.clear()
            clean.add(value)
        for f in found:
            self.found[(f.label, f.kind)] += 1
        return out

    def walk(self, value: Any, scanner: Scanner, *, keys: bool = False) -> Any:
        """Every string in `value`, scanned; `keys`: dict keys too (free-form objects).

        It visits ~100 values per event, most of them numbers or short strings (usage,
        status, process and host fields): those are handled in the loops without a call
        per value (a string found clean before is looked up in `clean_cache` here, as
        `text` would), and whether a key holds an id or hash is decided once per key name.
        """
        if isinstance(value, str):
            return self.text(value, scanner)
        if isinstance(value, dict):
            out: dict[Any, Any] = {}
            walked = self.r.walked_keys
            clean = self.r.clean_cache[scanner is self.r.meta_scanner]
            for k, v in value.items():
                if keys:
                    if isinstance(k, str):
                        k = self.text(k, scanner)
                elif k not in walked:
                    if isinstance(k, str) and (k in _SKIP or k.endswith("_hash")):
                        out[k] = v
                        continue
                    if len(walked) < _CACHE_ENTRIES:
                        walked.add(k)
                kind = type(v)
                if kind is str:
                    # Only strings of `_CACHED_LENGTH` or less are ever in `clean`.
                    if len(v) <= _CACHED_LENGTH and v in clean:
                        out[k] = v
                    else:
                        out[k] = self.text(v, scanner)
                elif kind in _SCALARS:
                    out[k] = v
                else:
                    out[k] = self.walk(v, scanner, keys=keys)
            return out
        if isinstance(value, (list, tuple)):
            return [
                self.text(v, scanner) if type(v) is str else self.walk(v, scanner, keys=keys)
                for v in value
            ]
        return value

    def digest(self, value: Any) -> str:
        """Keyed hash of a string, or of an object's canonical JSON."""
        if isinstance(value, str):
            return self.r.hasher(value)
        return self.r.hasher(_canonical_json(value))

    def marker(self, text: str) -> dict[str, Any]:
        """The spec's `redacted_content` for text that minimal mode removes."""
        self.removed = True
        return {
            "$redacted": {
                "reason": "policy",
                "original_length": len(text),
                "hash": self.r.hasher(text),
                "redaction_profile": str(self.r.mode),
            }
        }

    # --- event data -----------------------------------------------------------------------

    def data(self, data: dict[str, Any]) -> dict[str, Any]:
        scanner = self.r.content_scanner
        out: dict[str, Any] = {}
        for key, value in data.items():
            if key in _SKIP or key.endswith("_hash"):
                out[key] = value
            elif key == "messages" and isinstance(value, list):
                out[key] = [self.message(m) for m in value]
                if self.minimal:
                    out.setdefault("messages_count", len(value))
            elif key == "choices" and isinstance(value, list):
                out[key] = [self.choice(c) for c in value]
            elif key == "tool_calls" and isinstance(value, list):
                out[key] = [self.tool_call(c) for c in value]
            elif key == "tools" and isinstance(value, list):
                out[key] = [self.tool_definition(t) for t in value]
            elif key == "arguments":  # agent.tool_call
                self.free_form(data, out, key, size_key=None)
            elif key == "result":  # agent.tool_result
                self.free_form(data, out, key, size_key="result_size_bytes")
            elif key == "delta" and isinstance(value, dict):  # ai.streaming_chunk
                out[key] = self.delta(value)
            elif type(value) in _SCALARS:
                out[key] = value
            else:  # (a string straight to `text`: what `walk` would do, one call less)
                out[key] = (
                    self.text(value, scanner) if type(value) is str else self.walk(value, scanner)
                )
        return out

    def message(self, message: Any) -> Any:
        if not isinstance(message, dict):
            return self.walk(message, self.r.content_scanner)
        out: dict[str, Any] = {}
        for key, value in message.items():
            if key in ("content", "thinking") and isinstance(value, str):
                if key == "content":
                    out.setdefault("content_length", len(value))
                    if "content_hash" not in message:
                        out["content_hash"] = self.r.hasher(value)
                out[key] = self.marker(value) if self.minimal else self.content(value)
            elif key == "tool_calls" and isinstance(value, list):
                out[key] = [self.tool_call(c) for c in value]
            elif key in _SKIP or key.endswith("_hash") or type(value) in _SCALARS:
                out[key] = value
            elif type(value) is str:
                out[key] = self.text(value, self.r.content_scanner)
            else:
                out[key] = self.walk(value, self.r.content_scanner)
        return out

    def content(self, text: str) -> str:
        return self.text(text, self.r.content_scanner)

    def choice(self, choice: Any) -> Any:
        if not isinstance(choice, dict):
            return self.walk(choice, self.r.content_scanner)
        scanner = self.r.content_scanner
        out: dict[str, Any] = {}
        for key, value in choice.items():
            if key == "message":
                out[key] = self.message(value)
            elif type(value) in _SCALARS:  # index, logprobs: what `walk` returns for them
                out[key] = value
            elif type(value) is str:
                out[key] = self.text(value, scanner)
            else:
                out[key] = self.walk(value, scanner)
        return out

    def tool_call(self, call: Any) -> Any:
        if not isinstance(call, dict):
            return self.walk(call, self.r.content_scanner)
        out: dict[str, Any] = {}
        for key, value in call.items():
            if key == "arguments":
                self.free_form(call, out, key, size_key="arguments_length")
            elif key.endswith("_hash"):
                out[key] = value
            else:
                out[key] = self.walk(value, self.r.content_scanner)
        return out

    def free_form(
        self, source: dict[str, Any], out: dict[str, Any], key: str, *, size_key: str | None
    ) -> None:
        """Tool arguments or results: scanned (keys too), or in minimal only hash and size."""
        value = source[key]
        hash_key = key + "_hash"
        if hash_key not in source and value not in (None, "", {}, []):
            out[hash_key] = self.digest(value)
        if self.minimal:
            self.removed = True
            if size_key and size_key not in source:
                if not isinstance(value, str):
                    out[size_key] = len(_canonical_json(value))
                elif size_key.endswith("_bytes"):
                    out[size_key] = len(value.encode("utf-8", "replace"))
                else:
                    out[size_key] = len(value)
            return
        if isinstance(value, str):
            out[key] = self.content(value)
        else:
            out[key] = self.walk(value, self.r.content_scanner, keys=True)

    def tool_definition(self, tool: Any) -> Any:
        if self.minimal and isinstance(tool, dict) and "description" in tool:
            self.removed = True
            tool = {k: v for k, v in tool.items() if k != "description"}
        return self.walk(tool, self.r.content_scanner)

    def delta(self, delta: dict[str, Any]) -> dict[str, Any]:
        out: dict[str, Any] = {}
        for key, value in delta.items():
            if key == "content" and isinstance(value, str):
                if self.minimal:
                    self.removed = True
                    out["content_length"] = len(value)
                    out["content_hash"] = self.r.hasher(value)
                else:
                    out[key] = self.content(value)
            elif key == "tool_calls" and isinstance(value, list):
                out[key] = [self.tool_call(c) for c in value]
            else:
                out[key] = self.walk(value, self.r.content_scanner)
        return out

    # --- what was done --------------------------------------------------------------------

    def mark(self, event: Event) -> None:
        confidence = dict(event.confidence)
        confidence["redaction_profile"] = str(self.r.mode)
        confidence["redaction_applied"] = bool(self.found) or self.removed
        reasons = list(confidence.get("reasons") or [])
        kinds = {kind for _, kind in self.found}
        for kind in sorted(kinds):
            if _REASONS[kind] not in reasons:
                reasons.append(_REASONS[kind])
        if self.removed:
            reasons.append("content_redacted")
            if confidence.get("completeness") == "full":
                confidence["completeness"] = "redacted"
            else:
                limitations = list(confidence.get("limitations") or [])
                limitations.append("content_redacted")
                confidence["limitations"] = limitations
        if reasons:
            confidence["reasons"] = reasons
        event.confidence = confidence
        if self.found:
            counts: Counter[str] = Counter()
            for (label, _), n in self.found.items():
                counts[label.lower()] += n
            event.attrs = dict(event.attrs)
            event.attrs["redaction"] = {
                "findings": [{"type": t, "count": n} for t, n in sorted(counts.items())]
            }
            inc = self.r.counters.inc
            for label, n in counts.items():
                inc(f"redaction.{label}", n)
            if (UNSCANNED, Kind.LIMIT) in self.found:
                log.warning("a string had too many redaction candidates; its tail was removed")


def _plain(value: Any) -> bool:
    """Only JSON's own types (no subclasses, no NaN or infinity), which survive a round
    trip through JSON unchanged in value and type."""
    kind = type(value)
    if kind is str or kind is int or kind is bool or value is None:
        return True
    if kind is float:
        return math.isfinite(value)
    if kind is dict:
        return all(type(k) is str and _plain(v) for k, v in value.items())
    if kind is list:
        return all(_plain(v) for v in value)
    return False


def _canonical_json(value: Any) -> bytes:
    try:
        return orjson.dumps(value, option=orjson.OPT_SORT_KEYS, default=str)
    except TypeError:  # what orjson cannot encode (integers beyond 64 bits, odd keys)
        return json.dumps(value, sort_keys=True, default=str, ensure_ascii=False).encode(
            "utf-8", "surrogatepass"
        )


def _fail_closed(event: Event, mode: RedactionMode) -> None:
    """Keep only fields that never carry content; used when redaction itself failed."""
    data = event.data if isinstance(event.data, dict) else {}
    event.data = {
        k: v for k, v in data.items() if k in _FAIL_CLOSED_KEYS or str(k).endswith("_hash")
    }
    event.attrs = {}
    event.web_context = None
    if event.process:
        event.process = {k: v for k, v in event.process.items() if k in ("pid", "ppid", "name")}
    event.confidence = {
        "level": event.confidence.get("level", "high") if event.confidence else "high",
        "completeness": "redacted",
        "reasons": ["redaction_failed"],
        "redaction_applied": True,
        "redaction_profile": str(mode),
    }


def build_redactor(
    mode: str,
    hasher: KeyedHasher,
    patterns: Sequence[Any] = (),
    counters: Counters | None = None,
) -> EventRedactor:
    """From config values: `patterns` are RedactionPattern(name, regex) objects or pairs."""
    pairs = [(p.name, p.regex) if hasattr(p, "regex") else (p[0], p[1]) for p in patterns]
    return EventRedactor(mode, hasher, patterns=pairs, counters=counters)
