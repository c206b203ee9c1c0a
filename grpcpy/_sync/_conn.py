"""One HTTP/2 connection on a socket, for the threaded facade.

Theory of operation
-------------------
The sans-IO core is not thread-safe, so every use of it happens under the
connection's `lock`. The socket is non-blocking.

* An I/O thread per connection waits in poll() for input, for the socket to
  become writable while output is pending, and for the core's next timer.
  Received bytes go into the core; the core's events are dispatched (calls are
  woken through Conditions on the same lock); its output is sent.
* Application threads act on the core directly (start a call, send a
  message) and send the output themselves, still under the lock: a
  non-blocking send normally takes everything at once, so the common path
  has no thread hand-off. What the kernel does not take is queued, and the
  I/O thread finishes it when the socket drains; an application thread that
  keeps writing waits (flow control) instead of queueing without bound.
* The I/O thread is woken (through a socket pair) only when it must change
  what it waits for: new pending output, or a timer earlier than the one it
  sleeps towards.
* Output comes from the core as pieces of about 64 KiB; plain TCP sends them
  with one sendmsg (no joining copy).

TLS
---
TLS runs on the plain non-blocking socket through memory BIOs (the standard
library's ssl.SSLObject, the same OpenSSL record layer that asyncio's
transports and uvloop use), not through ssl.SSLSocket. An SSLSocket makes a
system call per TLS record each way, two per record it reads (the record
header, then its body: the ssl module cannot turn on OpenSSL's read-ahead),
so a 1 MiB message cost about 200 system calls per hop. Here the socket is
read 256 KiB at a time, whatever records that holds are decrypted into one
buffer, and each 64 KiB output piece is encrypted and sent with one call.
The handshake (tls_handshake) is done the same way before the connection
starts, on a blocking socket with a deadline. All use of the SSL object
happens under the connection's lock (OpenSSL objects are not safe for
concurrent use); only the raw socket is read outside it.

No protocol rule lives here.
"""
import logging
import select
import socket
import ssl
import threading
import time

from grpcpy._context import format_peer
from grpcpy._options import set_nodelay

_LOGGER = logging.getLogger("grpcpy.sync")
_INF = float("inf")
# Bytes read per recv: from 64 KiB, doubled whenever a read fills it, up to
# 1 MiB. Every pass of the I/O thread has a fixed cost (poll, lock, the
# core's flush, a WINDOW_UPDATE back), so a large message goes faster in
# fewer, larger reads (1 MiB echo, measured: 256 KiB reads cost 10-15% more
# CPU per call than 1 MiB reads, plaintext and TLS); a connection that only
# carries small messages keeps a small buffer.
_RECV_MIN = 64 * 1024
_RECV_MAX = 1 << 20
# A TLS connection decrypts into the same buffer, after the BIO has taken
# the raw bytes: room for the records of one read plus one that an earlier
# read left incomplete.
_SLACK = 64 * 1024
# "try again later" from a socket
_WOULD_BLOCK = (BlockingIOError, InterruptedError)
# Output queued beyond this makes writing threads wait for the socket.
HIGH_WATER = 1 << 20
# pieces per sendmsg (the kernel takes at most IOV_MAX = 1024)
_MAX_IOV = 64

monotonic = time.monotonic


class TlsSession:
    """A TLS connection over memory BIOs: the SSLObject (for ALPN, peer
    certificate and session information) and its two BIOs. Made by
    tls_handshake; a SyncConnection given one as its socket speaks TLS over
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


def tls_handshake(sock, context, server_side, server_hostname=None, timeout=None):
    """Run the TLS handshake on a connected socket (blocking, at most
    `timeout` seconds in all) and return the TlsSession. Raises OSError
    (ssl.SSLError included) on failure, socket.timeout when out of time."""
    incoming, outgoing = ssl.MemoryBIO(), ssl.MemoryBIO()
    obj = context.wrap_bio(incoming, outgoing, server_side=server_side, server_hostname=server_hostname)
    deadline = None if timeout is None else monotonic() + timeout
    sock.setblocking(True)
    try:
        while True:
            try:
                obj.do_handshake()
                done = True
            except ssl.SSLWantReadError:
                done = False
            pending = outgoing.read()
            if pending:
                _settimeout(sock, deadline)
                sock.sendall(pending)
            if done:
                return TlsSession(sock, obj, incoming, outgoing)
            _settimeout(sock, deadline)
            data = sock.recv(_RECV_MIN)
            if not data:
                raise ssl.SSLEOFError("connection closed during the TLS handshake")
            incoming.write(data)
    finally:
        sock.settimeout(None)


def _settimeout(sock, deadline):
    if deadline is not None:
        remaining = deadline - monotonic()
        if remaining <= 0:
            raise socket.timeout("TLS handshake timed out")
        sock.settimeout(remaining)


class SyncConnection:
    """Drives one sans-IO core over a connected socket."""

    def __init__(self, core, sock, name="grpcpy-io"):
        self._tls = None
        if isinstance(sock, TlsSession):
            self._tls = sock
            sock = sock.sock
        self.core = core
        self.sock = sock
        self.lock = threading.Lock()
        self.closed = False
        self.peer = _format_peer(sock)
        self._rbuf = None               # receive buffer (I/O thread only)
        self._rsize = _RECV_MIN         # bytes asked of each recv
        self._dbuf = None               # the buffer last read into (TLS decrypts into it)
        # the TLS layer may hold input that no poll() will announce (at first:
        # what arrived with the end of the handshake)
        self._tls_more = self._tls is not None
        self._outbuf = bytearray()
        self._drained = threading.Condition(self.lock)
        self._wake_r, self._wake_w = socket.socketpair()
        self._wake_r.setblocking(False)
        self._wake_w.setblocking(False)
        self._sleep_until = _INF
        self._thread = threading.Thread(target=self._run, name=name, daemon=True)
        sock.setblocking(False)
        set_nodelay(sock)

    def start(self):
        with self.lock:
            self.core.initiate(monotonic())
            self.flush_locked()
        self._thread.start()

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
        if when < self._sleep_until:
            self._wake()

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
                # the socket is full: the rest waits for the I/O thread
                self._outbuf += memoryview(pieces[i])[sent:]
                for rest in pieces[i + 1:]:
                    self._outbuf += rest
                self.core.set_transport_paused(True)
                self._wake()
                return

    def after_action_locked(self):
        """After an application action: dispatch events it caused, send."""
        events = self.core.take_events()
        if events:
            self.dispatch(events)
        self.flush_locked()

    # the call layer's name for it (grpcpy._rpc acts with the lock held)
    after_action = after_action_locked

    def wait_writable_locked(self, timeout=None):
        """Wait while too much output is queued for the socket."""
        if len(self._outbuf) > HIGH_WATER and not self.closed:
            self._drained.wait(timeout)

    def _wake(self):
        try:
            self._wake_w.send(b"\0")
        except (BlockingIOError, OSError):
            pass

    # -- the I/O thread -----------------------------------------------------------

    def _run(self):
        sock = self.sock
        poller = select.poll()
        fd = sock.fileno()
        wake_fd = self._wake_r.fileno()
        poller.register(wake_fd, select.POLLIN)
        read_mask = select.POLLIN | select.POLLERR | select.POLLHUP
        mask = None
        try:
            while True:
                with self.lock:
                    if self.closed:
                        return
                    want = read_mask | (select.POLLOUT if self._outbuf else 0)
                    when = self.core.next_timer()
                    self._sleep_until = when
                if want != mask:
                    if mask is None:
                        poller.register(fd, want)
                    else:
                        poller.modify(fd, want)
                    mask = want
                if self._tls_more:
                    timeout = 0     # decrypted input is waiting, not the socket
                elif when == _INF:
                    timeout = None
                else:
                    timeout = max(0, int((when - monotonic()) * 1000) + 1)
                ready = poller.poll(timeout)
                data = None
                for rfd, ev in ready:
                    if rfd == wake_fd:
                        try:
                            while self._wake_r.recv(4096):
                                pass
                        except (BlockingIOError, OSError):
                            pass
                    elif ev & (select.POLLIN | select.POLLERR | select.POLLHUP):
                        try:
                            data = self._recv()
                        except _WOULD_BLOCK:
                            data = None
                        except OSError as exc:
                            self._lost("connection lost: %s" % (exc,))
                            return
                        if data is not None and not data:
                            self._lost("connection closed by peer")
                            return
                    if ev & select.POLLOUT:
                        self._drain()
                with self.lock:
                    if self.closed:
                        return
                    now = monotonic()
                    eof = False
                    if self._tls is not None and (data is not None or self._tls_more):
                        try:
                            data, eof = self._decrypt_locked(data)
                        except (OSError, ValueError) as exc:
                            self._fail_locked("TLS error: %s" % (exc,))
                            return
                        if self.closed:     # sending what the TLS layer wrote failed
                            return
                    if data:
                        events = self.core.receive_data(data, now)
                        if events:
                            self.dispatch(events)
                    if eof:
                        if not self.closed:
                            self._fail_locked("connection closed by peer")
                        return
                    if now >= self.core.next_timer():
                        events = self.core.handle_timeout(now)
                        if events:
                            self.dispatch(events)
                    self.flush_locked()
                    if self.core.closed:
                        self._shutdown_locked()
                        return
        except Exception:  # the thread must never die silently
            _LOGGER.exception("I/O thread of %s failed", self.peer)
            self._lost("internal error in the I/O thread")
        finally:
            self._wake_r.close()

    def _recv(self):
        """Read what the socket holds (up to the read size) into the
        receive buffer: a view of the bytes read, or b"" at end of input.
        The core copies what it keeps, so the buffer is reused for the next
        read."""
        buf = self._rbuf
        if buf is None:
            buf = self._rbuf = memoryview(bytearray(self._rsize + _SLACK))
        size = self._rsize
        n = self.sock.recv_into(buf, size)
        self._dbuf = buf
        if n == size and size < _RECV_MAX:
            # more was waiting: read more at a time from now on (the next
            # read gets a larger buffer; this one is still to be parsed)
            self._rsize = size * 2
            self._rbuf = None
        return buf[:n] if n else b""

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
        buf = self._dbuf
        if buf is None:
            buf = self._dbuf = memoryview(bytearray(self._rsize + _SLACK))
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
            if not self._outbuf or self.closed:
                return
            try:
                sent = self.sock.send(self._outbuf)
            except _WOULD_BLOCK:
                return
            except OSError:
                self._fail_locked("send failed")
                return
            del self._outbuf[:sent]
            if not self._outbuf:
                self.core.set_transport_paused(False)
                self._drained.notify_all()
                self.writable_locked()

    def writable_locked(self):
        """Hook: the socket has taken all queued output."""

    def _fail_locked(self, reason, linger=False):
        self.closed = True
        if linger:
            _linger_close(self.sock)
        else:
            try:
                self.sock.close()
            except OSError:
                pass
        events = self.core.connection_lost(reason)
        if events:
            self.dispatch(events)
        self._drained.notify_all()
        self._wake()
        self.lost_locked()

    def _lost(self, reason):
        with self.lock:
            if not self.closed:
                self._fail_locked(reason)

    def _shutdown_locked(self):
        # the core closed the connection (GOAWAY with an error): send what is
        # left, best effort, then close
        if self._outbuf:
            try:
                self.sock.send(self._outbuf)
            except OSError:
                pass
        self._fail_locked("connection closed")

    def close(self):
        """Send what is pending (best effort) and close the socket."""
        with self.lock:
            if self.closed:
                return
            self.flush_locked()
            if self._outbuf:
                try:
                    self.sock.setblocking(True)
                    self.sock.settimeout(1.0)
                    self.sock.sendall(self._outbuf)
                except OSError:
                    pass
            self._fail_locked("connection closed locally", linger=True)

    # -- hooks for the owners ---------------------------------------------------------

    def dispatch(self, events):
        raise NotImplementedError

    def lost_locked(self):
        """Hook: the connection is gone (called with the lock held)."""


def _linger_close(sock, timeout=1.0):
    """Close after the peer has read what we sent: half-close, then discard
    what it still sends until it closes too (or `timeout` passes). Closing
    with unread input makes the kernel reset the connection, and a reset
    can destroy our last frames (a GOAWAY) before the peer reads them."""
    try:
        sock.shutdown(socket.SHUT_WR)
    except OSError:
        sock.close()
        return

    def drain():
        deadline = monotonic() + timeout
        try:
            sock.setblocking(True)
            while True:
                remaining = deadline - monotonic()
                if remaining <= 0:
                    break
                sock.settimeout(remaining)
                if not sock.recv(_RECV_MIN):
                    break
        except OSError:
            pass
        finally:
            sock.close()

    threading.Thread(target=drain, name="grpcpy-linger", daemon=True).start()


def _format_peer(sock):
    try:
        addr = sock.getpeername()
    except OSError:
        addr = None
    return format_peer(sock.family, addr)
