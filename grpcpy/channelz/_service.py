"""The Channelz service's answers, written once for both facades.

Everything here only reads: the registries of grpcpy._channelz, the
channels' and servers' live connections and the counters of their cores.
A sync server answers from a worker thread while the objects it reads belong
to other threads or event loops, so it copies containers before walking
them and reads each counter once (a figure may be a call behind, never
torn).

Paging follows the channelz spec and grpc-core: entities with ids from the
start id on, in id order, at most ``max_results`` of them (0 or less: 100),
and ``end`` set when none is left after them.
"""
import ipaddress
import socket
import ssl


from grpcpy import _channelz, _types
from grpcpy._protos import channelz_pb as pb

_PAGE = 100
_State = pb.ChannelConnectivityState
# the plane's states (grpcpy._channel.lb.base: IDLE 0 .. SHUTDOWN 4) as channelz's
_STATES = (_State.IDLE, _State.CONNECTING, _State.READY, _State.TRANSIENT_FAILURE, _State.SHUTDOWN)


class NotFound(Exception):
    """The asked-for entity does not exist (any more): NOT_FOUND."""


def _timestamp(ns, into):
    if ns:
        into.seconds, into.nanos = divmod(ns, 1_000_000_000)


def _page(table, start, max_results, wanted=None):
    """(ids in order from start, end) of the live entries of a weak table."""
    limit = max_results if max_results > 0 else _PAGE
    ids = sorted(i for i, obj in list(table.items()) if i >= start and (wanted is None or wanted(obj)))
    return ids[:limit], len(ids) <= limit


# -- channels and subchannels ----------------------------------------------------------------

def _live(channel):
    """The channel's live connections: {connection: subchannel Node or None}."""
    return dict(getattr(channel, "_channelz_live", {}))


def _channel_state(channel):
    if getattr(channel, "_closed", False):
        return _State.SHUTDOWN
    return _STATES[channel._plane.state]


def _target(channel):
    return channel._target.target


def _fill_data(data, node, cores, state, target):
    data.state.state = state
    data.target = target
    data.calls_started, data.calls_succeeded, data.calls_failed, last = node.figures(cores)
    _timestamp(last, data.last_call_started_timestamp)
    _timestamp(node.created_ns, data.trace.creation_timestamp)


def _channel_message(node):
    channel = node.obj
    if channel is None:
        raise NotFound("channel %d not found" % node.id)
    live = _live(channel)
    msg = pb.Channel()
    msg.ref.channel_id = node.id
    msg.ref.name = _target(channel)
    _fill_data(msg.data, node, [conn.core for conn in live], _channel_state(channel), msg.ref.name)
    for sub in _subchannels(channel):
        sub_node = _channelz.subchannel_node(sub, node)
        ref = msg.subchannel_ref.add()
        ref.subchannel_id = sub_node.id
        ref.name = str(sub.address)
    return msg


def _subchannels(channel):
    plane = channel._plane
    subs = list(plane._subchannels.values())
    seen = set(map(id, subs))
    for sub_node in _live(channel).values():     # a record the policy let go, its connection still open
        if sub_node is not None and id(sub_node.obj) not in seen:
            subs.append(sub_node.obj)
            seen.add(id(sub_node.obj))
    return subs


def _subchannel_message(node):
    sub = node.obj
    owner = node.owner
    channel = owner.obj if owner is not None else None
    if channel is None:
        raise NotFound("subchannel %d not found" % node.id)
    conns = [conn for conn, sub_node in _live(channel).items() if sub_node is node]
    msg = pb.Subchannel()
    msg.ref.subchannel_id = node.id
    msg.ref.name = str(sub.address)
    state = _State.SHUTDOWN if getattr(channel, "_closed", False) else _STATES[sub.state]
    _fill_data(msg.data, node, [conn.core for conn in conns], state, msg.ref.name)
    for conn in conns:
        if conn.closed:     # (its figures count until the channel retires it)
            continue
        ref = msg.socket_ref.add()
        ref.socket_id = _channelz.socket_id(conn)
        ref.name = conn.peer or ""
    return msg


def get_top_channels(request):
    ids, end = _page(_channelz.channels, request.start_channel_id, request.max_results,
                     lambda node: node.obj is not None)
    response = pb.GetTopChannelsResponse(end=end)
    for ident in ids:
        node = _channelz.channels.get(ident)
        if node is not None and node.obj is not None:
            response.channel.append(_channel_message(node))
    return response


def get_channel(request):
    node = _channelz.channels.get(request.channel_id)
    if node is None:
        raise NotFound("No channel with id %d" % request.channel_id)
    return pb.GetChannelResponse(channel=_channel_message(node))


def get_subchannel(request):
    node = _channelz.lookup(request.subchannel_id)
    if not isinstance(node, _channelz.Node) or node.kind != _channelz.SUBCHANNEL:
        raise NotFound("No subchannel with id %d" % request.subchannel_id)
    return pb.GetSubchannelResponse(subchannel=_subchannel_message(node))


# -- servers ---------------------------------------------------------------------------------

def _server_connections(server):
    return [conn for conn in list(server._connections) if not conn.closed]


def _listen_sockets(server):
    socks = getattr(server, "_listening", None)
    if socks is None:
        socks = [item[0] if isinstance(item, tuple) else item for item in list(server._sockets)]
    return [sock for sock in socks if sock.fileno() != -1]


def _server_message(node):
    server = node.obj
    if server is None:
        raise NotFound("server %d not found" % node.id)
    msg = pb.Server()
    msg.ref.server_id = node.id
    data = msg.data
    data.calls_started, data.calls_succeeded, data.calls_failed, last = node.figures(
        [conn.core for conn in _server_connections(server)])
    _timestamp(last, data.last_call_started_timestamp)
    _timestamp(node.created_ns, data.trace.creation_timestamp)
    for sock in _listen_sockets(server):
        ref = msg.listen_socket.add()
        ref.socket_id = _channelz.socket_id(sock)
        ref.name = _sockname(sock)
    return msg


def _sockname(sock):
    try:
        name = sock.getsockname()
    except OSError:
        return ""
    if isinstance(name, tuple):
        host = name[0]
        return "[%s]:%d" % (host, name[1]) if ":" in host else "%s:%d" % (host, name[1])
    return "unix:" + (name.decode() if isinstance(name, bytes) else name)


def get_servers(request):
    ids, end = _page(_channelz.servers, request.start_server_id, request.max_results,
                     lambda node: node.obj is not None)
    response = pb.GetServersResponse(end=end)
    for ident in ids:
        node = _channelz.servers.get(ident)
        if node is not None and node.obj is not None:
            response.server.append(_server_message(node))
    return response


def get_server(request):
    node = _channelz.servers.get(request.server_id)
    if node is None or node.obj is None:
        raise NotFound("No server with id %d" % request.server_id)
    return pb.GetServerResponse(server=_server_message(node))


def get_server_sockets(request):
    node = _channelz.servers.get(request.server_id)
    server = node.obj if node is not None else None
    if server is None:
        raise NotFound("No server with id %d" % request.server_id)
    conns = {_channelz.socket_id(conn): conn for conn in _server_connections(server)}
    ids, end = _page(conns, request.start_socket_id, request.max_results)
    response = pb.GetServerSocketsResponse(end=end)
    for ident in ids:
        ref = response.socket_ref.add()
        ref.socket_id = ident
        ref.name = conns[ident].peer or ""
    return response


# -- sockets ---------------------------------------------------------------------------------

def _address(name, into):
    """A getsockname()/getpeername() answer as a channelz Address."""
    if isinstance(name, tuple) and len(name) >= 2:
        try:
            packed = ipaddress.ip_address(name[0].split("%")[0]).packed
        except ValueError:
            into.other_address.name = str(name)
            return
        into.tcpip_address.ip_address = packed
        into.tcpip_address.port = name[1]
    elif isinstance(name, (str, bytes)):
        into.uds_address.filename = name.decode() if isinstance(name, bytes) else name


def _endpoints(conn):
    """(local name, remote name, SSLObject or None) of a facade connection."""
    transport = getattr(conn, "transport", None)
    if transport is not None:       # aio
        return (transport.get_extra_info("sockname"), transport.get_extra_info("peername"),
                transport.get_extra_info("ssl_object"))
    sock = conn.sock
    tls = getattr(conn, "_tls", None)
    try:
        local = sock.getsockname()
        remote = sock.getpeername()
    except OSError:
        local = remote = None
    return local, remote, (tls.ssl_object if tls is not None else None)


def _security(ssl_object, into):
    cipher = ssl_object.cipher()
    tls = into.tls
    if cipher:
        # OpenSSL names TLS 1.3 suites by their standard (IANA) names; older
        # ones by its own, which the standard library cannot translate
        if cipher[0].startswith("TLS_"):
            tls.standard_name = cipher[0]
        else:
            tls.other_name = cipher[0]
    remote = ssl_object.getpeercert(binary_form=True)
    if remote:
        tls.remote_certificate = remote
    chain = getattr(ssl_object.context, "grpcpy_certificate_chain", None)
    if chain:
        try:
            tls.local_certificate = ssl.PEM_cert_to_DER_cert(_first_pem(chain))
        except ValueError:
            pass


def _first_pem(chain):
    text = chain.decode("ascii") if isinstance(chain, bytes) else chain
    end = "-----END CERTIFICATE-----"
    return text[:text.index(end) + len(end)] + "\n"


def _socket_message(conn, ident, summary):
    msg = pb.Socket()
    msg.ref.socket_id = ident
    if isinstance(conn, socket.socket):      # a server's listening socket
        msg.ref.name = _sockname(conn)
        try:
            _address(conn.getsockname(), msg.local)
        except OSError:
            pass
        return msg
    msg.ref.name = conn.peer or ""
    core = conn.core
    data = msg.data
    data.streams_started = core.calls_started
    # a stream succeeds when it ends cleanly (END_STREAM received by a client,
    # sent by a server) whatever its gRPC status, as grpc-core counts; the
    # others that ended failed (reset, connection lost)
    data.streams_succeeded = core.streams_succeeded
    data.streams_failed = max(0, core.calls_succeeded + core.calls_failed - core.streams_succeeded)
    data.messages_sent = core.messages_sent
    data.messages_received = core.messages_received
    data.keep_alives_sent = core.keepalive_pings_sent
    client = core.role == 1
    _timestamp(core.last_call_started_ns, data.last_local_stream_created_timestamp if client
               else data.last_remote_stream_created_timestamp)
    _timestamp(core.last_message_sent_ns, data.last_message_sent_timestamp)
    _timestamp(core.last_message_received_ns, data.last_message_received_timestamp)
    # local: what the peer lets us send; remote: what we let the peer send
    data.local_flow_control_window.value = core.send_window
    data.remote_flow_control_window.value = core.recv_window
    if core.peer_max_concurrent_streams != 0xFFFFFFFF:
        data.peer_max_concurrent_streams = core.peer_max_concurrent_streams
    if summary:
        return msg
    local, remote, ssl_object = _endpoints(conn)
    if local is not None:
        _address(local, msg.local)
    if remote is not None:
        _address(remote, msg.remote)
    if ssl_object is not None:
        _security(ssl_object, msg.security)
    return msg


def get_socket(request):
    conn = _channelz.lookup(request.socket_id)
    if conn is None or isinstance(conn, _channelz.Node) or getattr(conn, "closed", False) or (
            isinstance(conn, socket.socket) and conn.fileno() == -1):
        raise NotFound("No socket with id %d" % request.socket_id)
    return pb.GetSocketResponse(socket=_socket_message(conn, request.socket_id, request.summary))


# method name -> (answer, request class, response class)
METHODS = {
    "GetTopChannels": (get_top_channels, pb.GetTopChannelsRequest, pb.GetTopChannelsResponse),
    "GetServers": (get_servers, pb.GetServersRequest, pb.GetServersResponse),
    "GetServer": (get_server, pb.GetServerRequest, pb.GetServerResponse),
    "GetServerSockets": (get_server_sockets, pb.GetServerSocketsRequest, pb.GetServerSocketsResponse),
    "GetChannel": (get_channel, pb.GetChannelRequest, pb.GetChannelResponse),
    "GetSubchannel": (get_subchannel, pb.GetSubchannelRequest, pb.GetSubchannelResponse),
    "GetSocket": (get_socket, pb.GetSocketRequest, pb.GetSocketResponse),
}
SERVICE = "grpc.channelz.v1.Channelz"
NOT_FOUND = _types.StatusCode.NOT_FOUND
