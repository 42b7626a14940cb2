"""What kind of tool a model asked for, guessed from its name (the spec's tool.type).

Names are free text, so this is a small keyword table; anything unknown is "other".
"""

from __future__ import annotations

import re

_KINDS: tuple[tuple[re.Pattern[str], str], ...] = tuple(
    (re.compile(p), kind)
    for p, kind in (
        (r"(^|_)(bash|shell|terminal|exec(ute)?_?command|run_?command|sh)($|_)", "shell"),
        (r"(read|view|open|cat|get)_?(file|document)|^read$|^view$", "file_read"),
        (r"(str_replace|edit|patch|apply_?diff|replace)", "file_edit"),
        (r"(write|create|save)_?(file|document)|^write$", "file_write"),
        (r"(python|code_?(interpreter|execution)|run_?code|eval)", "code_execution"),
        (r"(web_?search|search|google|bing|lookup)", "search"),
        (r"(retriev|rag|knowledge|vector)", "retrieval"),
        (r"(browse|navigate|click|screenshot|playwright|browser)", "browser"),
        (r"(computer)", "computer_use"),
        (r"(sql|query_?db|database)", "database"),
        (r"(http|fetch|request|curl|url)", "http"),
    )
)


def tool_type(name: str | None) -> str:
    if not name:
        return "other"
    lowered = name.lower()
    for pattern, kind in _KINDS:
        if pattern.search(lowered):
            return kind
    return "other"
