"""The dns resolver's lookups: the one blocking function both facades run
off their loop (the sync channel on its resolve thread, the aio channel in
the loop's executor), so the facades stay I/O-only and the rules live here
and in the plane.

- Addresses: the system resolver (getaddrinfo) for a plain name, as gRPC
  does; for a target naming a DNS server (``dns://10.0.0.53:53/name``), A
  and AAAA queries to that server.  getaddrinfo cannot be pointed at a
  server, so that takes a DNS client library: dnspython (maintained, pure
  Python, no system library; imported only when needed).
- TXT: the records of ``_grpc_config.<name>`` (gRFC A2), when the plane
  asks for them (ChannelPlane.lookup_txt), queried on a thread of their own
  at the same time as the addresses.  A TXT lookup can never fail the
  address resolution and delays it by at most TXT_TIMEOUT: one that fails or
  is not answered in time reports None, and the channel keeps the config
  it has.
"""

import socket
import threading
import time

__all__ = ["lookup", "ADDRESS_TIMEOUT", "TXT_TIMEOUT"]

# One A + AAAA lookup against a target's DNS server, all tries included; a
# failed lookup is retried by the plane with backoff.
ADDRESS_TIMEOUT = 10.0
# The longest a TXT lookup may hold the addresses back (the config is
# optional; a server that does not answer it in a second is not serving it).
TXT_TIMEOUT = 1.0
TXT_PREFIX_NAME = "_grpc_config."


def lookup(host, port, server=None, txt=False):
    """Blocking: ``(infos, txt_records)`` for ``host``: getaddrinfo-shaped
    ``infos`` (family, type, proto, canonname, sockaddr) and, when ``txt``,
    the TXT records of ``_grpc_config.<host>``, each record's strings joined
    ([] when there are none, None when the lookup failed or took too long;
    None too without ``txt``).  ``server``: 'ip[:port]' or '[v6][:port]' of
    the DNS server to ask, or None for the system resolver.  Raises
    OSError (socket.gaierror) when the addresses cannot be found."""
    if txt:
        box = []
        started = time.monotonic()
        thread = threading.Thread(target=_txt_into, args=(box, host, server), daemon=True,
                                  name="grpcpy-dns-txt")
        thread.start()
    if server is None or host.lower() == "localhost":
        infos = socket.getaddrinfo(host, port, type=socket.SOCK_STREAM)
    else:
        infos = _server_addresses(host, port, server)
    records = None
    if txt:
        thread.join(max(0.0, started + TXT_TIMEOUT - time.monotonic()))
        records = box[0] if box else None
    return infos, records


def _split_server(server):
    """'ip', 'ip:port', '[v6]', '[v6]:port' -> (ip, port)."""
    if server.startswith("["):
        host, _, rest = server[1:].partition("]")
        port = rest[1:] if rest.startswith(":") else ""
    elif server.count(":") == 1:
        host, port = server.split(":")
    else:
        host, port = server, ""
    return host, int(port) if port else 53


def _resolver(server, lifetime):
    import dns.resolver
    if server is None:
        resolver = dns.resolver.Resolver()          # /etc/resolv.conf
    else:
        ip, port = _split_server(server)
        resolver = dns.resolver.Resolver(configure=False)
        resolver.nameservers = [ip]
        resolver.port = port
    resolver.lifetime = lifetime
    return resolver


def _server_addresses(host, port, server):
    import dns.exception
    import dns.resolver
    try:
        resolver = _resolver(server, ADDRESS_TIMEOUT)
    except ValueError as exc:
        raise socket.gaierror(socket.EAI_FAIL, "bad DNS server %r: %s" % (server, exc)) from None
    deadline = time.monotonic() + ADDRESS_TIMEOUT
    infos = []
    failure = None
    for rdtype, family in (("A", socket.AF_INET), ("AAAA", socket.AF_INET6)):
        try:
            answer = resolver.resolve(host, rdtype, search=False,
                                      lifetime=max(0.1, deadline - time.monotonic()))
        except dns.resolver.NXDOMAIN:
            raise socket.gaierror(socket.EAI_NONAME, "Name or service not known (DNS server %s)" % server) \
                from None
        except dns.resolver.NoAnswer:
            continue
        except dns.exception.Timeout:
            failure = "DNS server %s did not answer" % server
            continue
        except dns.exception.DNSException as exc:
            failure = "DNS server %s: %s" % (server, exc)
            continue
        for rdata in answer:
            sockaddr = (rdata.address, port) if family == socket.AF_INET else (rdata.address, port, 0, 0)
            infos.append((family, socket.SOCK_STREAM, socket.IPPROTO_TCP, "", sockaddr))
    if not infos:
        if failure is not None:
            raise socket.gaierror(socket.EAI_AGAIN, failure)
        raise socket.gaierror(socket.EAI_NODATA, "No address associated with hostname (DNS server %s)"
                              % server)
    return infos


def _txt_into(box, host, server):
    box.append(_txt_records(host, server))


def _txt_records(host, server):
    try:
        import dns.exception
        import dns.resolver
    except ImportError:
        return None
    try:
        answer = _resolver(server, TXT_TIMEOUT).resolve(TXT_PREFIX_NAME + host, "TXT", search=False)
    except (dns.resolver.NXDOMAIN, dns.resolver.NoAnswer):
        return []
    except Exception:       # timeout, no server, a refusal, a bad name: no news
        return None
    return [b"".join(rdata.strings).decode("utf-8", "replace") for rdata in answer]
