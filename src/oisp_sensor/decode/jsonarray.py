"""Incremental splitter for a stream that is one top-level JSON array.

Gemini's `streamGenerateContent` without `alt=sse` answers `[{...},\\r\\n{...}]`,
sending each element as it is generated. To see those elements as they arrive we
cannot wait for the closing `]`: this splitter tracks just enough of RFC 8259's
grammar — strings (with escapes), nesting of `{}`/`[]`, and the commas between
top-level values — to cut out each element's bytes. Parsing them is the caller's
job, so one bad element costs that element.

A body that is not an array (an error object, say) comes out as a single item.
After a structural error the splitter raises once and then ignores the rest:
without a trustworthy element boundary nothing later can be framed.
"""

from __future__ import annotations

import re

from oisp_sensor.errors import DecodeError

MAX_ITEM = 8 * 1024 * 1024  # an element larger than this is not buffered

_NON_SPACE = re.compile(rb"[^ \t\r\n]")
_IN_STRING = re.compile(rb'["\\]')  # the end of a string, or an escape
_STRUCTURE = re.compile(rb'[\[\]{}",]')  # what matters outside strings

_TOO_LARGE = f"JSON array element larger than {MAX_ITEM} bytes"

_START, _EXPECT, _VALUE, _AFTER, _DONE, _FAILED = range(6)


class JsonArraySplitter:
    """`feed(chunk)`, then `next_item()` until None; `close()` at the end of the body.

    `next_item` raises `DecodeError` when the framing breaks, after returning every
    element that came before the break, so any chunking yields the same items.
    """

    __slots__ = ("_buf", "_pos", "_start", "_depth", "_in_string", "_state", "_in_array")

    def __init__(self) -> None:
        self._buf = bytearray()
        self._pos = 0  # where scanning resumes in _buf
        self._start = 0  # where the current element begins in _buf
        self._depth = 0  # nesting inside the current element
        self._in_string = False
        self._state = _START
        self._in_array = True  # False when the body is a single non-array value

    def feed(self, chunk: bytes) -> None:
        if self._state is not _FAILED:
            self._buf += chunk

    def next_item(self) -> bytes | None:
        """The next complete element's bytes, or None until more bytes arrive."""
        if self._state is _FAILED:
            return None
        out: list[bytes] = []
        try:
            self._scan(out)
            self._compact()
        except DecodeError:
            self._fail()
            raise
        return out[0] if out else None

    def close(self) -> None:
        """End of body: an unfinished array is an error (its last element is lost)."""
        state = self._state
        self._fail()
        if state in (_EXPECT, _VALUE, _AFTER):
            raise DecodeError("stream ended inside the JSON array")

    def _fail(self) -> None:
        self._state = _FAILED
        self._buf = bytearray()
        self._pos = self._start = 0

    def _scan(self, out: list[bytes]) -> None:
        buf = self._buf
        end = len(buf)
        i = self._pos
        while i < end:
            state = self._state
            if state is _VALUE:
                nxt = self._scan_value(buf, i, out)
                if nxt is None:
                    return  # _scan_value set where to resume
                i = nxt
                if out:
                    break
                continue
            m = _NON_SPACE.search(buf, i)
            if m is None:
                i = end
                break
            i = m.start()
            c = buf[i]
            if state is _START:
                if c == 0x5B:  # "["
                    self._state = _EXPECT
                    i += 1
                else:  # not an array: the whole body is one value
                    self._in_array = False
                    self._begin(i)
            elif state is _EXPECT:
                if c == 0x5D:  # "]": an empty array (or a trailing comma, tolerated)
                    self._state = _DONE
                    i += 1
                elif c == 0x2C:
                    raise DecodeError("JSON array has an empty element")
                else:
                    self._begin(i)
            elif state is _AFTER:  # after a complete element: "," or "]"
                if c == 0x2C:
                    self._state = _EXPECT
                elif c == 0x5D:
                    self._state = _DONE
                else:
                    raise DecodeError("JSON array elements are not separated by a comma")
                i += 1
            else:  # _DONE: trailing whitespace only
                raise DecodeError("data after the end of the JSON array")
        self._pos = i

    def _begin(self, i: int) -> None:
        self._state = _VALUE
        self._start = i
        self._depth = 0
        self._in_string = False

    def _scan_value(self, buf: bytearray, i: int, out: list[bytes]) -> int | None:
        """Advance through the current element; where scanning continues, None to wait."""
        end = len(buf)
        if self._in_string:
            m = _IN_STRING.search(buf, i)
            if m is None:
                return end
            j = m.start()
            if buf[j] == 0x5C:  # backslash: skip the escaped byte, maybe in the next chunk
                if j + 1 >= end:
                    self._pos = j  # resume at the backslash once the next chunk is here
                    return None
                return j + 2
            self._in_string = False
            return j + 1
        m = _STRUCTURE.search(buf, i)
        if m is None:
            return end
        j = m.start()
        c = buf[j]
        if c == 0x22:  # '"'
            self._in_string = True
        elif c in (0x7B, 0x5B):  # "{" "["
            self._depth += 1
        elif c in (0x7D, 0x5D):  # "}" "]"
            if self._depth == 0:
                if c == 0x7D or not self._in_array:
                    raise DecodeError("unbalanced brackets in JSON array element")
                self._emit(buf, j, out)  # "]" closes the array after a scalar element
                self._state = _DONE
                return j + 1
            self._depth -= 1
            if self._depth == 0:  # a complete object/array: out now, not at the next comma
                self._emit(buf, j + 1, out)
                if not self._in_array:
                    self._state = _DONE
        elif self._depth == 0:  # "," between top-level elements
            if not self._in_array:
                raise DecodeError("a comma after a top-level JSON value")
            self._emit(buf, j, out)
            self._state = _EXPECT
        return j + 1

    def _emit(self, buf: bytearray, j: int, out: list[bytes]) -> None:
        item = bytes(buf[self._start : j]).strip()
        if len(item) > MAX_ITEM:
            raise DecodeError(_TOO_LARGE)
        if not item:
            raise DecodeError("JSON array has an empty element")
        out.append(item)
        if self._state is _VALUE:
            self._state = _AFTER

    def _compact(self) -> None:
        """Drop consumed bytes; keep only the element in progress (bounded)."""
        if self._state is _VALUE:
            cut = self._start
        else:
            cut = min(self._pos, len(self._buf))
        if cut:
            del self._buf[:cut]
            self._pos -= cut
            self._start = max(0, self._start - cut)
        if self._state is _VALUE and self._pos - self._start > MAX_ITEM:
            raise DecodeError(_TOO_LARGE)
