"""Log redaction: no record reaches a handler with a secret in it, whoever logged it."""

from __future__ import annotations

import io
import logging
import subprocess
import sys
from collections.abc import Iterator

import pytest

from oisp_sensor.privacy import detectors
from oisp_sensor.privacy.hashing import KeyedHasher
from oisp_sensor.privacy.logfilter import RedactingFilter, install_log_redaction
from tests.unit.privacy import planted as p


@pytest.fixture
def stream() -> Iterator[io.StringIO]:
    """A handler on a private logger tree, with the filter installed the way the CLI does."""
    out = io.StringIO()
    logger = logging.getLogger("oisp_test_logs")
    handler = logging.StreamHandler(out)
    handler.setFormatter(logging.Formatter("%(levelname)s %(name)s: %(message)s"))
    logger.addHandler(handler)
    logger.setLevel(logging.DEBUG)
    logger.propagate = False
    install_log_redaction(logger)
    yield out
    logger.removeHandler(handler)


def test_a_url_with_a_key_in_its_query_is_masked(stream: io.StringIO) -> None:
    url = f"https://generativelanguage.googleapis.com/v1beta/models/x:generateContent?key={p.GOOGLE_KEY}"
    logging.getLogger("oisp_test_logs.sub").warning("upstream failed for %s", url)
    text = stream.getvalue()
    assert p.GOOGLE_KEY not in text
    assert "upstream failed for https://generativelanguage.googleapis.com" in text
    assert "?key=[GOOGLE_API_KEY:" in text


def test_args_of_any_type_are_masked(stream: io.StringIO) -> None:
    logging.getLogger("oisp_test_logs").info(
        "headers %r body %s", {"authorization": f"Bearer {p.OPENAI_PROJECT_KEY}"}, p.EMAIL.encode()
    )
    text = stream.getvalue()
    assert p.OPENAI_PROJECT_KEY not in text and p.EMAIL not in text


def test_exception_messages_and_tracebacks_are_masked(stream: io.StringIO) -> None:
    log = logging.getLogger("oisp_test_logs")
    try:
        raise ValueError(f"bad header line 'x-api-key: {p.ANTHROPIC_KEY}'")
    except ValueError:
        log.exception("decoding failed")
    text = stream.getvalue()
    assert "Traceback" in text and "ValueError" in text
    assert p.ANTHROPIC_KEY not in text


def test_stack_info_is_masked(stream: io.StringIO) -> None:
    def leak(token: str) -> None:
        logging.getLogger("oisp_test_logs").debug("here %s", token, stack_info=True)

    leak(p.JWT)
    assert p.JWT not in stream.getvalue()


def test_a_record_that_cannot_be_checked_is_replaced(
    stream: io.StringIO, monkeypatch: pytest.MonkeyPatch
) -> None:
    def broken(self: detectors.Scanner, text: str, placeholder: object) -> object:
        raise RuntimeError("bug")

    monkeypatch.setattr(detectors.Scanner, "redact", broken)
    logging.getLogger("oisp_test_logs").error("key %s", p.OPENAI_PROJECT_KEY)
    text = stream.getvalue()
    assert p.OPENAI_PROJECT_KEY not in text
    assert "could not be checked for secrets" in text


def test_installing_twice_adds_one_filter() -> None:
    logger = logging.getLogger("oisp_test_twice")
    handler = logging.StreamHandler(io.StringIO())
    logger.addHandler(handler)
    try:
        first = install_log_redaction(logger)
        second = install_log_redaction(logger)
        assert first is second
        assert sum(isinstance(f, RedactingFilter) for f in handler.filters) == 1
    finally:
        logger.removeHandler(handler)


def test_placeholders_match_the_events_and_need_the_key_only_when_something_is_found() -> None:
    loads = []

    def load() -> KeyedHasher:
        loads.append(1)
        return KeyedHasher(b"oisp-sensor-test-hash-key-32byte")

    f = RedactingFilter(hasher=load)
    assert f.clean("nothing to see here") == "nothing to see here"
    assert loads == []
    out = f.clean(f"key {p.OPENAI_PROJECT_KEY}")
    digest = KeyedHasher(b"oisp-sensor-test-hash-key-32byte").digest(p.OPENAI_PROJECT_KEY)[:8]
    assert out == f"key [OPENAI_KEY:{digest}]"
    assert loads == [1]


def test_without_a_readable_key_the_label_alone_is_used() -> None:
    def unreadable() -> KeyedHasher:
        raise PermissionError("no")

    assert RedactingFilter(hasher=unreadable).clean(f"k={p.GITHUB_TOKEN}") == "k=[GITHUB_TOKEN]"


def test_the_cli_logging_setup_masks_what_any_logger_prints() -> None:
    """setup_logging in a fresh interpreter, printing to real stderr, like every command."""
    script = (
        "import logging\n"
        "from oisp_sensor.cli.common import setup_logging\n"
        "setup_logging(2)\n"
        f"logging.getLogger('aiohttp.access').info('GET /v1?key={p.GOOGLE_KEY}')\n"
        "logging.getLogger('oisp_sensor.x').warning("
        f"'Authorization: Bearer {p.OPENAI_PROJECT_KEY}')\n"
        f"logging.getLogger().error('aws_secret_access_key={p.AWS_SECRET_KEY} by {p.EMAIL}')\n"
    )
    done = subprocess.run(
        [sys.executable, "-c", script], capture_output=True, text=True, timeout=60, check=True
    )
    assert done.stdout == ""
    lines = done.stderr.strip().splitlines()
    assert len(lines) == 3, done.stderr
    for value in (p.GOOGLE_KEY, p.OPENAI_PROJECT_KEY, p.AWS_SECRET_KEY, p.EMAIL):
        assert value not in done.stderr
    assert "[GOOGLE_API_KEY:" in lines[0] and "[OPENAI_KEY:" in lines[1]
