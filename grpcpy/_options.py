"""Channel and server options by grpcio's names, and listening sockets.

Both facades read their options here, so a name means the same thing in the
sync and the asyncio API. Unknown option names are accepted and ignored, as
grpcio does.
"""
import ipaddress
import math
import os
import random
import socket
import stat

from grpcpy import _cext, _types
from grpcpy._channel.service_config import parse_service_config

DEFAULT_MAX_RECEIVE = 4 * 1024 * 1024
DEFAULT_MAX_METADATA = 16 * 1024
_INT_MAX = 2 ** 31 - 1          # grpc's "infinite" for a milliseconds option
# Request bytes one call keeps for replaying to a retry (grpcio's default);
# a call whose buffered requests pass it commits to its current attempt.
DEFAULT_PER_RPC_RETRY_BUFFER = 256 * 1024
# The same for all the calls of a channel together.  grpcio has no such bound
# (grpc-java's is 16 MiB, the value here): without one, many concurrent
# streaming calls could each hold their full per-call buffer, so the memory a
# channel pins for replay would grow with the number of calls.  16 MiB lets
# 64 calls hold a full buffer at once; past it, new buffering commits calls.
DEFAULT_RETRY_BUFFER = 16 * 1024 * 1024


def _as_dict(options):
    if not options:
        return {}
    if isinstance(options, dict):
        return dict(options)
    return {key: value for key, value in options}


class _Options:
    def __init__(self, options, compression):
        opts = _as_dict(options)
        self.raw = opts
        self.max_receive_message_length = int(opts.get("grpc.max_receive_message_length", DEFAULT_MAX_RECEIVE))
        self.max_send_message_length = int(opts.get("grpc.max_send_message_length", -1))
        self.max_metadata_size = int(opts.get("grpc.max_metadata_size", DEFAULT_MAX_METADATA))
        self.max_frame_size = int(opts.get("grpc.http2.max_frame_size", 16384))
        self.bdp_probe = bool(opts.get("grpc.http2.bdp_probe", 1))
        # keepalive (doc/keepalive.md); the rules are the core's, see
        # _cext/h2/connection.pxi. Defaults: grpcio's for the role.
        self.keepalive_time = _duration(opts, "grpc.keepalive_time_ms", self._default_keepalive_time)
        self.keepalive_timeout = _duration(opts, "grpc.keepalive_timeout_ms", 20.0)
        self.keepalive_permit_without_calls = bool(int(opts.get("grpc.keepalive_permit_without_calls", 0)))
        self.max_pings_without_data = max(0, int(opts.get("grpc.http2.max_pings_without_data", 2)))
        algorithm = opts.get("grpc.default_compression_algorithm")
        if compression is None and algorithm is not None:
            compression = algorithm
        self.compression = _types.compression_name(compression)
        # grpcpy.stats: the global hooks and the option's, fixed when the
        # channel or server is made (a TypeError names a bad one)
        from grpcpy.stats import OPTION, hooks_for
        self.stats_hooks = hooks_for(opts.get(OPTION))

    _default_keepalive_time = math.inf

    def h2_config(self, **extra):
        config = _cext.H2Config(max_header_list_size=self.max_metadata_size,
                                max_frame_size=max(16384, min(self.max_frame_size, 16777215)),
                                bdp_probing=self.bdp_probe,
                                keepalive_time=self.keepalive_time,
                                keepalive_timeout=self.keepalive_timeout,
                                keepalive_permit_without_calls=self.keepalive_permit_without_calls,
                                max_pings_without_data=self.max_pings_without_data)
        for key, value in extra.items():
            setattr(config, key, value)
        return config


# Streams a server lets one connection open at a time (SETTINGS_MAX_CONCURRENT_STREAMS;
# a peer that opens more gets RST_STREAM(REFUSED_STREAM), and gRPC clients queue their
# calls at the limit instead). grpcio and grpc-go advertise no limit; Go's own HTTP/2
# server says 250 and nginx 128, RFC 9113 asks for no less than 100. 256 keeps a
# multiplexing client from queueing in practice while bounding what one connection can
# pin: its pending calls, their buffered requests (256 x the stream window).
DEFAULT_MAX_CONCURRENT_STREAMS = 256


class ServerOptions(_Options):
    """Server options. Connection management (gRFC A9), grpcio's names and
    defaults: grpc.keepalive_time_ms (2 h: the server pings a connection with
    calls open that was silent that long), grpc.keepalive_timeout_ms (20 s),
    grpc.keepalive_permit_without_calls (also: accept pings with no call
    open), grpc.http2.min_ping_interval_without_data_ms (5 min),
    grpc.http2.max_ping_strikes (2; 0: no ping policy),
    grpc.max_connection_idle_ms, grpc.max_connection_age_ms (each connection
    gets its own +/-10% jitter, as grpc's), grpc.max_connection_age_grace_ms
    (all three infinite by default)."""

    _default_keepalive_time = 7200.0

    def __init__(self, options, compression=None):
        super().__init__(options, compression)
        opts = self.raw
        self.max_concurrent_streams = int(opts.get("grpc.max_concurrent_streams", DEFAULT_MAX_CONCURRENT_STREAMS))
        self.so_reuseport = bool(opts.get("grpc.so_reuseport", 1))
        self.min_ping_interval_without_data = _duration(
            opts, "grpc.http2.min_ping_interval_without_data_ms", 300.0)
        self.max_ping_strikes = max(0, int(opts.get("grpc.http2.max_ping_strikes", 2)))
        self.max_connection_idle = _duration(opts, "grpc.max_connection_idle_ms", math.inf)
        self.max_connection_age = _duration(opts, "grpc.max_connection_age_ms", math.inf)
        self.max_connection_age_grace = _duration(opts, "grpc.max_connection_age_grace_ms", math.inf)

    def h2_config(self, **extra):
        config = super().h2_config(**extra)
        if self.max_concurrent_streams > 0:
            config.max_concurrent_streams = min(self.max_concurrent_streams, 0xFFFFFFFF)
        config.min_ping_interval_without_data = self.min_ping_interval_without_data
        config.max_ping_strikes = self.max_ping_strikes
        config.max_connection_idle = self.max_connection_idle
        config.max_connection_age_grace = self.max_connection_age_grace
        if self.max_connection_age != math.inf:
            # spread the connections' ends so they do not reconnect at once
            config.max_connection_age = self.max_connection_age * random.uniform(0.9, 1.1)
        return config


def _duration(opts, name, default):
    """A grpc milliseconds option in seconds; grpc's INT_MAX (or more) is infinite."""
    value = opts.get(name)
    if value is None:
        return default
    value = int(value)
    if value >= _INT_MAX:
        return math.inf
    return max(0, value) / 1000.0


def _seconds(opts, name, default, floor):
    """A grpcio milliseconds option in seconds, never below ``floor``."""
    value = opts.get(name)
    if value is None:
        return default
    return max(floor, int(value) / 1000.0)


class ChannelOptions(_Options):
    """Every channel option grpcpy reads, parsed once per channel.

    Reconnection backoff (doc/connection-backoff.md), in seconds, with
    grpcio's 100 ms floor: grpc.initial_reconnect_backoff_ms (1 s),
    grpc.max_reconnect_backoff_ms (120 s), grpc.min_reconnect_backoff_ms (the
    minimum connect timeout, 20 s), grpc.testing.fixed_reconnect_backoff_ms
    (no growth, no jitter). grpc.dns_min_time_between_resolutions_ms (30 s).
    grpc.lb_policy_name, and the loadBalancingConfig of grpc.service_config
    (JSON): the policy names in order of preference.
    Service config (doc/service_config.md; grpcpy/_channel/service_config.py):
    grpc.service_config, parsed once here; an invalid one raises
    ServiceConfigError (a ValueError naming the field), so the channel is
    never made (grpcio makes it and fails every call INVALID_ARGUMENT).
    grpc.service_config_disable_resolution: 1 ignores the resolver's config
    (DNS TXT records) and uses grpc.service_config alone; 0 also looks TXT
    records up for names of the system resolver (not given: only for targets
    naming a DNS server, see ChannelPlane). Retries (gRFC A6):
    grpc.enable_retries (on), grpc.per_rpc_retry_buffer_size (256 KiB, as
    grpcio) and grpc.retry_buffer_size (16 MiB for all the calls of the
    channel together; see below).
    Keepalive (gRFC A8): grpc.keepalive_time_ms (off), grpc.keepalive_timeout_ms
    (20 s), grpc.keepalive_permit_without_calls, grpc.http2.max_pings_without_data
    (2; see _cext/h2/connection.pxi for how it applies). grpc.client_idle_timeout_ms
    (30 min): an unused channel goes IDLE and closes its connections.
    """

    def __init__(self, options, compression=None):
        super().__init__(options, compression)
        opts = self.raw
        self.user_agent = opts.get("grpc.primary_user_agent")
        self.default_authority = opts.get("grpc.default_authority")
        self.ssl_target_name_override = opts.get("grpc.ssl_target_name_override")
        fixed = opts.get("grpc.testing.fixed_reconnect_backoff_ms")
        self.fixed_reconnect_backoff = None if fixed is None else max(0.1, int(fixed) / 1000.0)
        self.initial_reconnect_backoff = _seconds(opts, "grpc.initial_reconnect_backoff_ms", 1.0, 0.1)
        self.max_reconnect_backoff = _seconds(opts, "grpc.max_reconnect_backoff_ms", 120.0, 0.1)
        self.min_reconnect_backoff = _seconds(opts, "grpc.min_reconnect_backoff_ms", 20.0, 0.1)
        self.dns_min_time_between_resolutions = _seconds(
            opts, "grpc.dns_min_time_between_resolutions_ms", 30.0, 0.0)
        self.lb_policy_name = opts.get("grpc.lb_policy_name")
        # an unused channel goes IDLE after this (grpcio's default: 30 min)
        self.client_idle_timeout = _duration(opts, "grpc.client_idle_timeout_ms", 1800.0)
        self.lb_config_names = None     # from the service config: policy names, first choice first
        # the user's service config: the channel's default, and its only one
        # when resolution is disabled or the resolver gives none
        self.service_config = None
        config = opts.get("grpc.service_config")
        if config:
            self.service_config = parse_service_config(config)
            self.lb_config_names = self.service_config.lb_config_names
        # None when not given: the plane's choice of where to look TXT records up
        disable = opts.get("grpc.service_config_disable_resolution")
        self.service_config_disable_resolution = None if disable is None else bool(int(disable))
        self.enable_retries = bool(int(opts.get("grpc.enable_retries", 1)))
        # client-side health checking off whatever the service config says (gRFC A17)
        self.inhibit_health_checking = bool(int(opts.get("grpc.inhibit_health_checking", 0)))
        self.per_rpc_retry_buffer_size = max(0, int(opts.get("grpc.per_rpc_retry_buffer_size",
                                                             DEFAULT_PER_RPC_RETRY_BUFFER)))
        self.retry_buffer_size = max(0, int(opts.get("grpc.retry_buffer_size", DEFAULT_RETRY_BUFFER)))

    @classmethod
    def of(cls, options):
        """``options`` as ChannelOptions (grpcio's pairs, a dict, None, or already parsed)."""
        return options if isinstance(options, cls) else cls(options)


def set_nodelay(sock):
    """TCP_NODELAY on a connected inet socket (both facades, both roles): a
    gRPC message is written whole, Nagle would only delay its last segment."""
    if sock.family in (socket.AF_INET, socket.AF_INET6):
        try:
            sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
        except OSError:
            pass


# -- listening sockets ------------------------------------------------------------

def _split_host_port(address):
    if address.startswith("["):
        host, _, rest = address[1:].partition("]")
        if not rest.startswith(":"):
            raise ValueError("missing port in %r" % address)
        return host, rest[1:]
    host, sep, port = address.rpartition(":")
    if not sep:
        raise ValueError("missing port in %r" % address)
    return host, port


def bind_sockets(address, options):
    """Bind listening sockets for a server address as grpcio accepts them:
    'host:port', '[::]:port', 'localhost:port' (both loopbacks), ':port',
    'unix:path', 'unix:///abs/path', 'unix-abstract:name'. Port 0 picks a free
    port, the same one on every address. Returns (port, sockets); raises
    RuntimeError when nothing could be bound."""
    if address.startswith("unix:") or address.startswith("unix-abstract:"):
        return _bind_unix(address)
    try:
        host, port_text = _split_host_port(address)
        port = int(port_text)
        if not 0 <= port <= 65535:
            raise ValueError("port out of range")
    except ValueError as exc:
        raise RuntimeError("Failed to bind to address %s: %s" % (address, exc)) from None
    if host in ("", "*"):
        host = "::"
    if host == "localhost":
        candidates = [(socket.AF_INET, "127.0.0.1"), (socket.AF_INET6, "::1")]
    else:
        try:
            ip = ipaddress.ip_address(host)
            candidates = [(socket.AF_INET6 if ip.version == 6 else socket.AF_INET, host)]
        except ValueError:
            try:
                infos = socket.getaddrinfo(host, None, type=socket.SOCK_STREAM, flags=socket.AI_PASSIVE)
            except socket.gaierror as exc:
                raise RuntimeError("Failed to bind to address %s: %s" % (address, exc)) from None
            candidates = []
            for family, _, _, _, sockaddr in infos:
                if (family, sockaddr[0]) not in candidates:
                    candidates.append((family, sockaddr[0]))
    socks = []
    errors = []
    for family, ip in candidates:
        try:
            sock = socket.socket(family, socket.SOCK_STREAM)
        except OSError as exc:   # e.g. no IPv6 on this machine
            errors.append(exc)
            continue
        try:
            sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
            if options.so_reuseport and hasattr(socket, "SO_REUSEPORT"):
                sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEPORT, 1)
            if family == socket.AF_INET6:
                # '[::]' serves IPv4 too, as grpcio's does
                sock.setsockopt(socket.IPPROTO_IPV6, socket.IPV6_V6ONLY, 0 if ip == "::" else 1)
            sock.bind((ip, port))
            sock.listen(1024)
            sock.setblocking(False)
        except OSError as exc:
            sock.close()
            errors.append(exc)
            continue
        if port == 0:
            port = sock.getsockname()[1]
        socks.append(sock)
    if not socks:
        raise RuntimeError("Failed to bind to address %s: %s" % (address, "; ".join(map(str, errors))))
    return port, socks


def _bind_unix(address):
    if address.startswith("unix-abstract:"):
        path = "\0" + address[len("unix-abstract:"):]
    else:
        path = address[len("unix:"):]
        if path.startswith("//"):
            path = path[2:]
        try:
            if stat.S_ISSOCK(os.stat(path).st_mode):
                os.unlink(path)   # a stale socket from an earlier run; never other files
        except OSError:
            pass
    sock = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
    try:
        sock.bind(path)
        sock.listen(1024)
        sock.setblocking(False)
    except OSError as exc:
        sock.close()
        raise RuntimeError("Failed to bind to address %s: %s" % (address, exc)) from None
    return 1, [sock]
