"""The CDR journal (the "spool"): an append-only, segmented file of JSON lines.

Each line is one JSON object with a ``"kind"`` key (``"attempt"`` today; other kinds
will come and readers must pass them through, not crash on them).

Files, for a spool path ``P``::

    P            the live segment, the only one written to
    P.000042     sealed segments (renamed from P on rotation), oldest = lowest number
    P.lock       flock()ed while a process owns the spool: one owner at a time
    P.rejected   entries PostgreSQL can never take, kept for a human (see writer)

Durability contract (design invariant 2):

* :meth:`Journal.append` is one ``os.write`` to an ``O_APPEND`` descriptor: the line is
  in the OS page cache when it returns, microseconds later, and never waits on the
  network. A process killed at any point (``kill -9``, OOM) loses nothing that
  ``append`` returned for: the kernel writes the page cache out on its own.
* ``fsync`` happens in batches (:meth:`Journal.sync`, called from a background thread
  every ``spool_fsync_interval`` seconds). A power cut or kernel crash can lose the
  lines appended during the last interval, at most ``spool_fsync_interval`` seconds of
  calls, plus any segment rotation in that window.
* A line torn by a crash mid-write (only the last line of a segment can be) is skipped
  with a log event when read back, never raised.

Thread-safety: ``append``/``rotate``/``delete``/``close`` run on one thread (the event
loop); ``sync`` may run on one other thread at the same time (one ``sync`` at a time,
and never concurrently with ``close``). Descriptors retired by rotation
are closed by ``sync`` after their last fsync, never while in use.
"""

from __future__ import annotations

import fcntl
import json
import os
import re
import threading
from pathlib import Path
from typing import Any

import structlog

from agi_server.errors import StoreError

log = structlog.get_logger()

DEFAULT_SEGMENT_BYTES = 8 * 1024 * 1024
_OPEN_FLAGS = os.O_WRONLY | os.O_APPEND | os.O_CREAT | os.O_CLOEXEC


def encode(entry: dict[str, Any]) -> bytes:
    """One journal line. ASCII-only JSON, so no encoding can fail or embed a newline."""
    if not isinstance(entry.get("kind"), str):
        raise StoreError("journal entry has no 'kind'")
    try:
        text = json.dumps(entry, separators=(",", ":"), allow_nan=False)
    except (TypeError, ValueError) as exc:
        raise StoreError(f"journal entry is not JSON-serialisable: {exc}") from exc
    return text.encode("ascii") + b"\n"


def read_entries(path: Path | str) -> list[dict[str, Any]]:
    """Every well-formed entry of one segment file, in order.

    Lines that are not a JSON object with a string ``kind`` are skipped and logged
    (``torn=True`` for a last line without its newline: a crash mid-write). A missing
    file reads as empty; other read errors raise ``StoreError``.
    """
    try:
        data = Path(path).read_bytes()
    except FileNotFoundError:
        return []
    except OSError as exc:
        raise StoreError(f"cannot read journal segment {path}: {exc}") from exc
    lines = data.split(b"\n")
    entries = []
    for number, line in enumerate(lines, start=1):
        if not line.strip():
            continue
        torn = number == len(lines)  # no newline after it
        entry = _decode(line)
        if entry is None:
            log.warning("journal_line_skipped", path=str(path), line=number, torn=torn,
                        size=len(line))
            continue
        entries.append(entry)
    return entries


def _decode(line: bytes) -> dict[str, Any] | None:
    try:
        entry = json.loads(line)
    except ValueError:  # also covers UnicodeDecodeError
        return None
    if not isinstance(entry, dict) or not isinstance(entry.get("kind"), str):
        return None
    return entry


class Journal:
    """The segmented append-only journal at ``path`` (see the module docstring)."""

    def __init__(self, path: str | Path, max_segment_bytes: int = DEFAULT_SEGMENT_BYTES):
        self.path = Path(path)
        self.max_segment_bytes = max_segment_bytes
        self.live_seq = 0            # sequence number the live segment gets when sealed
        self._fd: int | None = None
        self._lock_fd: int | None = None
        self._live_bytes = 0
        self._torn = False           # a failed write may have left half a line
        self._mutex = threading.Lock()   # guards _retired/_dirty against sync()
        self._retired: list[int] = []    # sealed fds awaiting their last fsync
        self._dirty = False
        self._dir_dirty = False

    # -- lifecycle -------------------------------------------------------------

    def open(self) -> list[int]:
        """Take ownership of the spool; return the sealed segments found, oldest first.

        A live segment left by a previous process is sealed first (never appended to:
        its last line may be torn), so every older entry is in a sealed segment.
        """
        try:
            self.path.parent.mkdir(parents=True, exist_ok=True)
            self._take_lock()
            sealed = self.sealed()
            self.live_seq = (sealed[-1] if sealed else 0) + 1
            if self.path.exists() and self.path.stat().st_size > 0:
                os.rename(self.path, self.segment_path(self.live_seq))
                sealed.append(self.live_seq)
                self.live_seq += 1
            self._open_live()
        except OSError as exc:
            raise StoreError(f"cannot open journal {self.path}: {exc}") from exc
        return sealed

    def close(self) -> None:
        """Close every descriptor (call :meth:`sync` first for durability)."""
        with self._mutex:
            fds, self._retired = self._retired, []
        if self._fd is not None:
            fds.append(self._fd)
            self._fd = None
        if self._lock_fd is not None:
            fds.append(self._lock_fd)  # closing it drops the flock
            self._lock_fd = None
        for fd in fds:
            _close_quietly(fd)

    def _take_lock(self) -> None:
        fd = os.open(f"{self.path}.lock", os.O_RDWR | os.O_CREAT | os.O_CLOEXEC, 0o640)
        try:
            fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError:
            os.close(fd)
            raise StoreError(f"journal {self.path} is in use by another process") from None
        self._lock_fd = fd

    def _open_live(self) -> None:
        self._fd = os.open(self.path, _OPEN_FLAGS, 0o640)
        self._live_bytes = os.fstat(self._fd).st_size
        self._torn = False
        with self._mutex:
            self._dir_dirty = True

    # -- writing (event-loop thread) -------------------------------------------

    def append(self, entry: dict[str, Any]) -> int:
        """Append one entry; return the sequence number of the segment it went to.

        Raises ``StoreError`` (disk full, closed journal, unserialisable entry).
        """
        line = encode(entry)
        if self._fd is None:
            self._reopen_live()
        if self._torn:
            line = b"\n" + line  # isolate the half line a failed write left behind
        try:
            written = os.write(self._fd, line)
            while written < len(line):  # rare: regular files write fully or fail
                written += os.write(self._fd, line[written:])
        except OSError as exc:
            self._torn = True
            raise StoreError(f"cannot append to journal {self.path}: {exc}") from exc
        self._torn = False
        self._live_bytes += len(line)
        self._dirty = True
        seq = self.live_seq
        if self._live_bytes >= self.max_segment_bytes:
            self._rotate_quietly()
        return seq

    def rotate(self) -> int | None:
        """Seal the live segment and start a new one; return the sealed sequence number.

        Returns None (and does nothing) when the live segment is empty. No fsync here:
        the old descriptor is retired and gets its fsync from the next :meth:`sync`.
        """
        if self._fd is None or self._live_bytes == 0:
            return None
        sealed = self.live_seq
        try:
            os.rename(self.path, self.segment_path(sealed))
        except OSError as exc:
            raise StoreError(f"cannot rotate journal {self.path}: {exc}") from exc
        with self._mutex:
            self._retired.append(self._fd)
            self._fd = None
        self.live_seq += 1
        try:
            self._open_live()
        except OSError as exc:
            raise StoreError(f"cannot open new journal segment {self.path}: {exc}") from exc
        return sealed

    def _reopen_live(self) -> None:
        # After a failed rotation left no live descriptor: try again on each append.
        if self._lock_fd is None:
            raise StoreError(f"journal {self.path} is not open")
        try:
            self._open_live()
        except OSError as exc:
            raise StoreError(f"cannot reopen journal {self.path}: {exc}") from exc

    def _rotate_quietly(self) -> None:
        try:
            self.rotate()
        except StoreError as exc:
            # The entry is written; keep growing this segment rather than fail the call.
            log.error("journal_rotate_failed", path=str(self.path), error=str(exc))

    # -- durability (any thread) -----------------------------------------------

    def sync(self) -> None:
        """fsync what was appended since the last call (blocking: run it off the loop)."""
        with self._mutex:
            retired, self._retired = self._retired, []
            live, dirty, dir_dirty = self._fd, self._dirty, self._dir_dirty
            self._dirty = self._dir_dirty = False
        try:
            for fd in retired:
                os.fsync(fd)
            if live is not None and dirty:
                os.fsync(live)
            if dir_dirty:  # renames and new files need the directory entry on disk
                _fsync_dir(self.path.parent)
        except OSError as exc:
            raise StoreError(f"cannot fsync journal {self.path}: {exc}") from exc
        finally:
            for fd in retired:
                _close_quietly(fd)

    # -- segments --------------------------------------------------------------

    def segment_path(self, seq: int) -> Path:
        return self.path.with_name(f"{self.path.name}.{seq:06d}")

    def sealed(self) -> list[int]:
        """Sequence numbers of the sealed segments on disk, oldest first."""
        pattern = re.compile(re.escape(self.path.name) + r"\.(\d+)$")
        if not self.path.parent.is_dir():
            return []
        found = (pattern.match(p.name) for p in self.path.parent.iterdir())
        return sorted(int(m.group(1)) for m in found if m)

    def delete(self, seq: int) -> None:
        """Remove a sealed segment whose entries are all confirmed stored elsewhere."""
        if seq == self.live_seq:
            raise StoreError("refusing to delete the live journal segment")
        try:
            self.segment_path(seq).unlink(missing_ok=True)
        except OSError as exc:
            raise StoreError(f"cannot delete journal segment {seq}: {exc}") from exc

    def append_rejected(self, entry: dict[str, Any], error: str) -> None:
        """Keep an entry the store will never accept in ``P.rejected``, for a human."""
        line = json.dumps({"error": error, "entry": entry}, default=repr).encode() + b"\n"
        try:
            fd = os.open(f"{self.path}.rejected", _OPEN_FLAGS, 0o640)
            try:
                os.write(fd, line)
            finally:
                os.close(fd)
        except OSError as exc:
            raise StoreError(f"cannot write {self.path}.rejected: {exc}") from exc


def _fsync_dir(directory: Path) -> None:
    fd = os.open(directory, os.O_RDONLY | os.O_DIRECTORY | os.O_CLOEXEC)
    try:
        os.fsync(fd)
    finally:
        os.close(fd)


def _close_quietly(fd: int) -> None:
    try:
        os.close(fd)
    except OSError:
        pass
