"""grpcpy.aio.Channel: the asyncio channel, compatible with grpc.aio.Channel.

The channel performs the I/O its ChannelDriver (grpcpy._channel.driver) asks
for - DNS lookups (grpcpy._channel.dns, in the loop's executor), connects, the timer - and
reports the results back. Which address to use, when to retry, what the
connectivity state is and what happens to a call that finds no ready
connection are the driver's and its plane's decisions. Calls are started on
the connection the driver picks, or queued in the driver.
"""
import asyncio
import os
import socket
import ssl
import weakref

from grpcpy import _types
from grpcpy._channel.driver import NO_PREFACE, ChannelDriver
from grpcpy.aio._base import UsageError
from grpcpy.aio._call import (StreamStreamMultiCallable, StreamUnaryMultiCallable, UnaryStreamMultiCallable,
                              UnaryUnaryMultiCallable)
from grpcpy._rpc.client import ChannelMethods
from grpcpy._rpc.events import dispatch_client
from grpcpy.aio._conn import AioConnection



# what a call on an aio channel inherited across fork() fails with: the
# asyncio loop and transports are the parent's
FORKED = ("this grpcpy.aio channel was created in another process (before fork()); an asyncio channel cannot "
          "be used across fork: create a new channel in this process")


class _ClientProtocol(AioConnection):
    def __init__(self, channel, sub_id):
        super().__init__(channel._new_core(), channel._loop)
        # weak: the loop holds the transport and the transport this
        # protocol, so a strong link would keep a channel dropped without
        # close() alive with its connection forever (grpc.aio closes such
        # a channel when it is collected; so does Channel.__del__)
        self._channel = weakref.ref(channel)
        self.sub_id = sub_id
        self._reported = False
        # set when the server's preface arrives, failed if the connection
        # ends first: only then is the connection established
        self.handshake = channel._loop.create_future()
        self.call_refusal = None     # (status, details) every call on it fails with

    dispatch = dispatch_client

    @property
    def channel(self):
        """The channel, or None once it has been collected."""
        return self._channel()

    def handshake_done(self):
        if not self.handshake.done():
            self.handshake.set_result(None)

    def connection_lost(self, exc):
        if not self.handshake.done():
            self.handshake.set_exception(ConnectionError("connection closed before the HTTP/2 preface"))
            self.handshake.exception()   # retrieved: no 'never retrieved' warning
        super().connection_lost(exc)
        self.report_lost()

    def report_lost(self):
        if not self._reported:
            self._reported = True
            channel = self._channel()
            if channel is not None:
                channel._subchannel_lost(self)


class Channel(ChannelMethods, ChannelDriver):
    """grpc.aio.Channel."""

    def __init__(self, target, options=None, credentials=None, compression=None, interceptors=None):
        try:
            self._loop = asyncio.get_running_loop()
        except RuntimeError:
            self._loop = asyncio.get_event_loop_policy().get_event_loop()
        self._init_driver(target, options, credentials, compression)
        self._pid = os.getpid()         # a child after fork() must not use it
        self._pending_io = {}           # sub_id -> connect task, ('resolve',) -> lookup task
        self._timer = None
        self._state_waiters = []
        self._calls = set()        # calls not yet ended
        self._interceptors = list(interceptors or ())
        if self._interceptors:
            from grpcpy.aio._interceptor import kind_of
            for interceptor in self._interceptors:
                kind_of(interceptor)   # ValueError for an object that intercepts nothing

    # -- multicallables ------------------------------------------------------

    # (the factories themselves: grpcpy._rpc.client.ChannelMethods)
    _unary_unary = UnaryUnaryMultiCallable
    _unary_stream = UnaryStreamMultiCallable
    _stream_unary = StreamUnaryMultiCallable
    _stream_stream = StreamStreamMultiCallable

    # -- connectivity ------------------------------------------------------------

    def get_state(self, try_to_connect=False):
        if try_to_connect:
            self._request_connection(self._loop.time())
        return self._connectivity()

    async def wait_for_state_change(self, last_observed_state):
        while self.get_state() == last_observed_state:
            waiter = self._loop.create_future()
            self._state_waiters.append(waiter)
            await waiter

    async def channel_ready(self):
        state = self.get_state(try_to_connect=True)
        while state != _types.ChannelConnectivity.READY:
            if state == _types.ChannelConnectivity.SHUTDOWN:
                raise UsageError("the channel is closed")
            await self.wait_for_state_change(state)
            state = self.get_state(try_to_connect=True)

    # -- life cycle -----------------------------------------------------------------

    async def __aenter__(self):
        return self

    async def __aexit__(self, exc_type, exc, tb):
        await self._close(None)

    async def close(self, grace=None):
        await self._close(grace)

    async def _close(self, grace):
        if self._closed:
            return
        if self._pid != os.getpid():
            self._forget_inherited()
            return
        self._close_queue()
        if grace:
            pending = [call._end_future() for call in self._calls if not call.done()]
            if pending:
                await asyncio.wait(pending, timeout=grace)
        for call in list(self._calls):
            if not call.done():
                call.cancel()
        self._shutdown(self._loop.time())
        for task in list(self._pending_io.values()):
            task.cancel()
        if self._timer is not None:
            self._timer.cancel()

    def _forget_inherited(self):
        """In a child after fork(): drop the parent's connections and calls
        without writing anything on them (they are the parent's)."""
        self._closed = True
        self._connections = {}
        self._calls = set()
        self._queue.clear()

    def __del__(self):
        if getattr(self, "_pid", None) != os.getpid():
            return
        if not getattr(self, "_closed", True):
            for proto in list(getattr(self, "_connections", {}).values()):
                try:
                    proto.close()
                except Exception:
                    pass

    # -- used by calls (_pick_now is the driver's) ---------------------------------------

    def _track(self, call):
        if not call._ended:
            self._calls.add(call)

    def _untrack(self, call):
        self._calls.discard(call)

    def _pick_now(self, call=None):
        if self._pid != os.getpid():
            return None
        return ChannelDriver._pick_now(self, call)

    def _enqueue(self, call):
        if self._pid != os.getpid():
            call._fail_start(_types.StatusCode.UNAVAILABLE, FORKED)
            return
        self._submit(call, self._loop.time())

    # -- the driver's hooks ----------------------------------------------------------------

    def _io_resolve(self, host, port):
        self._spawn(("resolve",), self._resolve(host, port))

    def _io_connect(self, sub_id, address, deadline):
        self._spawn(sub_id, self._connect(sub_id, address, deadline))

    def _io_close(self, sub_id, proto):
        task = self._pending_io.pop(sub_id, None)
        if task is not None:
            task.cancel()
        if proto is not None:
            proto._reported = True
            proto.close()

    def _io_post(self):
        loop = self._loop
        try:
            here = asyncio.get_running_loop() is loop
        except RuntimeError:
            here = False
        if here:
            loop.call_soon(_posted, weakref.ref(self))
        else:
            try:
                loop.call_soon_threadsafe(_posted, weakref.ref(self))
            except RuntimeError:        # the loop is closed
                pass

    def _io_start_stream(self, call, proto):
        call._start_on(proto)

    def _io_cancel_stream(self, call):
        call._cancel()

    def _clock(self):
        return self._loop.time()

    def _io_arm_timer(self, when):
        if self._timer is not None:
            self._timer.cancel()
        self._timer = self._loop.call_at(when, _timer_fired, weakref.ref(self), when)

    def _on_state_change(self, state):
        waiters, self._state_waiters = self._state_waiters, []
        for waiter in waiters:
            if not waiter.done():
                waiter.set_result(None)

    # -- I/O ----------------------------------------------------------------------------------

    def _on_timer(self, when):
        self._timer = None
        self._timer_fired(self._loop.time(), when)

    def _spawn(self, key, coro):
        task = self._loop.create_task(coro)
        self._pending_io[key] = task
        task.add_done_callback(lambda t, key=key: self._pending_io.pop(key, None) if self._pending_io.get(key) is t else None)

    async def _resolve(self, host, port):
        lookup, args = self._lookup_call(host, port)
        try:
            answer = await self._loop.run_in_executor(None, lookup, *args)
        except (OSError, UnicodeError) as exc:
            self._lookup_failed(self._loop.time(), host, port, exc)
            return
        self._lookup_done(self._loop.time(), *answer)

    async def _connect(self, sub_id, address, deadline):
        loop = self._loop
        factory = lambda: _ClientProtocol(self, sub_id)  # noqa: E731
        transport = None
        try:
            timeout = max(0.0, deadline - loop.time())
            tls = {}
            if self._tls:
                tls = {"ssl": self._credentials.client_context(), "server_hostname": self._server_hostname,
                       "ssl_handshake_timeout": max(timeout, 0.001)}
            if address.family == "memory":
                # grpcpy.testing's in-memory server: no socket to connect
                from grpcpy.testing import _transport
                coro = _transport.connect_aio(loop, factory, address.path)
            elif address.family == "unix" and address.path.startswith("\0"):
                coro = _open_abstract(loop, factory, address.path, tls)
            elif address.family == "unix":
                coro = loop.create_unix_connection(factory, address.path, **tls)
            else:
                coro = loop.create_connection(factory, address.host, address.port, **tls)
            transport, proto = await asyncio.wait_for(coro, timeout)
            if self._tls:
                try:
                    proto.call_refusal = self._tls_verdict(transport.get_extra_info("ssl_object"))
                except OSError:
                    transport.close()
                    raise
            try:
                await asyncio.wait_for(asyncio.shield(proto.handshake), max(0.0, deadline - loop.time()))
            except (ConnectionError, asyncio.TimeoutError):
                proto._reported = True
                transport.abort()
                raise OSError(NO_PREFACE) from None
        except asyncio.CancelledError:
            # given up (another attempt won, or the channel closed): the
            # socket goes now, not at its deadline
            if transport is not None:
                proto._reported = True
                transport.abort()
            raise
        except (OSError, asyncio.TimeoutError, ssl.SSLError) as exc:
            self._connect_failed(loop.time(), sub_id, address, exc)
            return
        if not self._connect_done(loop.time(), sub_id, proto):
            proto.close()

    def _subchannel_lost(self, proto):
        self._connection_lost(self._loop.time(), proto)


def _posted(ref):
    channel = ref()
    if channel is not None:
        channel._run_posted(channel._loop.time())


def _timer_fired(channel_ref, when):
    # the loop's timer holds the channel weakly (see _ClientProtocol)
    channel = channel_ref()
    if channel is not None:
        channel._on_timer(when)


async def _open_abstract(loop, factory, path, tls):
    """create_unix_connection to a Linux abstract socket name ('\\0name').
    uvloop's cannot reach those by name (EINVAL), so the socket is connected
    here and handed over."""
    sock = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
    try:
        sock.setblocking(False)
        await loop.sock_connect(sock, path)
    except BaseException:
        sock.close()
        raise
    return await loop.create_unix_connection(factory, sock=sock, **tls)


def insecure_channel(target, options=None, compression=None, interceptors=None):
    """A grpcpy.aio channel without transport security (grpc.aio.insecure_channel)."""
    return Channel(target, options, None, compression, interceptors)


def secure_channel(target, credentials, options=None, compression=None, interceptors=None):
    """A grpcpy.aio channel with channel credentials (grpc.aio.secure_channel)."""
    if credentials is None:
        raise TypeError("secure_channel needs channel credentials")
    return Channel(target, options, credentials, compression, interceptors)
