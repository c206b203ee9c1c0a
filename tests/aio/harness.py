"""Shared helpers: the two implementations, a raw-bytes test service built
from generic handlers, and a runner for a chosen event loop."""
import asyncio
import contextlib
import socket
import types

import grpc
import grpc.aio

import grpcpy
import grpcpy.aio

IMPLS = {
    "grpcio": types.SimpleNamespace(name="grpcio", aio=grpc.aio, mod=grpc),
    "grpcpy": types.SimpleNamespace(name="grpcpy", aio=grpcpy.aio, mod=grpcpy),
}
GRPCIO = IMPLS["grpcio"]
RPC_ERRORS = (grpc.RpcError, grpcpy.RpcError)
SERVICE = "t.S"

LOOP_KIND = {"value": "uvloop"}


def _loop_factory(kind):
    if kind == "uvloop":
        import uvloop
        return uvloop.new_event_loop
    return asyncio.SelectorEventLoop


def run(coro, timeout=30):
    """Run a scenario on the loop kind the current test asked for."""
    with asyncio.Runner(loop_factory=_loop_factory(LOOP_KIND["value"])) as runner:
        return runner.run(asyncio.wait_for(coro, timeout))


def has_ipv6_loopback():
    try:
        with socket.socket(socket.AF_INET6, socket.SOCK_STREAM) as s:
            s.bind(("::1", 0))
        return True
    except OSError:
        return False


HAS_IPV6 = has_ipv6_loopback()

_FACTORIES = {
    "uu": "unary_unary_rpc_method_handler",
    "us": "unary_stream_rpc_method_handler",
    "su": "stream_unary_rpc_method_handler",
    "ss": "stream_stream_rpc_method_handler",
}


def generic_handler(mod, table):
    """table: {method name: (kind, behaviour)}; kind is uu/us/su/ss. The
    messages are bytes (no serializers)."""
    handlers = {name: getattr(mod, _FACTORIES[kind])(fn) for name, (kind, fn) in table.items()}
    return mod.method_handlers_generic_handler(SERVICE, handlers)


def method(channel, kind, name):
    factory = {"uu": channel.unary_unary, "us": channel.unary_stream,
               "su": channel.stream_unary, "ss": channel.stream_stream}[kind]
    return factory("/%s/%s" % (SERVICE, name))


@contextlib.asynccontextmanager
async def serving(impl, table, address="127.0.0.1:0", client_target=None, channel_impl=None,
                  channel_options=None, **server_kwargs):
    """A server of `impl` with the table's handlers, and a channel to it of
    `channel_impl` (grpcio unless told). client_target: a format string with
    {port}."""
    server = impl.aio.server(**server_kwargs)
    server.add_generic_rpc_handlers((generic_handler(impl.mod, table),))
    port = server.add_insecure_port(address)
    await server.start()
    client = channel_impl or GRPCIO
    target = (client_target or "127.0.0.1:{port}").format(port=port)
    channel = client.aio.insecure_channel(target, options=channel_options)
    try:
        yield types.SimpleNamespace(server=server, port=port, channel=channel,
                                    call=lambda kind, name: method(channel, kind, name))
    finally:
        await channel.close()
        await server.stop(None)


async def echo(request, context):
    return request


ECHO = {"Echo": ("uu", echo)}


async def until(predicate, timeout=5.0):
    """Wait (polling briefly) until predicate() is true."""
    loop = asyncio.get_running_loop()
    end = loop.time() + timeout
    while not predicate():
        if loop.time() > end:
            raise AssertionError("condition not reached in %.1fs" % timeout)
        await asyncio.sleep(0.005)


async def raw_h2_call(port, path, messages, headers=(), host="127.0.0.1"):
    """One gRPC call over a bare HTTP/2 connection (the h2 package), so a
    test can see the wire: returns (response headers, [(compressed flag,
    payload)], trailers)."""
    import h2.config
    import h2.connection
    import h2.events

    reader, writer = await asyncio.open_connection(host, port)
    conn = h2.connection.H2Connection(h2.config.H2Configuration(client_side=True, header_encoding="utf-8"))
    conn.initiate_connection()
    stream = conn.get_next_available_stream_id()
    conn.send_headers(stream, [(":method", "POST"), (":scheme", "http"), (":path", path),
                               (":authority", "%s:%d" % (host, port)), ("te", "trailers"),
                               ("content-type", "application/grpc")] + list(headers))
    body = b"".join(b"\0" + len(m).to_bytes(4, "big") + m for m in messages)
    conn.send_data(stream, body, end_stream=True)
    writer.write(conn.data_to_send())
    response_headers, data, trailers = None, bytearray(), None
    try:
        ended = False
        while not ended:
            chunk = await reader.read(65536)
            if not chunk:
                break
            for event in conn.receive_data(chunk):
                if isinstance(event, h2.events.ResponseReceived):
                    response_headers = dict(event.headers)
                elif isinstance(event, h2.events.DataReceived):
                    data += event.data
                    conn.acknowledge_received_data(event.flow_controlled_length, event.stream_id)
                elif isinstance(event, h2.events.TrailersReceived):
                    trailers = dict(event.headers)
                elif isinstance(event, (h2.events.StreamEnded, h2.events.StreamReset)):
                    ended = True
            writer.write(conn.data_to_send())
    finally:
        writer.close()
    frames = []
    while data:
        flag, length = data[0], int.from_bytes(data[1:5], "big")
        frames.append((flag, bytes(data[5:5 + length])))
        del data[:5 + length]
    return response_headers, frames, trailers
