"""Every event the tests produce must pass the OISP v0.1 schemas.

Mirrors ../shared/tools/validate_oisp.py (envelope + the data schema of the
event type) against the vendored copy in tests/oisp_spec, and archives each file
it checks so `.ci/run` can run the official validator over all of them too.
"""

from __future__ import annotations

import json
import os
import shutil
from datetime import datetime
from pathlib import Path
from typing import Any

from jsonschema import Draft202012Validator
from referencing import Registry, Resource

SCHEMA_DIR = Path(__file__).parent / "oisp_spec" / "schema" / "v0.1"
BASE = "https://oisp.dev/schema/v0.1/"
DATA_SCHEMAS = {
    "ai.request": ("events/ai.schema.json", "request"),
    "ai.response": ("events/ai.schema.json", "response"),
    "ai.streaming_chunk": ("events/ai.schema.json", "streaming_chunk"),
    "ai.embedding": ("events/ai.schema.json", "embedding"),
    "agent.tool_call": ("events/agent.schema.json", "tool_call"),
    "agent.tool_result": ("events/agent.schema.json", "tool_result"),
    "network.connect": ("events/network.schema.json", "connect"),
}
ARCHIVE = Path(
    os.environ.get(
        "OISP_EVENTS_ARCHIVE", Path(__file__).parent.parent / ".pytest_cache" / "oisp-events"
    )
)


def _registry() -> Registry:
    resources = []
    for path in SCHEMA_DIR.rglob("*.schema.json"):
        rel = path.relative_to(SCHEMA_DIR).as_posix()
        resources.append((BASE + rel, Resource.from_contents(json.loads(path.read_text()))))
    return Registry().with_resources(resources)


_REGISTRY = _registry()
_ENVELOPE = Draft202012Validator(
    {"$ref": BASE + "envelope.schema.json"},
    registry=_REGISTRY,
    format_checker=Draft202012Validator.FORMAT_CHECKER,
)
_DATA = {
    t: Draft202012Validator({"$ref": f"{BASE}{f}#/$defs/{k}"}, registry=_REGISTRY)
    for t, (f, k) in DATA_SCHEMAS.items()
}


def problems(event: dict[str, Any]) -> list[str]:
    out = [f"envelope {e.json_path}: {e.message}" for e in _ENVELOPE.iter_errors(event)]
    datetime.fromisoformat(event["ts"].replace("Z", "+00:00"))
    validator = _DATA.get(event.get("event_type", ""))
    if validator is None:
        out.append(f"no data schema for {event.get('event_type')!r}")
    else:
        out += [
            f"data {e.json_path}: {e.message}" for e in validator.iter_errors(event.get("data", {}))
        ]
    return out


def assert_valid_events(events: list[dict[str, Any]]) -> None:
    assert events, "no events to validate"
    for event in events:
        found = problems(event)
        assert not found, f"{event.get('event_type')} {event.get('event_id')}: {found}"


def assert_valid_file(path: Path) -> list[dict[str, Any]]:
    """Validate a JSONL file of events, archive it for the official validator, return them."""
    events = [json.loads(line) for line in path.read_text().splitlines() if line.strip()]
    assert_valid_events(events)
    ARCHIVE.mkdir(parents=True, exist_ok=True)
    shutil.copy(path, ARCHIVE / f"{os.getpid()}-{len(list(ARCHIVE.iterdir()))}-{path.name}")
    return events
