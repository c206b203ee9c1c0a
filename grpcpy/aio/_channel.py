"""grpcpy.aio.Channel: the asyncio channel, compatible with grpc.aio.Channel.

The channel performs what the sans-IO channel plane (grpcpy._channel_plane)
asks for - DNS lookups through the loop's resolver, connects, timers - and
reports the results back. Which address to use, when to retry and what the
connectivity state is are the plane's decisions. Calls are started on the
connection the plane picks; while none is ready they wait here (or fail fast
with UNAVAILABLE in TRANSIENT_FAILURE unless wait_for_ready).
"""
import asyncio
import collections
import socket
import ssl

from grpcpy import _cext, _credentials, _types
from grpcpy import _channel_plane as plane_mod
from grpcpy._options import ChannelOptions
from grpcpy.aio._base import UsageError
from grpcpy.aio._call import (StreamStreamMultiCallable, StreamUnaryMultiCallable, UnaryStreamMultiCallable,
                              UnaryUnaryMultiCallable)
from grpcpy._rpc.events import dispatch_client
from grpcpy.aio._conn import AioConnection

_INF = float("inf")
_STATES = list(_types.ChannelConnectivity)


class _ClientProtocol(AioConnection):
    def __init__(self, channel, sub_id):
        opts = channel._options
        core = _cext.ClientConnection(channel._authority.encode("ascii"), channel._scheme.encode("ascii"),
                                      opts.h2_config(), opts.max_receive_message_length,
                                      opts.max_send_message_length, opts.user_agent)
        super().__init__(core, channel._loop)
        self.channel = channel
        self.sub_id = sub_id
        self._reported = False
        # set when the server's preface arrives, failed if the connection
        # ends first: only then is the connection established
        self.handshake = channel._loop.create_future()
        self.call_refusal = None     # (status, details) every call on it fails with

    dispatch = dispatch_client

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
            self.channel._subchannel_lost(self)


class Channel:
    """grpc.aio.Channel."""

    def __init__(self, target, options=None, credentials=None, compression=None, interceptors=None):
        try:
            self._loop = asyncio.get_running_loop()
        except RuntimeError:
            self._loop = asyncio.get_event_loop_policy().get_event_loop()
        self._options = ChannelOptions(options, compression)
        self._target = plane_mod.parse_target(target)
        self._plane = plane_mod.ChannelPlane(self._target, self._options.raw)
        self._connections = {}          # sub_id -> _ClientProtocol
        self._pending_io = {}           # sub_id -> connect task
        self._queue = collections.deque()
        self._timer = None
        self._timer_at = _INF
        self._state_waiters = []
        self._closed = False
        self._calls = set()        # calls not yet ended
        self._interceptors = list(interceptors or ())
        if self._interceptors:
            from grpcpy.aio._interceptor import kind_of
            for interceptor in self._interceptors:
                kind_of(interceptor)   # ValueError for an object that intercepts nothing
        self._credentials = credentials
        self._has_call_credentials = bool(credentials is not None and credentials._call_credentials)
        self._tls = credentials is not None and credentials.is_tls
        self._scheme = "https" if self._tls else "http"
        self._authority, self._server_hostname, self._check_call_host = _credentials.channel_names(
            self._target.authority, self._options.default_authority,
            self._options.raw.get("grpc.ssl_target_name_override"), self._tls)

    # -- multicallables ------------------------------------------------------

    def unary_unary(self, method, request_serializer=None, response_deserializer=None, _registered_method=False):
        return UnaryUnaryMultiCallable(self, method, request_serializer, response_deserializer)

    def unary_stream(self, method, request_serializer=None, response_deserializer=None, _registered_method=False):
        return UnaryStreamMultiCallable(self, method, request_serializer, response_deserializer)

    def stream_unary(self, method, request_serializer=None, response_deserializer=None, _registered_method=False):
        return StreamUnaryMultiCallable(self, method, request_serializer, response_deserializer)

    def stream_stream(self, method, request_serializer=None, response_deserializer=None, _registered_method=False):
        return StreamStreamMultiCallable(self, method, request_serializer, response_deserializer)

    # -- connectivity ------------------------------------------------------------

    def get_state(self, try_to_connect=False):
        if try_to_connect and not self._closed:
            self._plane.request_connection(self._loop.time())
            self._drive()
        return _STATES[self._plane.state]

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
        self._closed = True
        while self._queue:
            self._queue.popleft()._fail_start(_types.StatusCode.CANCELLED, "Channel closed!")
        if grace:
            pending = [call._end_future() for call in self._calls if not call.done()]
            if pending:
                await asyncio.wait(pending, timeout=grace)
        for call in list(self._calls):
            if not call.done():
                call.cancel()
        self._plane.shutdown()
        self._drive()
        for task in list(self._pending_io.values()):
            task.cancel()
        for proto in list(self._connections.values()):
            proto.core.close_connection()
            proto.close()
        self._connections.clear()
        if self._timer is not None:
            self._timer.cancel()
        self._wake_state_waiters()

    def __del__(self):
        if not getattr(self, "_closed", True):
            for proto in list(getattr(self, "_connections", {}).values()):
                try:
                    proto.close()
                except Exception:
                    pass

    # -- used by calls ------------------------------------------------------------------

    def _track(self, call):
        if not call._ended:
            self._calls.add(call)

    def _untrack(self, call):
        self._calls.discard(call)

    def _pick_now(self):
        sub = self._plane.pick()
        if sub is None:
            return None
        proto = self._connections.get(sub)
        if proto is None or proto.closed:
            return None
        return proto

    def _enqueue(self, call):
        if self._closed:
            call._fail_start(_types.StatusCode.CANCELLED, "Channel closed!")
            return
        self._plane.request_connection(self._loop.time())
        self._drive()
        proto = self._pick_now()
        if proto is not None:
            call._start_on(proto)
            return
        if self._plane.state == plane_mod.TRANSIENT_FAILURE and not call._wait_for_ready:
            call._fail_start(_types.StatusCode.UNAVAILABLE, self._plane.last_error or "failed to connect")
            return
        self._queue.append(call)
        if call._deadline is not None:
            self._loop.call_at(call._deadline, self._queued_deadline, call)

    def _queued_deadline(self, call):
        if call in self._queue:
            self._queue.remove(call)
            call._fail_start(_types.StatusCode.DEADLINE_EXCEEDED, "Deadline Exceeded")

    def _start_queued(self):
        while self._queue:
            proto = self._pick_now()
            if proto is None:
                break
            call = self._queue.popleft()
            call._start_on(proto)
        if self._queue and self._plane.state == plane_mod.TRANSIENT_FAILURE:
            keep = collections.deque()
            while self._queue:
                call = self._queue.popleft()
                if call._wait_for_ready:
                    keep.append(call)
                else:
                    call._fail_start(_types.StatusCode.UNAVAILABLE, self._plane.last_error or "failed to connect")
            self._queue = keep

    # -- the plane's actions ----------------------------------------------------------

    def _drive(self):
        """Perform the plane's actions, react to its state, re-arm its timer."""
        plane = self._plane
        for action in plane.take_actions():
            kind = action[0]
            if kind == "resolve":
                self._spawn(("resolve",), self._resolve(action[1], action[2]))
            elif kind == "connect":
                _, sub_id, address, deadline = action
                self._spawn(sub_id, self._connect(sub_id, address, deadline))
            elif kind == "close":
                sub_id = action[1]
                task = self._pending_io.pop(sub_id, None)
                if task is not None:
                    task.cancel()
                proto = self._connections.pop(sub_id, None)
                if proto is not None:
                    proto._reported = True
                    proto.close()
        if plane.take_state_changes():
            self._wake_state_waiters()
        if self._queue:
            self._start_queued()
        when = plane.next_timer()
        if when < self._timer_at:
            if self._timer is not None:
                self._timer.cancel()
            self._timer_at = when
            self._timer = self._loop.call_at(when, self._on_timer)

    def _on_timer(self):
        self._timer = None
        self._timer_at = _INF
        self._plane.timer(self._loop.time())
        self._drive()

    def _wake_state_waiters(self):
        waiters, self._state_waiters = self._state_waiters, []
        for waiter in waiters:
            if not waiter.done():
                waiter.set_result(None)

    def _spawn(self, key, coro):
        task = self._loop.create_task(coro)
        self._pending_io[key] = task
        task.add_done_callback(lambda t, key=key: self._pending_io.pop(key, None) if self._pending_io.get(key) is t else None)

    async def _resolve(self, host, port):
        try:
            infos = await self._loop.getaddrinfo(host, port, type=socket.SOCK_STREAM)
        except (OSError, UnicodeError) as exc:
            if not self._closed:
                self._plane.resolution_failed(self._loop.time(), "DNS resolution failed for %s:%s: %s" % (host, port, exc))
                self._drive()
            return
        addresses = []
        for family, _, _, _, sockaddr in infos:
            if family == socket.AF_INET:
                addr = plane_mod.Address("inet", sockaddr[0], sockaddr[1])
            elif family == socket.AF_INET6:
                addr = plane_mod.Address("inet6", sockaddr[0], sockaddr[1])
            else:
                continue
            if addr not in addresses:
                addresses.append(addr)
        if not self._closed:
            self._plane.resolved(self._loop.time(), addresses)
            self._drive()

    async def _connect(self, sub_id, address, deadline):
        loop = self._loop
        factory = lambda: _ClientProtocol(self, sub_id)  # noqa: E731
        try:
            timeout = max(0.0, deadline - loop.time())
            refusal = _credentials.local_refusal(self._credentials, address)
            if refusal:
                raise OSError(refusal)
            tls = {}
            if self._tls:
                tls = {"ssl": self._credentials.client_context(), "server_hostname": self._server_hostname,
                       "ssl_handshake_timeout": max(timeout, 0.001)}
            if address.family == "unix" and address.path.startswith("\0"):
                coro = _open_abstract(loop, factory, address.path, tls)
            elif address.family == "unix":
                coro = loop.create_unix_connection(factory, address.path, **tls)
            else:
                coro = loop.create_connection(factory, address.host, address.port, **tls)
            transport, proto = await asyncio.wait_for(coro, timeout)
            if self._tls:
                ssl_object = transport.get_extra_info("ssl_object")
                problem = _credentials.check_alpn(ssl_object)
                if problem:
                    transport.close()
                    raise OSError(problem)
                if self._check_call_host:
                    proto.call_refusal = _credentials.call_host_refusal(self._authority, ssl_object)
            try:
                await asyncio.wait_for(asyncio.shield(proto.handshake), max(0.0, deadline - loop.time()))
            except (ConnectionError, asyncio.TimeoutError):
                proto._reported = True
                transport.abort()
                raise OSError("no HTTP/2 preface from the server (is it a gRPC server on this port, "
                              "with the same transport security?)") from None
        except asyncio.CancelledError:
            raise
        except (OSError, asyncio.TimeoutError, ssl.SSLError) as exc:
            if not self._closed:
                self._plane.connect_failed(loop.time(), sub_id, "failed to connect to %s: %s" % (address, exc or "timeout"))
                self._drive()
            return
        if self._closed:
            proto.close()
            return
        self._connections[sub_id] = proto
        self._plane.connect_succeeded(loop.time(), sub_id)
        self._drive()

    def _subchannel_lost(self, proto):
        if self._connections.get(proto.sub_id) is proto:
            del self._connections[proto.sub_id]
            if not self._closed:
                self._plane.connection_lost(self._loop.time(), proto.sub_id)
                self._drive()


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
