"""One HTTP/2 connection on a socket, for the threaded facade.

Theory of operation
-------------------
The sans-IO core is not thread-safe, so every use of it happens under the
connection's `lock`. The socket is non-blocking.

* The process's I/O loop (_loop.py: one thread, one selector for every
  socket of the facade) reads each connection's input, watches for the
  socket to become writable while output is pending, and runs the core's
  next timer from its heap. Received bytes go into the core; the core's
  events are dispatched (calls are woken through Conditions on the same
  lock); its output is sent. No thread belongs to a connection.
* Application threads act on the core directly (start a call, send a
  message) and send the output themselves, still under the lock: a
  non-blocking send normally takes everything at once, so the common path
  has no thread hand-off. What the kernel does not take is queued, and the
  loop finishes it when the socket drains; an application thread that
  keeps writing waits (flow control) instead of queueing without bound.
* The loop is woken (through its socket pair) only when it must change what
  it waits for: new pending output, or a timer earlier than the one it
  sleeps towards.
* Output comes from the core as pieces of about 64 KiB; plain TCP sends them
  with one sendmsg (no joining copy).
* Every read goes into the loop's one receive buffer (the core copies what
  it keeps), so an idle connection holds no buffer of its own.
* Closing is the loop's: it forgets the socket before closing it, and a
  close that should deliver its last frames (a GOAWAY) half-closes and
  lingers on the loop, not on a thread.

TLS
---
TLS runs on the plain non-blocking socket through memory BIOs (the standard
library's ssl.SSLObject, the same OpenSSL record layer that asyncio's
transports and uvloop use), not through ssl.SSLSocket. An SSLSocket makes a
system call per TLS record each way, two per record it reads (the record
header, then its body: the ssl module cannot turn on OpenSSL's read-ahead),
so a 1 MiB message cost about 200 system calls per hop. Here the socket is
read up to 1 MiB at a time, whatever records that holds are decrypted into
one buffer, and each 64 KiB output piece is encrypted and sent with one call.
The handshake (TlsHandshake) is done the same way, non-blocking on the loop,
with its deadline on the loop's timer heap. All use of the SSL object
happens under the connection's lock (OpenSSL objects are not safe for
concurrent use).

No protocol rule lives here.
"""
import collections
import logging
import socket
import ssl
import threading
import time

from grpcpy._context import format_peer
from grpcpy._options import set_nodelay
from grpcpy._sync import _loop
from grpcpy._sync._loop import READ, WRITE, at_fork_child, forget_at_fork, get_loop, reinit_lock

_LOGGER = logging.getLogger("grpcpy.sync")
_INF = float("inf")
# Bytes read per recv: from 64 KiB, doubled whenever a read fills it, up to
# 1 MiB. Every pass of the loop has a fixed cost (lock, the core's flush, a
# WINDOW_UPDATE back), so a large message goes faster in fewer, larger reads
# (1 MiB echo, measured: 256 KiB reads cost 10-15% more CPU per call than
# 1 MiB reads, plaintext and TLS).
_RECV_MIN = 64 * 1024
_RECV_MAX = _loop.RECV_MAX
# "try again later" from a socket
_WOULD_BLOCK = (BlockingIOError, InterruptedError)
# Output queued beyond this makes writing threads wait for the socket.
HIGH_WATER = 1 << 20
# pieces per sendmsg (the kernel takes at most IOV_MAX = 1024)
_MAX_IOV = 64
# how long a closing connection may take to deliver its last frames
LINGER = 1.0

monotonic = time.monotonic


_PLAIN_LOCK = type(threading.Lock())


class _CallCondition(threading.Condition):
    """A Condition on a connection's plain lock, for one call: made without
    Condition.__init__'s three AttributeErrors (a plain lock has none of the
    RLock helpers it looks for), and notify_all() with nobody waiting (the
    usual case: the handler or caller finds what it wants without waiting)
    returns at once."""

    def __init__(self, lock):
        self._lock = lock
        self.acquire = lock.acquire
        self.release = lock.release
        self._waiters = collections.deque()

    def notify_all(self):
        if self._waiters:
            threading.Condition.notify(self, len(self._waiters))


def call_condition(lock):
    """The Condition a call waits on: it shares its connection's lock."""
    if type(lock) is _PLAIN_LOCK:
        return _CallCondition(lock)
    return threading.Condition(lock)     # e.g. a lock patched by gevent


class TlsSession:
    """A TLS connection over memory BIOs: the SSLObject (for ALPN, peer
    certificate and session information) and its two BIOs. Made by
    TlsHandshake; a SyncConnection given one as its socket speaks TLS over
    `sock`."""

    __slots__ = ("sock", "ssl_object", "incoming", "outgoing")

    def __init__(self, sock, ssl_object, incoming, outgoing):
        self.sock = sock
        self.ssl_object = ssl_object
        self.incoming = incoming
        self.outgoing = outgoing

    def close(self):
        self.sock.close()

    def encrypt_one(self, piece):
        """The TLS records of one plaintext piece."""
        self.ssl_object.write(piece)
        return self.outgoing.read()


class TlsHandshake:
    """A TLS handshake on a connected socket, run by the loop without
    blocking. `done(session, error)` is called once, on the loop thread:
    the TlsSession, or None and the error (OSError, ssl.SSLError included;
    socket.timeout when the deadline passed). cancel() (any thread) ends it
    at once, closing the socket."""

    def __init__(self, sock, context, server_side, done, deadline, server_hostname=None):
        self.sock = sock
        self._fd = sock.fileno()
        self._incoming, self._outgoing = ssl.MemoryBIO(), ssl.MemoryBIO()
        self._obj = context.wrap_bio(self._incoming, self._outgoing, server_side=server_side,
                                     server_hostname=server_hostname)
        self._done = done
        self._deadline = deadline
        self._out = b""
        self._finished = False
        self._complete = False
        self._timer = None
        self._loop = get_loop()
        sock.setblocking(False)
        at_fork_child(self)

    def fileno(self):
        return self._fd

    def start(self):
        self._loop.call_soon(self._begin)

    def cancel(self, reason="TLS handshake cancelled"):
        self._loop.call_soon(self._finish, None, ConnectionAbortedError(reason))

    def _begin(self):
        if self._finished:
            return
        if not self._loop.add(self, READ):
            self._finish(None, OSError("socket closed before the TLS handshake"))
            return
        self._timer = self._loop.call_at(self._deadline, self._finish, None,
                                         socket.timeout("TLS handshake timed out"))
        self._step()

    def _step(self):
        try:
            self._obj.do_handshake()
            self._complete = True
        except ssl.SSLWantReadError:
            pass
        except (OSError, ValueError) as exc:
            self._finish(None, exc)
            return
        pending = self._outgoing.read()
        if pending:
            self._out += pending
        self._send()

    def _send(self):
        if self._out:
            try:
                sent = self.sock.send(self._out)
            except _WOULD_BLOCK:
                sent = 0
            except OSError as exc:
                self._finish(None, exc)
                return
            self._out = self._out[sent:]
            if self._out:
                self._loop.modify(self, READ | WRITE)
                return
            self._loop.modify(self, READ)
        if self._complete:
            self._finish(TlsSession(self.sock, self._obj, self._incoming, self._outgoing), None)

    def io_event(self, mask):
        if self._finished:
            return
        if mask & WRITE:
            self._send()
            if self._finished:
                return
        if mask & READ:
            try:
                data = self.sock.recv(_RECV_MIN)
            except _WOULD_BLOCK:
                return
            except OSError as exc:
                self._finish(None, exc)
                return
            if not data:
                self._finish(None, ssl.SSLEOFError("connection closed during the TLS handshake"))
                return
            self._incoming.write(data)
            if not self._complete:
                self._step()

    def _finish(self, session, error):
        if self._finished:
            return
        self._finished = True
        forget_at_fork(self)
        if self._timer is not None:
            self._timer.cancel()
        self._loop.remove(self)
        if error is not None:
            try:
                self.sock.close()
            except OSError:
                pass
        try:
            self._done(session, error)
        finally:
            self._done = None

    def after_fork_child(self):
        self._finished = True
        try:
            self.sock.close()
        except OSError:
            pass


class SyncConnection:
    """Drives one sans-IO core over a connected socket, on the process's
    I/O loop."""

    def __init__(self, core, sock, name=None, lock=None):
        self._tls = None
        if isinstance(sock, TlsSession):
            self._tls = sock
            sock = sock.sock
        self.core = core
        self.sock = sock
        self._fd = sock.fileno()
        self.lock = threading.Lock() if lock is None else lock
        self.closed = False
        self.peer = _format_peer(sock)
        self._rsize = _RECV_MIN         # bytes asked of each recv
        # the TLS layer may hold input that no readiness will announce (at
        # first: what arrived with the end of the handshake)
        self._tls_more = self._tls is not None
        self._outbuf = bytearray()
        self._drained = threading.Condition(self.lock)
        self._loop = get_loop()
        self._events = 0                # what the loop watches for (loop thread only)
        self._timer = None              # the loop's timer for the core's next one
        self._linger = False
        self._forked = False
        sock.setblocking(False)
        set_nodelay(sock)
        at_fork_child(self)

    def fileno(self):
        return self._fd

    def start(self):
        with self.lock:
            self.core.initiate(monotonic())
            self.flush_locked()
        self._loop.call_soon(self._attach)

    # -- called with self.lock held --------------------------------------------

    def flush_locked(self):
        """Send what the core produced. Never blocks."""
        pieces = self.core.data_to_send_chunks()
        if self.closed:
            return
        if pieces:
            if self._tls is None:
                self._send_locked(pieces)
            else:
                # each piece is sent as soon as it is encrypted: the peer
                # decrypts the first while we encrypt the next
                encrypt = self._tls.encrypt_one
                for piece in pieces:
                    try:
                        record = encrypt(piece)
                    except (OSError, ValueError):
                        self._fail_locked("TLS write failed")
                        return
                    self._send_locked([record])
                    if self.closed:
                        return
        when = self.core.next_timer()
        if when != _INF:
            timer = self._timer
            if timer is None or timer.fn is None or when < timer.when:
                if timer is not None:
                    timer.cancel()
                self._timer = self._loop.call_at(when, self._on_timer)

    def _send_locked(self, pieces):
        """Send the pieces, queueing what the socket does not take now."""
        if self._outbuf:
            for piece in pieces:
                self._outbuf += piece
            return
        sock = self.sock
        i = 0
        n = len(pieces)
        while i < n:
            end = min(n, i + _MAX_IOV)
            try:
                sent = sock.send(pieces[i]) if end - i == 1 else sock.sendmsg(pieces[i:end])
            except _WOULD_BLOCK:
                sent = 0
            except OSError:
                self._fail_locked("send failed")
                return
            while i < end and sent >= len(pieces[i]):
                sent -= len(pieces[i])
                i += 1
            if i < end:
                # the socket is full: the rest waits for the loop
                self._outbuf += memoryview(pieces[i])[sent:]
                for rest in pieces[i + 1:]:
                    self._outbuf += rest
                self.core.set_transport_paused(True)
                self._loop.call_soon(self._update_interest)
                return

    def after_action_locked(self):
        """After an application action: dispatch events it caused, send."""
        events = self.core.take_events()
        if events:
            self.dispatch(events)
        self.flush_locked()
        if self.core.closed and not self.closed:
            self._shutdown_locked()

    # the call layer's names for it (grpcpy._rpc acts with the lock held;
    # every action is written at once here)
    after_action = call_finished = after_action_locked

    def wait_writable_locked(self, timeout=None):
        """Wait while too much output is queued for the socket."""
        if len(self._outbuf) > HIGH_WATER and not self.closed:
            self._drained.wait(timeout)

    # -- the loop thread ------------------------------------------------------------

    def _attach(self):
        if self.closed:
            return
        self._events = READ | (WRITE if self._outbuf else 0)
        if not self._loop.add(self, self._events):
            self._lost("socket closed")
            return
        if self._tls_more:
            self._input(None)

    def _update_interest(self):
        if self.closed or not self._events:
            return
        want = READ | (WRITE if self._outbuf else 0)
        if want != self._events:
            self._events = want
            self._loop.modify(self, want)

    def io_event(self, mask):
        if mask & WRITE:
            self._drain()
        if mask & READ and not self.closed:
            # into the loop's buffer, up to this connection's read size
            buf = self._loop.buffer
            size = self._rsize
            try:
                n = self.sock.recv_into(buf, size)
            except _WOULD_BLOCK:
                return
            except OSError as exc:
                self._lost("connection lost: %s" % (exc,))
                return
            if not n:
                self._lost("connection closed by peer")
                return
            if n == size and size < _RECV_MAX:
                # more was waiting: read more at a time from now on
                self._rsize = size * 2
            self._input(buf[:n])

    def _input(self, data):
        with self.lock:
            if self.closed:
                return
            now = monotonic()
            eof = False
            if self._tls is not None:
                try:
                    data, eof = self._decrypt_locked(data)
                except (OSError, ValueError) as exc:
                    self._fail_locked("TLS error: %s" % (exc,))
                    return
                if self.closed:     # sending what the TLS layer wrote failed
                    return
            core = self.core
            if data:
                events = core.receive_data(data, now)
                if events:
                    self.dispatch(events)
            if eof:
                if not self.closed:
                    self._fail_locked("connection closed by peer")
                return
            if now >= core.next_timer():
                events = core.handle_timeout(now)
                if events:
                    self.dispatch(events)
            self.flush_locked()
            if core.closed:
                self._shutdown_locked()
                return
            more = self._tls_more
        if more:
            # decrypted input left over: after the other connections' turn
            self._loop.call_soon(self._input, None)

    def _on_timer(self):
        with self.lock:
            if self.closed:
                return
            self._timer = None
            now = monotonic()
            if now >= self.core.next_timer():
                events = self.core.handle_timeout(now)
                if events:
                    self.dispatch(events)
            self.flush_locked()
            if self.core.closed:
                self._shutdown_locked()

    def _decrypt_locked(self, raw):
        """Feed raw TLS bytes to the SSL object and decrypt every record
        they complete into one buffer: (plaintext view or None, eof). A
        buffer that fills up leaves the rest for the next pass
        (_tls_more). Records the TLS layer produces while reading (a TLS 1.3
        key update answer) are sent."""
        tls = self._tls
        if raw is not None:
            tls.incoming.write(raw)
        # the raw bytes are in the BIO now: decrypt over them, into the
        # buffer they were read into
        buf = self._loop.buffer
        size = len(buf)
        obj = tls.ssl_object
        incoming = tls.incoming
        read = obj.read
        n = 0
        eof = False
        self._tls_more = False
        try:
            # read while there is input (raising SSLWantReadError costs more
            # than the checks: it ends only a read that found half a record)
            while incoming.pending or obj.pending():
                if n == size:
                    self._tls_more = True
                    break
                got = read(size - n, buf[n:])
                if not got:     # close_notify
                    eof = True
                    break
                n += got
        except ssl.SSLWantReadError:
            pass
        if tls.outgoing.pending:
            self._send_locked([tls.outgoing.read()])
        return (buf[:n] if n else None), eof

    def _drain(self):
        with self.lock:
            if self.closed:
                return
            if self._outbuf:
                try:
                    sent = self.sock.send(self._outbuf)
                except _WOULD_BLOCK:
                    return
                except OSError:
                    self._fail_locked("send failed")
                    return
                del self._outbuf[:sent]
            if not self._outbuf:
                self._update_interest()
                self.core.set_transport_paused(False)
                self._drained.notify_all()
                self.writable_locked()

    def writable_locked(self):
        """Hook: the socket has taken all queued output."""

    def _fail_locked(self, reason, linger=False):
        self.closed = True
        self._linger = linger
        if self._timer is not None:
            self._timer.cancel()
            self._timer = None
        forget_at_fork(self)
        self._loop.call_soon(self._retire)
        events = self.core.connection_lost(reason)
        if events:
            self.dispatch(events)
        self._drained.notify_all()
        if not self._forked:
            self.lost_locked()

    def _retire(self):
        """The loop forgets the socket, then closes it (at once, or after
        delivering what is queued and lingering: _Closer)."""
        if self._events:
            self._loop.remove(self)
            self._events = 0
        with self.lock:
            out = bytes(self._outbuf)
            self._outbuf = bytearray()
        if self._linger:
            _Closer(self.sock, out, monotonic() + LINGER).start(self._loop)
            return
        if out:
            try:
                self.sock.send(out)
            except OSError:
                pass
        try:
            self.sock.close()
        except OSError:
            pass

    def _lost(self, reason):
        with self.lock:
            if not self.closed:
                self._fail_locked(reason)

    def _shutdown_locked(self):
        # the core closed the connection (GOAWAY with an error): send what is
        # left, best effort, then close
        self._fail_locked("connection closed")

    def close(self):
        """Close: what is pending is still sent (best effort, for about a
        second, on the loop) before the socket closes."""
        with self.lock:
            if self.closed:
                return
            self.flush_locked()
            if not self.closed:
                self._fail_locked("connection closed locally", linger=True)

    def after_fork_child(self):
        """In a child process: drop the inherited connection without writing
        to it (the parent's is the same socket); its calls end at once."""
        lock = reinit_lock(self.lock)
        self._timer = None
        if self.closed:
            return
        self.closed = True
        self._forked = True
        self._reported = True
        try:
            self.sock.close()
        except OSError:
            pass
        if lock is None:
            return
        with lock:
            try:
                events = self.core.connection_lost("connections are not inherited across fork()")
                if events:
                    self.dispatch(events)
                self._drained.notify_all()
            except Exception:
                _LOGGER.debug("ending inherited calls after fork failed", exc_info=True)

    # -- hooks for the owners ---------------------------------------------------------

    def dispatch(self, events):
        raise NotImplementedError

    def lost_locked(self):
        """Hook: the connection is gone (called with the lock held)."""


class _Closer:
    """The end of a closed connection, on the loop: send what was still
    queued, half-close, then discard what the peer still sends until it
    closes too or the deadline passes. Closing with unread input makes the
    kernel reset the connection, and a reset can destroy our last frames (a
    GOAWAY) before the peer reads them."""

    def __init__(self, sock, out, deadline):
        self.sock = sock
        self._fd = sock.fileno()
        self._out = out
        self._deadline = deadline
        self._timer = None
        self._loop = None
        self._done = False

    def fileno(self):
        return self._fd

    def start(self, loop):
        self._loop = loop
        if self._out:
            self._write()
            if self._done or self._out:
                if not self._done:
                    self._watch(READ | WRITE)
                return
        self._half_close()

    def _watch(self, events):
        if self._timer is None:
            if not self._loop.add(self, events):
                self._close()
                return
            at_fork_child(self)
            self._timer = self._loop.call_at(self._deadline, self._close)
        else:
            self._loop.modify(self, events)

    def _write(self):
        try:
            sent = self.sock.send(self._out)
        except _WOULD_BLOCK:
            return
        except OSError:
            self._close()
            return
        self._out = self._out[sent:]

    def _half_close(self):
        try:
            self.sock.shutdown(socket.SHUT_WR)
        except OSError:
            self._close()
            return
        self._watch(READ)

    def io_event(self, mask):
        if self._done:
            return
        if mask & WRITE and self._out:
            self._write()
            if not self._done and not self._out:
                self._half_close()
            return
        if mask & READ:
            try:
                while True:
                    if not self.sock.recv(_RECV_MIN):
                        break
            except _WOULD_BLOCK:
                return
            except OSError:
                pass
            self._close()

    def _close(self):
        if self._done:
            return
        self._done = True
        forget_at_fork(self)
        if self._timer is not None:
            self._timer.cancel()
            self._loop.remove(self)
        try:
            self.sock.close()
        except OSError:
            pass

    def after_fork_child(self):
        self._done = True
        try:
            self.sock.close()
        except OSError:
            pass


def _format_peer(sock):
    try:
        addr = sock.getpeername()
    except OSError:
        addr = None
    return format_peer(sock.family, addr)
