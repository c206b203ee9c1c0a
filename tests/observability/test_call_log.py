"""grpcpy.observability.CallLogger: one log line per call, client and
server, both facades, with grpcio peers; metadata values redacted unless
allowed; nothing at all unless installed and enabled."""
import collections
import json
import logging
import re
import socket
import time

import pytest

from grpcpy.observability import CallLogger
from tests.observability import traffic
from tests.observability.traffic import CALLS, KNOWN, SERVICE

GRPCPY = ["grpcpy-sync", "grpcpy-aio"]
METADATA = (("authorization", "Bearer s3cret"), ("x-request-id", "req 1"), ("x-blob-bin", b"\x00\x01\xff"))


class Records(logging.Handler):
    """The records the "grpcpy.calls" logger passes on."""

    def __init__(self):
        logging.Handler.__init__(self)
        self.records = []

    def emit(self, record):
        self.records.append(record)

    def wait_for(self, count):
        """Wait until `count` records came (servers may log a call after its
        client has the status: a bound against hangs); then no more come."""
        deadline = time.monotonic() + 30
        while len(self.records) < count and time.monotonic() < deadline:
            time.sleep(0.01)
        return list(self.records)


@pytest.fixture
def records():
    logger = logging.getLogger("grpcpy.calls")
    handler = Records()
    level = logger.level
    logger.addHandler(handler)
    logger.setLevel(logging.INFO)
    yield handler
    logger.removeHandler(handler)
    logger.setLevel(level)


def parse_logfmt(text):
    """key=value pairs; a quoted value is a JSON string."""
    fields = {}
    for key, raw in re.findall(r'(\S+?)=("(?:[^"\\]|\\.)*"|\S+)', text):
        fields[key] = json.loads(raw) if raw.startswith('"') else raw
    assert " ".join("%s=%s" % (k, v) for k, v in re.findall(r'(\S+?)=("(?:[^"\\]|\\.)*"|\S+)', text)) == text
    return fields


def check_lines(lines, side, target=None):
    """The lines of traffic.KNOWN on `side`: one per call, with its fields."""
    assert len(lines) == CALLS, [r.getMessage() for r in lines]
    by_method = collections.defaultdict(list)
    for record in lines:
        assert record.name == "grpcpy.calls" and record.levelno == logging.INFO
        fields = parse_logfmt(record.getMessage())
        assert fields == {k: str(v) for k, v in record.grpc_call.items()}
        assert fields["side"] == side
        assert re.fullmatch(r"ipv4:127\.0\.0\.1:\d+", fields["peer"]), fields
        if side == "client":
            # the target as given, or with the resolver's scheme the channel added
            assert fields["target"] in (target, "dns:///" + target), fields
        else:
            assert "target" not in fields
        assert float(fields["duration_ms"]) > 0
        by_method[fields["method"]].append(record.grpc_call)
    for (kind, name), (started, handled, from_client, from_server) in KNOWN.items():
        calls = by_method["/%s/%s" % (SERVICE, name)]
        assert len(calls) == started
        assert collections.Counter(c["code"] for c in calls) == collections.Counter(handled)
        sent, received = (from_client, from_server) if side == "client" else (from_server, from_client)
        assert sum(c["sent_messages"] for c in calls) == sent
        assert sum(c["received_messages"] for c in calls) == received
        assert all(c["sent_bytes"] >= c["sent_messages"] for c in calls)
        for call in calls:
            if call["code"] == "OK":
                assert "details" not in call
            else:
                assert call["details"] == "no such thing"


@pytest.mark.parametrize("client", traffic.CLIENTS)
@pytest.mark.parametrize("server", GRPCPY)
def test_server_lines(records, server, client):
    with traffic.serving(server, options=[("grpcpy.stats_hooks", CallLogger())]) as served:
        traffic.run_known_traffic(client, served.target)
        lines = records.wait_for(CALLS)
    check_lines(lines, "server")


@pytest.mark.parametrize("server", traffic.SERVERS)
@pytest.mark.parametrize("client", GRPCPY)
def test_client_lines(records, client, server):
    with traffic.serving(server) as served:
        traffic.run_known_traffic(client, served.target, options=[("grpcpy.stats_hooks", CallLogger())])
        lines = records.wait_for(CALLS)
    check_lines(lines, "client", served.target)


@pytest.mark.parametrize("kind", GRPCPY)
def test_metadata_redacted_unless_allowed(records, kind):
    """Both sides installed by `with`: every value shows as [redacted] but
    those of the allowed keys (any case; binary ones in base64)."""
    with CallLogger(allow_metadata=["X-Request-Id", "x-blob-bin"]):
        with traffic.serving(kind) as served:
            traffic.run_known_traffic(kind, served.target, metadata=METADATA)
            lines = records.wait_for(2 * CALLS)
    assert len(lines) == 2 * CALLS
    assert sorted(r.grpc_call["side"] for r in lines) == ["client"] * CALLS + ["server"] * CALLS
    for record in lines:
        text = record.getMessage()
        assert "s3cret" not in text and "Bearer" not in text
        fields = parse_logfmt(text)
        assert fields["md.authorization"] == "[redacted]"
        assert fields["md.x-request-id"] == "req 1"
        assert fields["md.x-blob-bin"] == "AAH/"
        for key, value in fields.items():
            if key.startswith("md.") and key not in ("md.x-request-id", "md.x-blob-bin"):
                assert value == "[redacted]", (key, value)


@pytest.mark.parametrize("kind", GRPCPY)
def test_json_lines(records, kind):
    with CallLogger(logger="grpcpy.calls", json=True, server=False):
        with traffic.serving(kind) as served:
            traffic.run_known_traffic(kind, served.target)
            lines = records.wait_for(CALLS)
    assert len(lines) == CALLS
    for record in lines:
        fields = json.loads(record.getMessage())
        assert fields == record.grpc_call and fields["side"] == "client"


@pytest.mark.parametrize("kind", GRPCPY)
def test_nothing_logged_unless_installed_and_enabled(records, kind):
    """No CallLogger: no line. A CallLogger whose logger drops INFO: no
    line, and it takes no part in calls. After the `with` block, channels
    and servers made later log nothing."""
    logger = logging.getLogger("grpcpy.calls")
    logger.setLevel(logging.DEBUG)
    with traffic.serving(kind) as served:
        traffic.run_known_traffic(kind, served.target)

    logger.setLevel(logging.WARNING)
    quiet = CallLogger()
    with quiet:
        with traffic.serving(kind) as served:
            traffic.run_known_traffic(kind, served.target)
    logger.setLevel(logging.INFO)
    with traffic.serving(kind) as served:
        traffic.run_known_traffic(kind, served.target)
    assert records.records == []


@pytest.mark.parametrize("kind", GRPCPY)
def test_a_call_that_reaches_no_server(records, kind):
    """Nothing listens on the port: the client still logs its call, with
    its status and no peer."""
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        target = "127.0.0.1:%d" % probe.getsockname()[1]
    options = [("grpcpy.stats_hooks", CallLogger())]
    assert traffic.call_methods(kind, target, [traffic.UNARY], options=options) == ["UNAVAILABLE"]
    lines = records.wait_for(1)
    assert [r.grpc_call["code"] for r in lines] == ["UNAVAILABLE"]
    fields = parse_logfmt(lines[0].getMessage())
    assert "peer" not in fields and fields["details"] and fields["sent_messages"] == "0"


def test_bad_arguments():
    with pytest.raises(TypeError, match="allow_metadata"):
        CallLogger(allow_metadata="authorization")
