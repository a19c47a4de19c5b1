"""The CDR writer: journal first, then PostgreSQL in batches, never on the reply path.

Contract (design invariants 1 and 2):

* :meth:`CdrWriter.record` is synchronous and cheap: one journal append (page cache,
  see :mod:`agi_server.cdr.journal`) and a deque append. It never awaits, never
  touches the network and never raises on disk trouble (it logs instead).
* A background task writes queued entries to PostgreSQL in batches
  (``INSERT ... ON CONFLICT DO NOTHING``, so replays are idempotent). While the
  database is down or slow, entries stay in the journal and in memory and the task
  retries with capped exponential back-off. Memory is bounded: past ``max_queued``
  entries the live segment is sealed and the in-memory copies are dropped; those
  segments are read back from disk later.
* A journal segment is deleted once every entry in it is confirmed stored (inserted,
  already present, or moved to ``<spool>.rejected`` because it can never be stored).
  Entries of an unknown ``kind`` are never confirmed, so their segment is kept.
* On :meth:`start`, segments left by an earlier process are replayed before new
  entries. Without a DSN the journal *is* the store: nothing is ever deleted.
* Call ``record`` from the event-loop thread only.
"""

from __future__ import annotations

import asyncio
import itertools
import random
from dataclasses import dataclass, field
from collections import deque
from typing import Any

import structlog

from agi_server.cdr import store
from agi_server.cdr.journal import DEFAULT_SEGMENT_BYTES, Journal, read_entries
from agi_server.cdr.record import AttemptRecord, OutcomeRecord, TrunkStateRecord
from agi_server.errors import StoreError

log = structlog.get_logger()

RETRY_FIRST = 0.5      # seconds before the first retry; doubles up to retry_cap
CONNECT_TIMEOUT = 5.0
QUERY_TIMEOUT = 10.0
STOP_TIMEOUT = 3.0

Queued = tuple[int | None, dict[str, Any]]  # (journal segment, or None if not journaled; entry)
PARSERS = {"attempt": store.attempt_from_entry, "outcome": store.outcome_from_entry,
           "trunk_state": store.trunk_state_from_entry}


@dataclass
class Batch:
    """Entries of one write. Attempts are written before outcomes; an outcome whose
    attempt row is not there yet is held in cdr_outcome_pending and adopted later,
    so the order across batches does not matter."""

    attempts: list[AttemptRecord] = field(default_factory=list)
    outcomes: list[OutcomeRecord] = field(default_factory=list)
    states: list[TrunkStateRecord] = field(default_factory=list)

    def add(self, kind: str, record) -> None:
        {"attempt": self.attempts, "outcome": self.outcomes, "trunk_state": self.states}[kind].append(record)

    def __bool__(self) -> bool:
        return bool(self.attempts or self.outcomes or self.states)

    def chunks(self, size: int):
        for start in range(0, max(len(self.attempts), len(self.outcomes), len(self.states)), size):
            yield Batch(self.attempts[start:start + size], self.outcomes[start:start + size],
                        self.states[start:start + size])


class CdrWriter:
    """Journal + batched PostgreSQL writer for CDR attempt records."""

    def __init__(self, spool_path: str, dsn: str | None, fsync_interval: float,
                 batch_size: int = 500, flush_interval: float = 0.2, *,
                 max_queued: int = 100_000, segment_bytes: int = DEFAULT_SEGMENT_BYTES,
                 connect_timeout: float = CONNECT_TIMEOUT,
                 query_timeout: float = QUERY_TIMEOUT, retry_cap: float = 30.0) -> None:
        self._journal = Journal(spool_path, segment_bytes)
        self._dsn = dsn
        self._fsync_interval = fsync_interval
        self._batch_size = batch_size
        self._flush_interval = flush_interval
        self._max_queued = max_queued
        self._retry_cap = retry_cap
        self._queue: deque[Queued] = deque()
        self._backlog: deque[int] = deque()   # sealed segments to read back from disk
        self._pending: dict[int, int] = {}    # segment -> entries not yet confirmed
        self._generation = 0                  # bumped when the queue is spilled to disk
        self._db = store.AttemptStore(dsn, connect_timeout, query_timeout, self._reject)
        self._drain_task: asyncio.Task | None = None
        self._fsync_task: asyncio.Task | None = None
        self._wake = asyncio.Event()
        # Set by the owner when the schema is known to be there; None: don't wait.
        self.db_ready: asyncio.Event | None = None
        self._stopping = asyncio.Event()
        self._started = False
        self._spool_failing = False
        self._unknown_kinds: set[str] = set()
        self._counts = dict.fromkeys(
            ("written", "duplicates", "outcomes", "failed_batches", "spooled", "spool_errors",
             "rejected"), 0)

    # -- reply path ------------------------------------------------------------

    def record(self, rec: AttemptRecord | OutcomeRecord | TrunkStateRecord) -> None:
        """Journal ``rec`` and queue it for PostgreSQL. Never awaits, never raises
        on disk trouble (the failure is logged and counted in ``spool_errors``)."""
        entry = rec.to_json()
        seq = self._append(entry)
        if self._dsn is None:
            return
        self._queue.append((seq, entry))
        if len(self._queue) > self._max_queued:
            self._spill()
        self._wake.set()

    def _append(self, entry: dict[str, Any]) -> int | None:
        try:
            seq = self._journal.append(entry)
        except StoreError as exc:
            self._counts["spool_errors"] += 1
            if not self._spool_failing:  # log the transition, not every call
                log.error("cdr_spool_append_failed", spool=str(self._journal.path),
                          error=str(exc))
            self._spool_failing = True
            return None
        if self._spool_failing:
            log.info("cdr_spool_recovered", spool=str(self._journal.path),
                     spool_errors=self._counts["spool_errors"])
            self._spool_failing = False
        self._counts["spooled"] += 1
        if self._dsn is not None:
            self._pending[seq] = self._pending.get(seq, 0) + 1
        return seq

    def _spill(self) -> None:
        """Bound memory: seal the live segment and let the backlog re-read it all."""
        if not self._pending:
            return  # nothing journaled to fall back on: memory is the only copy
        try:
            self._journal.rotate()
        except StoreError as exc:
            log.error("cdr_spill_failed", error=str(exc), queued=len(self._queue))
            return
        self._backlog.extend(sorted(self._pending))
        self._pending.clear()
        # Entries that never reached the journal exist only here: keep them.
        self._queue = deque(item for item in self._queue if item[0] is None)
        self._generation += 1
        log.warning("cdr_queue_spilled", backlog_segments=len(self._backlog),
                    max_queued=self._max_queued)

    def stats(self) -> dict[str, int]:
        """Counters: queued (in memory), written (new rows), duplicates, failed_batches,
        spooled (journal appends), spool_errors, rejected, backlog_segments."""
        return {"queued": len(self._queue), "backlog_segments": len(self._backlog),
                **self._counts}

    # -- lifecycle -------------------------------------------------------------

    async def start(self) -> None:
        """Open the journal and start the background tasks.

        Raises ``StoreError`` if the journal cannot be opened (e.g. another process
        owns it). Never waits for PostgreSQL: the pool connects lazily.
        """
        if self._started:
            raise StoreError("CdrWriter already started")
        sealed = self._journal.open()
        self._started = True
        self._fsync_task = asyncio.create_task(self._fsync_loop(), name="cdr-fsync")
        if self._dsn is None:
            log.warning("cdr_spool_only", spool=str(self._journal.path),
                        detail="no dsn: CDR rows go only to the spool file at this path")
            return
        self._backlog.extend(sealed)
        self._drain_task = asyncio.create_task(self._drain_loop(), name="cdr-drain")
        log.info("cdr_writer_started", spool=str(self._journal.path),
                 backlog_segments=len(sealed))

    async def stop(self, timeout: float = STOP_TIMEOUT) -> None:
        """Flush what can be flushed within ``timeout`` s, fsync, close, end the tasks.

        Whatever is not in PostgreSQL by then stays in the journal for the next start.
        """
        if not self._started:
            return
        self._started = False
        loop = asyncio.get_running_loop()
        deadline = loop.time() + timeout
        self._stopping.set()
        self._wake.set()
        if self._drain_task is not None:
            await _finish(self._drain_task, deadline - loop.time())
            try:
                await asyncio.wait_for(self._final_flush(), max(deadline - loop.time(), 0.1))
            except TimeoutError:
                log.warning("cdr_stop_flush_timeout", queued=len(self._queue))
        # The fsync task does a last fsync when it sees _stopping. Closing descriptors
        # while that fsync runs in its thread would be unsafe, so only close after it.
        if await _finish(self._fsync_task, max(deadline - loop.time(), 1.0)):
            self._journal.close()
        await self._db.close()
        log.info("cdr_writer_stopped", **self.stats())

    async def _final_flush(self) -> None:
        while self._queue and await self._flush_batch():
            pass
        if not self._queue and self._pending.get(self._journal.live_seq, 0) == 0:
            # Everything is confirmed: seal and delete the live segment too, so a
            # clean stop leaves nothing to replay.
            self._maybe_delete(self._rotate())

    # -- background: fsync ------------------------------------------------------

    async def _fsync_loop(self) -> None:
        while True:
            await self._pause(self._fsync_interval)
            try:
                # fsync can take milliseconds or more: never on the loop thread.
                await asyncio.to_thread(self._journal.sync)
            except StoreError as exc:
                log.error("cdr_spool_fsync_failed", error=str(exc))
            if self._stopping.is_set():
                return

    # -- background: drain to PostgreSQL ----------------------------------------

    async def _drain_loop(self) -> None:
        if self.db_ready is not None:
            # e.g. migrations still running at start-up: rows wait in the journal.
            await self.db_ready.wait()
        while not self._stopping.is_set():
            try:
                if self._backlog:
                    await self._replay(self._backlog[0])
                elif not self._queue:
                    self._wake.clear()
                    await self._wake.wait()
                else:
                    if len(self._queue) < self._batch_size:
                        await self._pause(self._flush_interval)  # let a batch build up
                    await self._flush_batch()
            except Exception as exc:  # noqa: BLE001 (cancellation still passes through)
                # A bug or an odd failure must not end the task: rows would pile up
                # unseen. Log it loudly and keep going after a pause.
                log.exception("cdr_drain_error", error=str(exc))
                await self._pause(self._retry_cap)

    async def _flush_batch(self) -> bool:
        """Write the oldest queued batch; False if it could not be (stopping)."""
        generation = self._generation
        batch = list(itertools.islice(self._queue, self._batch_size))
        records, settled = self._sort(batch)
        if records and not await self._write_with_retry(records):
            return False
        if generation != self._generation:
            return True  # spilled meanwhile: these entries are in the backlog now
        for _ in batch:
            self._queue.popleft()
        for seq in settled:
            if seq is not None:
                self._pending[seq] -= 1
        for seq in {s for s in settled if s is not None}:
            self._maybe_delete(seq)
        return True

    async def _replay(self, seq: int) -> None:
        """Write one sealed segment from disk; delete it if every entry is settled."""
        path = self._journal.segment_path(seq)
        entries = await asyncio.to_thread(read_entries, path)
        records, settled = self._sort([(seq, e) for e in entries])
        for chunk in records.chunks(self._batch_size):
            if not await self._write_with_retry(chunk):
                return  # stopping: the segment stays in the backlog and on disk
        self._backlog.popleft()
        complete = len(settled) == len(entries)
        if complete:
            self._delete(seq)
        log.info("cdr_segment_replayed", segment=str(path), entries=len(entries),
                 rows=len(records.attempts), outcomes=len(records.outcomes), deleted=complete)

    def _sort(self, batch: list[Queued]) -> tuple["Batch", list[int | None]]:
        """Split a batch into attempt rows and outcomes to write, and the segments of
        every entry settled by this batch (bad entries are settled by moving them aside)."""
        records = Batch()
        settled: list[int | None] = []
        for seq, entry in batch:
            kind = entry.get("kind")
            if kind not in PARSERS:
                if kind not in self._unknown_kinds:
                    self._unknown_kinds.add(kind)
                    log.warning("cdr_unknown_kind_kept", kind=kind)
                continue
            try:
                parsed = PARSERS[kind](entry)
                records.add(kind, parsed)
            except store.BadEntry as exc:
                if not self._reject(entry, str(exc)):
                    continue
            settled.append(seq)
        return records, settled

    def _reject(self, entry: dict[str, Any], error: str) -> bool:
        try:
            self._journal.append_rejected(entry, error)
        except StoreError as exc:
            log.error("cdr_reject_failed", error=str(exc))
            return False
        self._counts["rejected"] += 1
        log.error("cdr_entry_rejected", error=error, entry=entry)
        return True

    async def _write_with_retry(self, records: "Batch") -> bool:
        """Insert until it works (True) or the writer is stopping (False)."""
        failures = 0
        while True:
            try:
                inserted = await self._db.insert(records.attempts, records.outcomes, records.states)
            except store.DB_ERRORS as exc:
                failures += 1
                self._counts["failed_batches"] += 1
                delay = min(self._retry_cap, RETRY_FIRST * 2 ** (failures - 1))
                delay *= random.uniform(0.5, 1.0)  # de-synchronise a farm of writers
                log.warning("cdr_db_write_failed", error=str(exc) or type(exc).__name__,
                            error_type=type(exc).__name__, rows=len(records.attempts),
                            failures=failures, retry_in=round(delay, 2))
                if self._stopping.is_set():
                    return False
                await self._pause(delay)
                if self._stopping.is_set():
                    return False
            else:
                self._counts["written"] += inserted
                self._counts["duplicates"] += len(records.attempts) - inserted
                self._counts["outcomes"] += len(records.outcomes)
                if failures:
                    log.info("cdr_db_recovered", failures=failures, rows=len(records.attempts))
                return True

    # -- helpers -----------------------------------------------------------------

    def _rotate(self) -> int | None:
        try:
            return self._journal.rotate()
        except StoreError as exc:
            log.error("cdr_rotate_failed", error=str(exc))
            return None

    def _maybe_delete(self, seq: int | None) -> None:
        """Delete a sealed segment once nothing in it is pending."""
        if seq is None or seq == self._journal.live_seq or self._pending.get(seq, 0):
            return
        self._pending.pop(seq, None)
        self._delete(seq)

    def _delete(self, seq: int) -> None:
        try:
            self._journal.delete(seq)
        except StoreError as exc:
            log.error("cdr_segment_delete_failed", segment=seq, error=str(exc))

    async def _pause(self, delay: float) -> None:
        """Sleep ``delay`` seconds, or less if the writer starts stopping."""
        try:
            await asyncio.wait_for(self._stopping.wait(), delay)
        except TimeoutError:
            pass


async def _finish(task: asyncio.Task | None, timeout: float) -> bool:
    """Let ``task`` end by itself within ``timeout`` s, else cancel it.

    True if it ended by itself (so no thread it started is still running).
    """
    if task is None:
        return True
    done, _ = await asyncio.wait({task}, timeout=max(timeout, 0))
    if done:
        if not task.cancelled() and task.exception() is not None:
            log.error("cdr_task_failed", task=task.get_name(), error=repr(task.exception()))
        return True
    task.cancel()
    await asyncio.gather(task, return_exceptions=True)
    log.warning("cdr_task_cancelled", task=task.get_name())
    return False
