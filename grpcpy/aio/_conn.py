"""One HTTP/2 connection on an asyncio transport.

The protocol object is glue only: received bytes go into the sans-IO core
(grpcpy._cext ClientConnection / ServerConnection), whatever the core wants to
send is written, the core's earliest timer is kept armed on the loop, and the
core's events are handed to the call objects they name. No protocol rule
lives here.

Writes: what a data_received callback produces leaves in one write at its
end. Outside it, the first action the application takes after a read or a
flush (start a call, send a message, finish a call) is written at once, so
a lone call pays no extra loop iteration before its bytes leave; a second
action schedules one write at the end of the loop iteration for itself and
whatever else the iteration adds (64 calls started together cost two
writes, not 64).

A large output (a big message) comes from the core as pieces of about
64 KiB: on a TLS transport each piece is written by its own call, so it is
encrypted and on its way before the next one is touched (one write of the
whole output makes the TLS layer encrypt all of it into one large buffer
first: measured 2x slower for 1 MiB messages); on plain TCP uvloop sends
the pieces in one writev, and asyncio's loop gets them one by one (its
writelines joins them).

Reads are buffered (asyncio.BufferedProtocol): the transport reads into a
256 KiB buffer that all connections of a loop share, and the core parses
straight from it (it keeps copies only of what it needs: frame payloads,
partial frames). On TLS this makes the SSL layer decrypt record after
record into that buffer instead of allocating a 256 KiB bytes object per
record and joining them (measured: 25% less CPU per small TLS call, 10%
per 1 MiB TLS call); on asyncio's own loop it replaces recv() into a
fresh 256 KiB object with recv_into().
"""
import asyncio
import weakref

from grpcpy._context import format_peer
from grpcpy._options import set_nodelay

_INF = float("inf")
READ_BUFFER_SIZE = 256 * 1024
# loop -> the read buffer of its connections (a loop runs one callback at a
# time, and the core is done with the bytes when data_received returns)
_read_buffers = weakref.WeakKeyDictionary()


def _read_buffer(loop):
    buf = _read_buffers.get(loop)
    if buf is None:
        buf = _read_buffers[loop] = memoryview(bytearray(READ_BUFFER_SIZE))
    return buf


class AioConnection(asyncio.BufferedProtocol):
    """Drives one sans-IO core from an asyncio transport."""

    def __init__(self, core, loop):
        self.core = core
        self.loop = loop
        self.transport = None
        self._gather = False            # transport.writelines is one scatter-gather write
        self.peer = None
        self.closed = False
        self._timer = None
        self._timer_at = _INF
        self._flush_pending = False
        self._wrote_early = False     # an action was written at once since the last read or flush
        self._dispatching = False
        self._write_waiters = []
        self._rbuf = None
        self.lost = loop.create_future()

    # -- transport callbacks -----------------------------------------------

    def connection_made(self, transport):
        self.transport = transport
        self._gather = (transport.get_extra_info("sslcontext") is None
                        and type(transport).__module__.startswith("uvloop"))
        sock = transport.get_extra_info("socket")
        if sock is not None:
            set_nodelay(sock)
        self.peer = _format_peer(transport)
        self.core.initiate(self.loop.time())
        self.flush()
        self._arm_timer()

    def data_received(self, data):
        self._wrote_early = False
        events = self.core.receive_data(data, self.loop.time())
        if events:
            self._dispatching = True
            try:
                self.dispatch(events)
            finally:
                self._dispatching = False
        self.flush()
        self._arm_timer()
        if self.core.closed and not self.closed:
            self._close_transport()

    def get_buffer(self, sizehint):
        buf = self._rbuf
        if buf is None:
            buf = self._rbuf = _read_buffer(self.loop)
        return buf

    def buffer_updated(self, nbytes):
        self.data_received(self._rbuf[:nbytes])

    def eof_received(self):
        return False  # close our side too

    def connection_lost(self, exc):
        self.closed = True
        self.transport = None
        if self._timer is not None:
            self._timer.cancel()
            self._timer = None
        reason = "connection lost" if exc is None else "connection lost: %s" % (exc,)
        events = self.core.connection_lost(reason)
        if events:
            self.dispatch(events)
        self._release_write_waiters()
        if not self.lost.done():
            self.lost.set_result(None)

    def pause_writing(self):
        self.core.set_transport_paused(True)

    def resume_writing(self):
        self.core.set_transport_paused(False)
        self._release_write_waiters()

    # -- helpers for the owners of calls --------------------------------------

    def flush(self):
        self._flush_pending = False
        self._wrote_early = False
        self._write_out()

    def _write_out(self):
        out = self.core.data_to_send_chunks()
        if out and self.transport is not None:
            if len(out) == 1:
                self.transport.write(out[0])
            elif self._gather:
                self.transport.writelines(out)
            else:
                for piece in out:
                    self.transport.write(piece)

    def after_action(self):
        """The application acted on the core: deliver resulting events,
        write, and re-arm timers."""
        events = self.core.take_events()
        if events:
            self.dispatch(events)
        if not self._flush_pending and not self._dispatching:
            # (inside data_received the flush at its end writes this too)
            if self._wrote_early:
                # a second action since the last read or flush: coalesce
                # the rest of this loop iteration into one write
                self._flush_pending = True
                self.loop.call_soon(self.flush)
            else:
                self._wrote_early = True
                self._write_out()
        self._arm_timer()

    def call_finished(self):
        """A call's final status was queued (the call layer's last action
        on it): write it now, with whatever else this loop iteration
        queued, rather than at the end of the iteration - except inside
        data_received, whose flush at its end writes it."""
        events = self.core.take_events()
        if events:
            self.dispatch(events)
        if not self._dispatching:
            self.flush()
        self._arm_timer()

    async def wait_writable(self):
        """Wait while the transport's write buffer is above its high-water mark."""
        if not self.core.transport_paused or self.closed:
            return
        waiter = self.loop.create_future()
        self._write_waiters.append(waiter)
        await waiter

    def _release_write_waiters(self):
        waiters, self._write_waiters = self._write_waiters, []
        for waiter in waiters:
            if not waiter.done():
                waiter.set_result(None)

    def _arm_timer(self):
        when = self.core.next_timer()
        if when < self._timer_at:
            if self._timer is not None:
                self._timer.cancel()
            self._timer_at = when
            self._timer = self.loop.call_at(when, self._on_timer)

    def _on_timer(self):
        self._timer = None
        self._timer_at = _INF
        events = self.core.handle_timeout(self.loop.time())
        if events:
            self.dispatch(events)
        self.flush()
        if self.core.closed and not self.closed:
            self._close_transport()
        else:
            self._arm_timer()

    def _close_transport(self):
        if self.transport is not None:
            self.flush()
            self.transport.close()

    def close(self):
        """Close the transport now (the core's last frames are flushed first)."""
        self._close_transport()

    def cancel_calls_and_close(self):
        """A server stopping past its grace: the core ends every call
        still running UNAVAILABLE "Cancelling all calls" (as trailers, so
        clients see that status; grpc servers' words), sends GOAWAY, and
        the transport is closed now."""
        events = self.core.cancel_all_calls()
        if events:
            self.dispatch(events)
        self._close_transport()

    def dispatch(self, events):
        raise NotImplementedError


def _format_peer(transport):
    sock = transport.get_extra_info("socket")
    return format_peer(getattr(sock, "family", None), transport.get_extra_info("peername"))
