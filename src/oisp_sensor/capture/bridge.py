"""The unix-socket bridge: other capture agents feed RawCapture JSON lines to the sensor.

Wire format (DESIGN.md §3): one JSON object per line, `data` in base64, e.g.

    {"timestamp_ns": 1703123456789000000, "kind": "SslWrite", "pid": 12345,
     "data": "<base64>", "metadata": {"comm": "python3", "fd": 5},
     "remote_host": "api.openai.com", "remote_port": 443}

`examples/emit_raw.py` is a complete emitter to copy.

What an emitter can rely on:
- The socket is mode 0600: only its owner (and root) can connect, because what flows
  through it is plaintext of TLS traffic.
- A bad line (not JSON, bad base64, unknown kind, wrong types) or a line longer than
  `MAX_LINE_BYTES` (16 MiB, newline excluded) is counted (`bridge.bad_lines`,
  `bridge.oversized_lines`), logged with the emitter's number and the line number —
  never its content — and skipped. The connection stays open.
- Nothing valid is dropped: when the pipeline is full the bridge stops reading from
  that emitter until there is room, so a fast emitter is slowed down by the kernel's
  socket buffer (its `send` blocks) instead of growing the sensor's memory. Per
  emitter the sensor holds at most about 2 x `READ_LIMIT` of unread input, plus the
  one line being assembled when it is longer than that.
"""

from __future__ import annotations

import asyncio
import contextlib
import itertools
import logging
import os
import socket
import stat
import struct
import sys
import tempfile
from collections.abc import Callable
from pathlib import Path

from oisp_sensor.counters import Counters
from oisp_sensor.errors import CaptureError, DecodeError
from oisp_sensor.events import RawCapture

log = logging.getLogger(__name__)

MAX_LINE_BYTES = 16 * 1024 * 1024
# The StreamReader's buffer limit: lines up to this size are read in one piece; the
# transport is paused once twice this much is buffered, which is what bounds memory.
READ_LIMIT = 256 * 1024
LOGGED_BAD_LINES = 10  # per emitter; after that only the counters and a summary
BACKOFF_MIN_S = 0.001
BACKOFF_MAX_S = 0.05
YIELD_EVERY = 64  # lines handled before giving other emitters and the pipeline a turn

Submit = Callable[[RawCapture], bool]


class _Emitter:
    """One connected agent: its number (for logs), who it is, and how far it got."""

    __slots__ = ("bad", "label", "lineno", "writer")

    def __init__(self, number: int, writer: asyncio.StreamWriter) -> None:
        self.writer = writer
        self.lineno = 0
        self.bad = 0
        peer = _peer_pid(writer)
        self.label = f"emitter {number}" + (f" (pid {peer})" if peer is not None else "")


class Bridge:
    """Listens on a unix socket and hands each valid RawCapture line to `submit`.

    `submit` is the pipeline's: it returns False when its queue is full. Pass
    `has_room` too (e.g. `pipeline.has_room`) when a refused submit has
    side effects — Pipeline.submit counts a drop and marks a gap — so the bridge waits
    for room *before* submitting and nothing is ever refused.
    """

    def __init__(
        self,
        path: str | Path,
        submit: Submit,
        counters: Counters,
        *,
        has_room: Callable[[], bool] | None = None,
        max_line_bytes: int = MAX_LINE_BYTES,
        read_limit: int = READ_LIMIT,
    ) -> None:
        self.path = Path(path)
        self.submit = submit
        self.counters = counters
        self.has_room = has_room
        self.max_line_bytes = max_line_bytes
        self.read_limit = min(read_limit, max_line_bytes + 1)
        self._server: asyncio.AbstractServer | None = None
        self._inode: tuple[int, int] | None = None
        self._numbers = itertools.count(1)
        self._tasks: set[asyncio.Task[None]] = set()
        self._emitters: set[_Emitter] = set()

    # --- lifecycle -----------------------------------------------------------------------------

    async def start(self) -> None:
        if sys.platform == "win32":
            raise CaptureError("the unix-socket bridge is not available on Windows")
        await _remove_stale_socket(self.path)
        sock = _bind_private(self.path)
        st = os.stat(self.path)
        self._inode = (st.st_dev, st.st_ino)
        try:
            self._server = await asyncio.start_unix_server(
                self._serve, sock=sock, limit=self.read_limit
            )
        except BaseException:
            sock.close()
            self._unlink_own_socket()
            raise
        log.info("bridge listening on %s (mode 0600)", self.path)

    async def close(self, grace_s: float = 0.25) -> None:
        """Stop accepting, end every emitter's connection, remove the socket file.

        Connected emitters get `grace_s` to have what they already sent read and
        submitted (the pipeline must still be running), so a clean stop loses nothing
        that reached the socket; emitters still connected after that are disconnected.
        """
        await self._drain(grace_s)
        if self._server is not None:
            self._server.close()
        for emitter in list(self._emitters):
            emitter.writer.close()
        for task in list(self._tasks):
            task.cancel()
        if self._tasks:
            await asyncio.gather(*self._tasks, return_exceptions=True)
        if self._server is not None:
            await self._server.wait_closed()
            self._server = None
        self._unlink_own_socket()

    async def _drain(self, grace_s: float) -> None:
        """Serve on for up to `grace_s`, ending early once no emitter is connected.

        The listening socket stays open meanwhile, because an emitter that connected
        an instant ago may not have been accepted yet; closing it would drop that
        connection and what it already sent.
        """
        loop = asyncio.get_running_loop()
        deadline = loop.time() + grace_s
        settle = loop.time() + min(grace_s, 0.02)  # time for pending accepts to surface
        while (now := loop.time()) < deadline:
            if not self._tasks and now >= settle:
                return
            if self._tasks:
                await asyncio.wait(list(self._tasks), timeout=min(0.01, deadline - now))
            else:
                await asyncio.sleep(0.005)

    def _unlink_own_socket(self) -> None:
        """Remove the socket only if it is still ours (another sensor may have replaced it)."""
        with contextlib.suppress(FileNotFoundError):
            st = os.lstat(self.path)
            if (st.st_dev, st.st_ino) == self._inode:
                self.path.unlink()

    # --- one emitter ---------------------------------------------------------------------------

    async def _serve(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        task = asyncio.current_task()
        assert task is not None
        self._tasks.add(task)
        emitter = _Emitter(next(self._numbers), writer)
        self._emitters.add(emitter)
        self.counters.inc("bridge.connections")
        log.debug("%s connected", emitter.label)
        try:
            await self._read_lines(emitter, reader)
        except (ConnectionError, OSError) as e:
            log.debug("%s: connection error: %s", emitter.label, e)
        except Exception:
            # A bug (ours or the submit callable's): this emitter is cut off, nothing else.
            self.counters.inc("bridge.internal_errors")
            log.exception("%s: internal error at line %d; closing", emitter.label, emitter.lineno)
        finally:
            self._emitters.discard(emitter)
            self._tasks.discard(task)
            if emitter.bad > LOGGED_BAD_LINES:
                log.warning(
                    "%s: %d bad lines in total (only the first %d were logged)",
                    emitter.label,
                    emitter.bad,
                    LOGGED_BAD_LINES,
                )
            log.debug("%s disconnected after %d lines", emitter.label, emitter.lineno)
            writer.close()
            with contextlib.suppress(ConnectionError, OSError):
                await writer.wait_closed()

    async def _read_lines(self, emitter: _Emitter, reader: asyncio.StreamReader) -> None:
        while True:
            item = await self._next_line(reader)
            if item is None:
                return
            line, oversized = item
            emitter.lineno += 1
            if emitter.lineno % YIELD_EVERY == 0:
                await asyncio.sleep(0)
            if oversized:
                self.counters.inc("bridge.oversized_lines")
                self._report(emitter, f"line longer than {self.max_line_bytes} bytes")
                continue
            if not line.strip():
                continue
            try:
                raw = RawCapture.from_json_line(line)
            except DecodeError as e:
                self.counters.inc("bridge.bad_lines")
                self._report(emitter, str(e)[:200])
                continue
            self.counters.inc("bridge.captures")
            await self._deliver(raw)

    async def _next_line(self, reader: asyncio.StreamReader) -> tuple[bytes, bool] | None:
        """The next line and whether it was too long (then its bytes are dropped); None at EOF.

        Lines up to `read_limit` come straight from the StreamReader; a longer one is
        assembled here, and stops being kept as soon as it exceeds `max_line_bytes`.
        """
        try:
            return await reader.readuntil(b"\n"), False
        except asyncio.IncompleteReadError as e:
            return (e.partial, False) if e.partial else None
        except asyncio.LimitOverrunError as e:
            pending = e.consumed
        line = bytearray()
        oversized = False
        while True:
            # These bytes are already buffered and hold no newline.
            piece = await reader.readexactly(pending)
            if not oversized:
                line += piece
                if len(line) > self.max_line_bytes:
                    oversized, line = True, bytearray()
            try:
                rest = await reader.readuntil(b"\n")
            except asyncio.LimitOverrunError as e:
                pending = e.consumed
                continue
            except asyncio.IncompleteReadError as e:
                rest = e.partial  # the stream ended inside this line: it is the last one
            if not oversized:
                line += rest
                oversized = len(line.rstrip(b"\r\n")) > self.max_line_bytes
            return (b"" if oversized else bytes(line)), oversized

    async def _deliver(self, raw: RawCapture) -> None:
        """Hand over one capture, waiting (and so not reading this emitter) while full."""
        delay = BACKOFF_MIN_S
        waited = False
        while True:
            if (self.has_room is None or self.has_room()) and self.submit(raw):
                return
            if not waited:
                waited = True
                self.counters.inc("bridge.backpressure_waits")
            await asyncio.sleep(delay)
            delay = min(delay * 2, BACKOFF_MAX_S)

    def _report(self, emitter: _Emitter, reason: str) -> None:
        emitter.bad += 1
        if emitter.bad <= LOGGED_BAD_LINES:
            log.warning("%s, line %d: skipped: %s", emitter.label, emitter.lineno, reason)


# --- the socket file ------------------------------------------------------------------------------


async def _remove_stale_socket(path: Path) -> None:
    """Remove a socket file nobody listens on; refuse to touch anything else."""
    try:
        st = os.lstat(path)
    except FileNotFoundError:
        return
    if not stat.S_ISSOCK(st.st_mode):
        raise CaptureError(f"{path} exists and is not a socket; remove it or choose another path")
    try:
        _, writer = await asyncio.wait_for(asyncio.open_unix_connection(str(path)), timeout=2.0)
    except (ConnectionRefusedError, FileNotFoundError):
        log.info("removing stale bridge socket %s", path)
        with contextlib.suppress(FileNotFoundError):
            path.unlink()
        return
    except PermissionError:
        raise CaptureError(
            f"{path} belongs to another user; choose another path with --socket"
        ) from None
    except TimeoutError:
        pass  # something is there but busy: still not ours to remove
    else:
        writer.close()
    raise CaptureError(
        f"another process is already listening on {path} (another sensor?);"
        " use --socket PATH or --no-socket"
    )


def _bind_private(path: Path) -> socket.socket:
    """A listening socket at `path` that is never reachable by anyone but its owner.

    It is bound inside a fresh 0700 directory, made 0600 there, then renamed into
    place: there is no moment at which `path` exists with a wider mode. (Changing the
    umask instead would affect files other threads create at the same instant.)
    """
    sock = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
    try:
        sock.setblocking(False)
        private_dir = tempfile.mkdtemp(prefix=".oisp-", dir=path.parent)
        staging = Path(private_dir) / "s"
        try:
            if len(os.fsencode(staging)) < 100:
                sock.bind(str(staging))
                os.chmod(staging, 0o600)
                os.rename(staging, path)
            else:  # the staging path would not fit in sun_path: fall back to the umask
                old = os.umask(0o177)
                try:
                    sock.bind(str(path))
                finally:
                    os.umask(old)
                os.chmod(path, 0o600)
        finally:
            with contextlib.suppress(FileNotFoundError):
                staging.unlink()
            os.rmdir(private_dir)
        sock.listen(128)
    except OSError as e:
        sock.close()
        raise CaptureError(f"cannot listen on {path}: {e.strerror or e}") from e
    except BaseException:
        sock.close()
        raise
    return sock


def _peer_pid(writer: asyncio.StreamWriter) -> int | None:
    """The emitter's pid (Linux SO_PEERCRED), so log lines say who sent a bad line."""
    sock = writer.get_extra_info("socket")
    option = getattr(socket, "SO_PEERCRED", None)
    if sock is None or option is None:
        return None
    try:
        creds = sock.getsockopt(socket.SOL_SOCKET, option, struct.calcsize("3i"))
    except OSError:
        return None
    pid: int = struct.unpack("3i", creds)[0]
    return pid or None
