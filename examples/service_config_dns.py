"""A service config published in DNS (gRFC A2), and one given by the client.

A small DNS server (the dnslib package: `pip install dnslib`) serves the
zone of "greeter.test": two A records, 127.0.0.1 and 127.0.0.2, where two
servers answer with their names, and a TXT record at
_grpc_config.greeter.test holding the service config, which asks for
round_robin. A channel on dns://127.0.0.1:<dns port>/greeter.test:<port>
asks that DNS server for both, and its calls go to both servers in turn.
With grpc.service_config_disable_resolution=1 the TXT record is ignored:
pick_first, one server. An invalid grpc.service_config fails the channel's
creation with the field it got wrong.

    python examples/service_config_dns.py
"""
import json
import time
from concurrent import futures

from dnslib import QTYPE, RR, TXT, A
from dnslib.server import BaseResolver, DNSServer

import grpcpy

SAY = "/demo.Greeter/Say"
SERVICE_CONFIG = {
    "loadBalancingConfig": [{"round_robin": {}}],
    "methodConfig": [{"name": [{"service": "demo.Greeter"}], "timeout": "5s"}],
}


class Zone(BaseResolver):
    def __init__(self):
        txt = "grpc_config=" + json.dumps([{"clientLanguage": ["python"], "serviceConfig": SERVICE_CONFIG}])
        self.records = {
            ("greeter.test", "A"): [A("127.0.0.1"), A("127.0.0.2")],
            # a TXT string holds up to 255 bytes: a longer record is several
            ("_grpc_config.greeter.test", "TXT"): [TXT([txt[i:i + 255] for i in range(0, len(txt), 255)])],
        }

    def resolve(self, request, handler):
        reply = request.reply()
        for rdata in self.records.get((str(request.q.qname).rstrip("."), QTYPE[request.q.qtype]), ()):
            reply.add_answer(RR(request.q.qname, request.q.qtype, rdata=rdata, ttl=60))
        return reply


class Quiet:        # dnslib logs every query otherwise
    def __getattr__(self, name):
        return lambda *args: None


def serve(name, address):
    server = grpcpy.server(futures.ThreadPoolExecutor(2))
    server.add_generic_rpc_handlers((grpcpy.method_handlers_generic_handler(
        "demo.Greeter", {"Say": grpcpy.unary_unary_rpc_method_handler(lambda request, context: name)}),))
    port = server.add_insecure_port(address)
    server.start()
    return server, port


def replies(target, options=None):
    """The servers that answer calls made a moment apart: until both have
    answered, or for at least 40 calls and a second (round_robin's second
    connection may come up a little after the first)."""
    with grpcpy.insecure_channel(target, options) as channel:
        say = channel.unary_unary(SAY)
        seen = set()
        calls, started = 0, time.monotonic()
        while len(seen) < 2 and (calls < 40 or time.monotonic() - started < 1.0):
            seen.add(say(b"", timeout=5, wait_for_ready=True).decode())
            calls += 1
            time.sleep(0.005)
        return sorted(seen)


def main():
    dns = DNSServer(Zone(), address="127.0.0.1", port=0, logger=Quiet())
    dns.start_thread()
    first, port = serve(b"server-1", "127.0.0.1:0")
    second, _ = serve(b"server-2", "127.0.0.2:%d" % port)
    target = "dns://127.0.0.1:%d/greeter.test:%d" % (dns.server.server_address[1], port)
    try:
        print("config from DNS (round_robin):", ", ".join(replies(target)))
        print("TXT ignored (pick_first):", len(replies(target, [("grpc.service_config_disable_resolution", 1)])),
              "server")
        try:
            grpcpy.insecure_channel(target, [("grpc.service_config", '{"methodConfig": [{"timeout": 5}]}')])
        except ValueError as exc:
            print("invalid grpc.service_config:", exc)
    finally:
        first.stop(None)
        second.stop(None)
        dns.server.shutdown()


if __name__ == "__main__":
    main()
