"""Two sans-IO cores joined in memory: no sockets, no threads, a fake clock.

The cores only ever see bytes; this module moves the bytes each produces to
the other until nothing moves, the way a facade would with a socket.
"""
from grpcpy import _cext as c

CE = {name: getattr(c, name) for name in dir(c) if name.startswith("CE_")}


def kind_name(kind):
    return c.CALL_EVENT_NAMES.get(kind, kind)


class Pair:
    def __init__(self, client_config=None, server_config=None, client_kw=None, server_kw=None):
        self.now = 0.0
        self.client = c.ClientConnection(authority=b"test.local", config=client_config, **(client_kw or {}))
        self.server = c.ServerConnection(config=server_config, **(server_kw or {}))
        self.client_events = []
        self.server_events = []
        self.wire_c2s = 0
        self.wire_s2c = 0
        self.client.initiate(self.now)
        self.server.initiate(self.now)
        self.pump()

    def pump(self, max_rounds=10000, limit_s2c=None):
        """Move bytes both ways until neither side has anything to send."""
        for _ in range(max_rounds):
            c2s = self.client.data_to_send()
            s2c = self.server.data_to_send()
            self.client_events += self.client.take_events()
            self.server_events += self.server.take_events()
            if not c2s and not s2c:
                return
            if c2s:
                self.wire_c2s += len(c2s)
                self.server_events += self.server.receive_data(c2s, self.now)
            if s2c:
                self.wire_s2c += len(s2c)
                self.client_events += self.client.receive_data(s2c, self.now)
        raise AssertionError("cores did not settle")

    def advance(self, seconds):
        self.now += seconds
        self.client_events += self.client.handle_timeout(self.now)
        self.server_events += self.server.handle_timeout(self.now)
        self.pump()

    def take_client(self):
        ev, self.client_events = self.client_events, []
        return ev

    def take_server(self):
        ev, self.server_events = self.server_events, []
        return ev


def events_for(events, call, kind=None):
    return [e for e in events if e.call is call and (kind is None or e.kind == kind)]


def ended(events, call):
    found = events_for(events, call, c.CE_CALL_ENDED)
    assert len(found) == 1, "expected exactly one CALL_ENDED for %r, got %r" % (call, found)
    return found[0]


class EchoServer:
    """A minimal application on the server core: echoes every message,
    answers OK with the request metadata's 'x-echo' as trailing metadata
    when the client half-closes."""

    def __init__(self, pair):
        self.pair = pair
        self.calls = []

    def serve(self):
        srv = self.pair.server
        for ev in self.pair.take_server():
            if ev.kind == c.CE_CALL_STARTED:
                self.calls.append(ev.call)
            elif ev.kind == c.CE_MESSAGE:
                srv.send_message(ev.call, ev.data)
                srv.message_consumed(ev.call, ev.value)
            elif ev.kind == c.CE_HALF_CLOSED:
                md = tuple((k, v) for k, v in ev.call.metadata if k.startswith("x-echo"))
                srv.send_status(ev.call, 0, "", md)
        self.pair.pump()
