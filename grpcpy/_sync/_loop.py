"""The I/O loop of the threaded facade: one thread per process that waits on
every socket the facade owns.

One selector (selectors.DefaultSelector: epoll on Linux) holds the server's
listening sockets, every client and server connection, the connects and TLS
handshakes in progress, and a socket pair that other threads use to wake the
loop. A heap holds the timers (each connection's next core timer, connect and
handshake deadlines, the channels' own timers). Application threads never
wait for the loop to send: they write under the connection's lock and the
loop only finishes what the kernel did not take (see _conn.py).

Only the loop thread touches the selector; other threads ask it to
(call_soon) and wake it. Nothing here blocks outside the selector, so the
same code runs on greenlets when gevent has patched threading, selectors and
socket.

Fork: in the child the loop is forgotten (its thread does not exist there)
and a new one starts on first use. Every object registered with
`at_fork_child` (connections, listeners, handshakes) drops what it inherited
by closing its descriptors, writing nothing: the parent still owns those
sockets.
"""
import collections
import heapq
import itertools
import logging
import os
import select
import selectors
import socket
import threading
import time
import weakref

_LOGGER = logging.getLogger("grpcpy.sync")
_INF = float("inf")
READ = selectors.EVENT_READ
WRITE = selectors.EVENT_WRITE
monotonic = time.monotonic
get_ident = threading.get_ident

# Bytes the loop reads at most at a time. One buffer for the whole loop (the
# core copies what it keeps), so an idle connection holds no receive buffer.
RECV_MAX = 1 << 20
RECV_SLACK = 64 * 1024
_NOT_IN = ~getattr(select, "EPOLLIN", 0)
_NOT_OUT = ~getattr(select, "EPOLLOUT", 0)


def _epoll_events(events):
    return ((select.EPOLLIN if events & READ else 0) | (select.EPOLLOUT if events & WRITE else 0))


class Timer:
    """A timer of the loop; cancel() before it fires and it does not."""

    __slots__ = ("when", "fn", "args")

    def __init__(self, when, fn, args):
        self.when = when
        self.fn = fn
        self.args = args

    def cancel(self):
        self.fn = None
        self.args = None


class IOLoop:
    """The selector loop (see the module docstring). Handlers registered
    with `add` are objects with `fileno()` and `io_event(mask)`."""

    def __init__(self):
        # epoll itself where the standard selector is epoll's: the selectors
        # module's wrapper costs about a dozen Python calls per wake-up (key
        # lookups, a ceil, a list), a tenth of a small bidi message's
        # facade cost. Anything else (gevent's patched selectors, another
        # OS) goes through selectors.DefaultSelector.
        epoll = getattr(select, "epoll", None)
        if epoll is not None and selectors.DefaultSelector is getattr(selectors, "EpollSelector", None):
            self._selector = epoll()
            self._epoll = True
        else:
            self._selector = selectors.DefaultSelector()
            self._epoll = False
        self._handlers = {}                   # fd -> handler (epoll only)
        self._lock = threading.Lock()         # the heap and _sleep_until
        self._heap = []
        self._seq = itertools.count()
        self._soon = collections.deque()
        self._sleep_until = 0.0
        self._woken = False
        self._wake_r, self._wake_w = socket.socketpair()
        self._wake_r.setblocking(False)
        self._wake_w.setblocking(False)
        self._wake_fd = self._wake_r.fileno()
        self.add(None, READ, self._wake_fd)
        # the receive buffer every connection reads into (loop thread only)
        self.buffer = memoryview(bytearray(RECV_MAX + RECV_SLACK))
        self._thread = threading.Thread(target=self._run, name="grpcpy-io", daemon=True)
        self._ident = None
        self._started = threading.Event()
        self._thread.start()
        self._started.wait()

    # -- any thread ---------------------------------------------------------------------

    def in_loop(self):
        return get_ident() == self._ident

    def call_soon(self, fn, *args):
        """Run fn(*args) on the loop thread, soon (in order)."""
        self._soon.append((fn, args))
        if get_ident() != self._ident:
            self._wake()

    def call_at(self, when, fn, *args):
        """Run fn(*args) on the loop thread at monotonic time `when`."""
        timer = Timer(when, fn, args)
        with self._lock:
            heapq.heappush(self._heap, (when, next(self._seq), timer))
            wake = when < self._sleep_until
        if wake and get_ident() != self._ident:
            self._wake()
        return timer

    def _wake(self):
        if not self._woken:
            self._woken = True
            try:
                self._wake_w.send(b"\0")
            except OSError:
                pass

    # -- the loop thread ----------------------------------------------------------------------

    def add(self, handler, events, fd=None):
        try:
            if self._epoll:
                fd = handler.fileno() if fd is None else fd
                self._selector.register(fd, _epoll_events(events))
                self._handlers[fd] = handler
            else:
                self._selector.register(fd if handler is None else handler, events, handler)
        except (KeyError, ValueError, OSError):
            return False
        return True

    def modify(self, handler, events):
        try:
            if self._epoll:
                self._selector.modify(handler.fileno(), _epoll_events(events))
            else:
                self._selector.modify(handler, events, handler)
        except (KeyError, ValueError, OSError):
            pass

    def remove(self, handler):
        """Forget a handler (before its socket is closed)."""
        try:
            if self._epoll:
                fd = handler.fileno()
                if self._handlers.get(fd) is handler:
                    del self._handlers[fd]
                    self._selector.unregister(fd)
            else:
                self._selector.unregister(handler)
        except (KeyError, ValueError, OSError):
            pass

    def _poll_selector(self, timeout):
        return [(key.fd, key.data, mask) for key, mask in self._selector.select(timeout)]

    def _run(self):
        self._ident = get_ident()
        self._started.set()
        soon = self._soon
        heap = self._heap
        lock = self._lock
        epoll = self._epoll
        poll = self._selector.poll if epoll else self._poll_selector
        handlers = self._handlers
        wake_fd = self._wake_fd
        while True:
            while soon:
                fn, args = soon.popleft()
                try:
                    fn(*args)
                except Exception:  # the loop must never die
                    _LOGGER.exception("I/O loop callback failed")
            with lock:
                while heap and heap[0][2].fn is None:
                    heapq.heappop(heap)
                when = heap[0][0] if heap else _INF
                self._sleep_until = when
            if soon:
                timeout = 0
            elif when == _INF:
                timeout = -1 if epoll else None
            else:
                timeout = max(0.0, when - monotonic())
            try:
                ready = poll(timeout)
            except InterruptedError:
                ready = ()
            if epoll:
                for fd, ev in ready:
                    if fd == wake_fd:
                        self._drain_wake()
                        continue
                    handler = handlers.get(fd)
                    if handler is None:
                        continue
                    # as selectors reads epoll's bits: an error or hang-up
                    # wakes both directions, so the handler sees it
                    mask = READ if ev & _NOT_OUT else 0
                    if ev & _NOT_IN:
                        mask |= WRITE
                    try:
                        handler.io_event(mask)
                    except Exception:
                        _LOGGER.exception("I/O handler %r failed", handler)
            else:
                for fd, handler, mask in ready:
                    if handler is None:
                        self._drain_wake()
                        continue
                    try:
                        handler.io_event(mask)
                    except Exception:
                        _LOGGER.exception("I/O handler %r failed", handler)
            if heap:
                now = monotonic()
                if heap[0][0] > now:
                    continue
                due = []
                with lock:
                    while heap and heap[0][0] <= now:
                        due.append(heapq.heappop(heap)[2])
                for timer in due:
                    fn = timer.fn
                    if fn is not None:
                        args = timer.args
                        timer.fn = timer.args = None
                        try:
                            fn(*args)
                        except Exception:
                            _LOGGER.exception("I/O loop timer failed")

    def _drain_wake(self):
        try:
            while self._wake_r.recv(4096):
                pass
        except OSError:
            pass
        # cleared after draining: a wake sent meanwhile is either still in
        # the socket or finds its work done in this pass
        self._woken = False

    def _forget(self):
        """In a child after fork: close this loop's descriptors (the parent
        still uses the objects they refer to; closing writes nothing)."""
        for obj in (self._wake_r, self._wake_w, self._selector):
            try:
                obj.close()
            except (OSError, ValueError):
                pass


_loop = None
_loop_lock = threading.Lock()
# objects with after_fork_child(): what a child process must drop
_inherited = weakref.WeakSet()
# bumped in a child after fork: objects made before compare theirs
fork_generation = 0


def get_loop():
    """The process's I/O loop, started on first use."""
    loop = _loop
    if loop is None:
        loop = _start_loop()
    return loop


def _start_loop():
    global _loop
    with _loop_lock:
        if _loop is None:
            _loop = IOLoop()
        return _loop


def at_fork_child(obj):
    """Have obj.after_fork_child() called in a child process after fork."""
    _inherited.add(obj)


def forget_at_fork(obj):
    _inherited.discard(obj)


def _after_fork_child():
    global _loop, _loop_lock, _inherited, fork_generation
    fork_generation += 1
    old, _loop = _loop, None
    _loop_lock = threading.Lock()
    objects, _inherited = list(_inherited), weakref.WeakSet()
    for obj in objects:
        try:
            obj.after_fork_child()
        except Exception:
            _LOGGER.exception("dropping %r after fork failed", obj)
    if old is not None:
        old._forget()


def reinit_lock(lock):
    """A lock inherited across fork, released in the child (it may have been
    held by a thread that does not exist there)."""
    reinit = getattr(lock, "_at_fork_reinit", None)
    if reinit is not None:
        reinit()
        return lock
    return None


if hasattr(os, "register_at_fork"):
    os.register_at_fork(after_in_child=_after_fork_child)
