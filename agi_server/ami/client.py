"""What we change in panoramisk (1.4), and why.

panoramisk parses the AMI wire well enough, but its connection lifecycle is not fit
for a long-running health watcher. Read against its source (``manager.py``,
``ami_protocol.py``):

* Reconnect: ``Manager.connection_lost`` and a failed connect schedule
  ``call_later(reconnect_timeout, connect)``: a fixed 2 s, no back-off, no jitter,
  untracked handles and tasks that nothing can cancel.  -> :meth:`_Manager.connection_lost`
  only reports the loss; :class:`~agi_server.ami.watcher.AmiWatcher` reconnects.
* Login: the result is stored in ``authenticated`` and otherwise ignored; a wrong
  secret is followed by Asterisk closing the socket (ami-12) and a reconnect every
  2 s forever, with nothing logged as an auth problem. The login future of a socket
  that dies first is dropped unresolved.  -> no ``username`` is given to panoramisk;
  the watcher sends Login itself, with a timeout, and raises ``AmiError``.
* Ping: ``Manager.ping`` writes ``Action: Ping`` and never looks at the reply, so a
  silent peer (half-open TCP) is never noticed.  -> :meth:`_Manager.ping` is a no-op;
  the watcher pings and waits for the reply within a deadline.
* Actions have no timeout, and on reconnect panoramisk replays unanswered actions
  (``send_awaiting_actions`` on FullyBooted) onto the new connection.  -> replay is
  disabled; every action is bounded by ``asyncio.timeout`` and re-issued by the watcher.
* Dispatch: a callback that raises propagates out of ``data_received``, which makes
  asyncio close the transport (and drop the rest of the chunk); coroutine callbacks
  go to ``ensure_future`` unreferenced.  -> :meth:`_Manager.dispatch` logs and
  continues, and keeps coroutine callbacks as tasks cancelled on close.
* Decoding: each read is decoded on its own with ``errors='ignore'``, so a UTF-8
  character split across reads (caller names are raw UTF-8) is silently dropped.
  -> :class:`_Protocol` decodes incrementally.
* Ordering: :class:`_Protocol` stamps every message with a per-connection ``seq`` so
  the watcher can tell whether an event is newer than a seed reply.
"""

from __future__ import annotations

import asyncio
import codecs
import inspect

import structlog
from panoramisk import Manager
from panoramisk.ami_protocol import AMIProtocol

log = structlog.get_logger()


class _Protocol(AMIProtocol):
    """panoramisk's protocol with incremental UTF-8 decoding and message ``seq``.

    ``reads`` counts ``data_received`` calls (how fragmented the stream arrived).
    """

    def connection_made(self, transport) -> None:
        super().connection_made(transport)
        self._decoder = codecs.getincrementaldecoder("utf-8")("replace")
        self.seq = 0
        self.reads = 0

    def data_received(self, data: bytes) -> None:
        self.reads += 1
        text = self._decoder.decode(data)
        if text:
            super().data_received(text.encode("utf-8"))

    def handle_message(self, message) -> None:
        self.seq += 1
        message.seq = self.seq
        super().handle_message(message)


class _Manager(Manager):
    """A ``panoramisk.Manager`` for one connection, whose lifecycle the watcher owns."""

    def __init__(self, on_lost, server: str, **config) -> None:
        super().__init__(protocol_factory=_Protocol, ping_delay=10**9, **config)
        self._on_lost = on_lost
        self._server = server
        self.tasks: set[asyncio.Task] = set()

    def attach(self, transport, protocol) -> None:
        """Adopt a connection made by the watcher (instead of ``Manager.connect``)."""
        done = self.loop.create_future()
        done.set_result((transport, protocol))
        self.connection_made(done)    # no username in config: panoramisk sends no Login

    def ping(self) -> None:
        """Disabled: a ping whose reply nobody awaits detects nothing."""

    def send_awaiting_actions(self, *_args) -> None:
        """Disabled: never replay a dead connection's actions onto a new one."""
        self.awaiting_actions.clear()

    def connection_lost(self, exc) -> None:
        """Report the loss; reconnecting is the watcher's decision, not a timer's."""
        self._connected = False
        if self.pinger:
            self.pinger.cancel()
            self.pinger = None
        self._on_lost(exc)

    def dispatch(self, event) -> list[str]:
        """Call every matching callback; one that raises is logged and skipped."""
        event.manager = self
        matches = []
        for pattern, regexp in self.patterns:
            if regexp.match(event.event) is None:
                continue
            matches.append(pattern)
            for callback in list(self.callbacks[pattern]):
                self._call(callback, event)
        return matches

    def _call(self, callback, event) -> None:
        try:
            result = callback(self, event)
        except Exception:
            log.exception("ami_handler_failed", server=self._server, ami_event=event.event,
                          handler=getattr(callback, "__qualname__", repr(callback)))
            return
        if inspect.isawaitable(result):
            task = asyncio.ensure_future(result)
            self.tasks.add(task)
            task.add_done_callback(self._task_done)

    def _task_done(self, task: asyncio.Task) -> None:
        self.tasks.discard(task)
        if not task.cancelled() and task.exception() is not None:
            log.error("ami_handler_failed", server=self._server, exc_info=task.exception())

    def close(self) -> None:
        """Close the socket (no reconnect follows) and cancel handler tasks."""
        super().close()
        for task in list(self.tasks):
            task.cancel()
