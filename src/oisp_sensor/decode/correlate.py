"""State that spans requests: tool calls waiting for their results, conversation ids.

A tool call is seen in one response; its result arrives in a later request, maybe on
another connection. Conversations re-send every old result on each turn, so a
result is reported once — when its call is first answered — and then forgotten.
"""

from __future__ import annotations

from collections import OrderedDict
from collections.abc import Callable
from dataclasses import dataclass


@dataclass(frozen=True, slots=True)
class PendingCall:
    event_id: str  # the agent.tool_call event
    ts_ns: int  # when the response that asked for it ended
    name: str | None


class ToolCallTracker:
    """Tool calls by call id, oldest evicted first once `max_entries` are waiting."""

    def __init__(self, max_entries: int = 10_000) -> None:
        self._calls: OrderedDict[str, PendingCall] = OrderedDict()
        self._max = max_entries

    def __len__(self) -> int:
        return len(self._calls)

    def remember(self, call_id: str, call: PendingCall) -> None:
        self._calls[call_id] = call
        self._calls.move_to_end(call_id)
        while len(self._calls) > self._max:
            self._calls.popitem(last=False)

    def take(self, call_id: str) -> PendingCall | None:
        return self._calls.pop(call_id, None)


def conversation_id(
    hasher: Callable[[str], str], *, who: str, system: str | None, first_user: str | None
) -> str | None:
    """Stable id for one conversation thread: same caller, system prompt and opening message.

    Every turn of a chat re-sends the history from its first user message, so that
    message (with the system prompt and the calling process) names the thread.
    """
    if system is None and first_user is None:
        return None
    digest = hasher("\x1f".join((who, system or "", first_user or "")))
    return "conv_" + digest.rsplit(":", 1)[-1][:20]
