"""Call ids for APIs whose tool calls may carry none (Gemini, Ollama's native API).

Without an id a tool result cannot be matched to its call, so one is derived from
where the call sits in the conversation — something both the response that made
the call and the later request carrying its result can see:

    oisp_call_{turn}_{n}_{name}

`turn` is the index, in the request's message list (`contents` for Gemini), of the
assistant turn that made the call; for a response that is the number of messages
in its request, because clients append the reply to the history they sent. Streamed
replies that clients store as several consecutive assistant entries count as one
turn (the first entry's index). `n` is the call's position among that turn's calls
of the same `name`. A result is matched to the most recent assistant turn before it
that made calls: the k-th result named X answers the k-th call named X; a result
without a name takes the first call not yet answered.

Such ids repeat from one conversation to the next, so the decoder matches them
within a conversation only (`is_synthetic`).
"""

from __future__ import annotations

from collections import Counter

SYNTHETIC_PREFIX = "oisp_call_"


def synthetic_call_id(turn: int, name: str | None, n: int) -> str:
    return f"{SYNTHETIC_PREFIX}{turn}_{n}_{name or 'unknown'}"


def is_synthetic(call_id: str) -> bool:
    return call_id.startswith(SYNTHETIC_PREFIX)


class CallNumbering:
    """Hands out ids to one assistant turn's calls, in order."""

    __slots__ = ("turn", "_seen")

    def __init__(self, turn: int) -> None:
        self.turn = turn
        self._seen: Counter[str | None] = Counter()

    def next_id(self, name: str | None) -> str:
        n = self._seen[name]
        self._seen[name] += 1
        return synthetic_call_id(self.turn, name, n)


class HistoryCalls:
    """Walks a request's history: ids for the calls in it, and for the results answering them.

    Call `assistant_entry(index)` for every assistant entry, then `call()` for each
    call in it; `result()` for each tool result, in history order.
    """

    __slots__ = ("_numbering", "_open", "_run_end")

    def __init__(self) -> None:
        self._numbering = CallNumbering(0)
        self._open: list[tuple[str | None, str]] = []  # (name, id) of calls not yet answered
        self._run_end = -2  # index of the last assistant entry of the current run

    def assistant_entry(self, index: int) -> None:
        if index != self._run_end + 1:  # not a continuation: a new assistant turn
            self._numbering = CallNumbering(index)
            self._open = []
        self._run_end = index

    def call(self, name: str | None, call_id: str | None) -> str:
        """The id of a call in the current assistant entry (its own when it carries one)."""
        cid = call_id or self._numbering.next_id(name)
        self._open.append((name, cid))
        return cid

    def result(self, name: str | None, call_id: str | None) -> str | None:
        """The id of the call a result answers (its own id when it carries one)."""
        for i, (open_name, cid) in enumerate(self._open):
            if cid == call_id or (not call_id and name in (None, open_name)):
                del self._open[i]
                return cid
        return call_id
