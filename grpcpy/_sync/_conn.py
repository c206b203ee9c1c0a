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

No protocol rule lives here.
"""
import logging
import select
import socket
import ssl
import threading
import time

_LOGGER = logging.getLogger("grpcpy.sync")
_INF = float("inf")
_RECV_SIZE = 256 * 1024
# "try again later" from a plain or a TLS socket
_TLS_READ_BUDGET = 1 << 20
_WOULD_BLOCK = (BlockingIOError, InterruptedError, ssl.SSLWantReadError, ssl.SSLWantWriteError)
# Output queued beyond this makes writing threads wait for the socket.
HIGH_WATER = 1 << 20

monotonic = time.monotonic


class SyncConnection:
    """Drives one sans-IO core over a connected socket."""

    def __init__(self, core, sock, name="grpcpy-io"):
        self.core = core
        self.sock = sock
        self.lock = threading.Lock()
        self.closed = False
        self.peer = format_peer(sock)
        self._tls = isinstance(sock, ssl.SSLSocket)
        self._outbuf = bytearray()
        self._drained = threading.Condition(self.lock)
        self._wake_r, self._wake_w = socket.socketpair()
        self._wake_r.setblocking(False)
        self._wake_w.setblocking(False)
        self._sleep_until = _INF
        self._thread = threading.Thread(target=self._run, name=name, daemon=True)
        sock.setblocking(False)
        if sock.family in (socket.AF_INET, socket.AF_INET6):
            try:
                sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
            except OSError:
                pass

    def start(self):
        with self.lock:
            self.core.initiate(monotonic())
            self.flush_locked()
        self._thread.start()

    # -- called with self.lock held --------------------------------------------

    def flush_locked(self):
        """Send what the core produced. Never blocks."""
        out = self.core.data_to_send()
        if self.closed:
            return
        if out:
            if self._outbuf:
                self._outbuf += out
            else:
                try:
                    sent = self.sock.send(out)
                except _WOULD_BLOCK:
                    sent = 0
                except OSError:
                    self._fail_locked("send failed")
                    return
                if sent < len(out):
                    self._outbuf += memoryview(out)[sent:]
                    self.core.write_paused = True
                    self._wake()
        when = self.core.next_timer()
        if when < self._sleep_until:
            self._wake()

    def after_action_locked(self):
        """After an application action: dispatch events it caused, send."""
        events = self.core.take_events()
        if events:
            self.dispatch(events)
        self.flush_locked()

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
                if when == _INF:
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
                            data = sock.recv(_RECV_SIZE)
                            if data and self._tls:
                                data = self._read_more_tls(data)
                        except _WOULD_BLOCK:
                            data = None
                        except OSError as exc:
                            self._lost("connection lost: %s" % (exc,))
                            return
                        if data == b"":
                            self._lost("connection closed by peer")
                            return
                    if ev & select.POLLOUT:
                        self._drain()
                with self.lock:
                    if self.closed:
                        return
                    now = monotonic()
                    if data:
                        events = self.core.receive_data(data, now)
                        if events:
                            self.dispatch(events)
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

    def _read_more_tls(self, data):
        """A TLS recv returns one record (16 KiB at most); read on until
        the socket is empty (bounded), so a large message is handled in a
        few passes, not one per record. This also takes the decrypted bytes
        OpenSSL holds, which poll() cannot see."""
        parts = [data]
        total = len(data)
        sock = self.sock
        while total < _TLS_READ_BUDGET:
            try:
                more = sock.recv(_RECV_SIZE)
            except _WOULD_BLOCK:
                break
            if not more:
                break
            parts.append(more)
            total += len(more)
        return b"".join(parts) if len(parts) > 1 else data

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
                self.core.write_paused = False
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
                if not sock.recv(_RECV_SIZE):
                    break
        except OSError:
            pass
        finally:
            sock.close()

    threading.Thread(target=drain, name="grpcpy-linger", daemon=True).start()


def format_peer(sock):
    try:
        addr = sock.getpeername()
    except OSError:
        return "unknown"
    if sock.family == socket.AF_INET:
        return "ipv4:%s:%d" % (addr[0], addr[1])
    if sock.family == socket.AF_INET6:
        return "ipv6:%%5B%s%%5D:%d" % (addr[0], addr[1])
    return "unix:%s" % (addr or "")

