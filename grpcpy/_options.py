"""Channel and server options by grpcio's names, and listening sockets.

Both facades read their options here, so a name means the same thing in the
sync and the asyncio API. Unknown option names are accepted and ignored, as
grpcio does.
"""
import ipaddress
import os
import socket
import stat

from grpcpy import _cext, _types

DEFAULT_MAX_RECEIVE = 4 * 1024 * 1024
DEFAULT_MAX_METADATA = 16 * 1024


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
        algorithm = opts.get("grpc.default_compression_algorithm")
        if compression is None and algorithm is not None:
            compression = algorithm
        self.compression = _types.compression_name(compression)

    def h2_config(self, **extra):
        config = _cext.H2Config(max_header_list_size=self.max_metadata_size,
                                max_frame_size=max(16384, min(self.max_frame_size, 16777215)),
                                bdp_probing=self.bdp_probe)
        for key, value in extra.items():
            setattr(config, key, value)
        return config


class ServerOptions(_Options):
    def __init__(self, options, compression=None):
        super().__init__(options, compression)
        opts = self.raw
        self.max_concurrent_streams = int(opts.get("grpc.max_concurrent_streams", 0xFFFFFFFF))
        self.so_reuseport = bool(opts.get("grpc.so_reuseport", 1))

    def h2_config(self, **extra):
        config = super().h2_config(**extra)
        if self.max_concurrent_streams > 0:
            config.max_concurrent_streams = min(self.max_concurrent_streams, 0xFFFFFFFF)
        return config


class ChannelOptions(_Options):
    def __init__(self, options, compression=None):
        super().__init__(options, compression)
        opts = self.raw
        self.user_agent = opts.get("grpc.primary_user_agent")
        self.default_authority = opts.get("grpc.default_authority")


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
