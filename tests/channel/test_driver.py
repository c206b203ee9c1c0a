"""The channel driver without I/O: a recording subclass implements the hooks,
time is passed in, and the tests play the facade's answers.  The same rules
under both real facades are in test_facades.py."""
import socket

import pytest

from grpcpy._channel.driver import NO_PREFACE, ChannelDriver
from grpcpy._channel.service_config import ServiceConfigError
from grpcpy._channel.target import Address

FIXED = [("grpc.testing.fixed_reconnect_backoff_ms", 1000)]   # 1 s backoff and connect timeout, no jitter
A1 = Address("inet", "10.0.0.1", 50051)


class Recorder(ChannelDriver):
    def __init__(self, target="ipv4:10.0.0.1:50051", options=FIXED):
        self._init_driver(target, options, None, None)
        self.io = []
        self.armed = []
        self.states = []

    def _io_resolve(self, host, port):
        self.io.append(("resolve", host, port))

    def _io_connect(self, sub_id, address, deadline):
        self.io.append(("connect", sub_id, address, deadline))

    def _io_close(self, sub_id, conn):
        self.io.append(("close", sub_id, conn))

    def _io_arm_timer(self, when):
        self.armed.append(when)

    def _on_state_change(self, state):
        self.states.append(state.name)

    def take(self, kind):
        found = [a for a in self.io if a[0] == kind]
        self.io = [a for a in self.io if a[0] != kind]
        return found

    def fire(self, now):
        """The timer armed last goes off at ``now``."""
        self._timer_fired(now, self.armed[-1])


class Core:
    """What the driver reads of a connection's core."""
    closed = False
    local_open = 0
    too_many_pings = False


class Conn:
    closed = False
    _reported = False       # the facade has reported it lost or going away

    def __init__(self, sub_id):
        self.sub_id = sub_id
        self.core = Core()


class Call:
    """What the driver queues: a deadline, wait_for_ready, and two ways out."""

    def __init__(self, deadline=None, wait_for_ready=None):
        self._deadline = deadline
        self._wait_for_ready = wait_for_ready
        self.outcome = None

    def _start_on(self, conn):
        assert self.outcome is None
        self.outcome = conn

    def _fail_start(self, code, details):
        assert self.outcome is None
        self.outcome = (code.name, details)


def test_a_call_waits_while_connecting_and_starts_on_the_connection():
    d = Recorder()
    assert d._pick_now() is None
    call = Call()
    d._submit(call, 0.0)
    [(_, sub, address, deadline)] = d.take("connect")
    assert (address, deadline) == (A1, 1.0)
    assert call.outcome is None and d.states == ["CONNECTING"]
    conn = Conn(sub)
    assert d._connect_done(0.1, sub, conn) is True
    assert call.outcome is conn
    assert d._pick_now() is conn and d.states[-1] == "READY"


def test_transient_failure_fails_calls_without_wait_for_ready():
    d = Recorder()
    fast, patient = Call(), Call(wait_for_ready=True)
    d._submit(fast, 0.0)
    d._submit(patient, 0.0)
    [(_, sub, _, _)] = d.take("connect")
    d._connect_failed(0.1, sub, A1, ConnectionRefusedError(111, "Connection refused"))
    code, details = fast.outcome
    assert code == "UNAVAILABLE"
    assert details == "failed to connect to all addresses: ipv4:10.0.0.1:50051: Connection refused"
    assert patient.outcome is None
    # a new call in TRANSIENT_FAILURE fails at once, without waiting
    late = Call()
    d._submit(late, 0.2)
    assert late.outcome == fast.outcome
    # the backoff ends, the retry connects, the patient call starts
    d.fire(1.1)
    [(_, sub, _, _)] = d.take("connect")
    conn = Conn(sub)
    d._connect_done(1.2, sub, conn)
    assert patient.outcome is conn


def test_the_deadline_of_a_waiting_call_shares_the_timer():
    d = Recorder()
    call, later = Call(deadline=0.5), Call(deadline=5.0, wait_for_ready=True)
    d._submit(call, 0.0)
    d._submit(later, 0.0)
    assert d.armed[-1] == 0.5          # before the connect deadline (1.0)
    d.fire(0.4999)                      # a loop may run a timer a hair early
    assert call.outcome == ("DEADLINE_EXCEEDED", "Deadline Exceeded")
    assert later.outcome is None
    assert d.armed[-1] == 1.0
    [(_, sub, _, _)] = d.take("connect")
    d.fire(1.0)                         # the connect timed out: the attempt is given up
    assert d.take("close") == [("close", sub, None)]
    d.fire(2.0)
    d.take("connect")
    d.fire(3.0)
    d.fire(4.0)
    assert later.outcome is None
    d.fire(5.0)
    assert later.outcome == ("DEADLINE_EXCEEDED", "Deadline Exceeded")


def test_a_deadline_already_passed_fails_at_once():
    d = Recorder()
    call = Call(deadline=1.0, wait_for_ready=True)
    d._submit(call, 1.0)
    assert call.outcome == ("DEADLINE_EXCEEDED", "Deadline Exceeded")
    assert not d._queue


def test_a_replaced_timer_is_ignored():
    d = Recorder()
    d._submit(Call(wait_for_ready=True), 0.0)
    assert d.armed == [1.0]
    d._timer_fired(7.0, 3.0)            # not the timer the driver armed
    assert d.take("close") == [] and d._timer_at == 1.0


def test_close_cancels_waiting_calls_and_later_ones():
    d = Recorder()
    calls = [Call(), Call(wait_for_ready=True, deadline=9.0)]
    for call in calls:
        d._submit(call, 0.0)
    [(_, sub, _, _)] = d.take("connect")
    d._close_queue()
    assert [c.outcome for c in calls] == [("CANCELLED", "Channel closed!")] * 2
    after = Call()
    d._submit(after, 0.1)
    assert after.outcome == ("CANCELLED", "Channel closed!")
    d._shutdown(0.1)
    assert d.take("close") == [("close", sub, None)]
    assert d.states[-1] == "SHUTDOWN"
    # an attempt that ends after the close is refused: the facade closes it
    assert d._connect_done(0.2, sub, Conn(sub)) is False


def test_waiting_calls_reconnect_a_connection_lost_before_they_started():
    d = Recorder()
    call = Call()
    d._submit(call, 0.0)
    [(_, sub, _, _)] = d.take("connect")
    conn = Conn(sub)
    conn.closed = True                  # reset while the facade was reporting it
    d._connect_done(0.1, sub, conn)
    assert call.outcome is None
    [(_, sub2, address, _)] = d.take("connect")   # asked again, not left IDLE
    assert sub2 != sub and address == A1
    conn2 = Conn(sub2)
    d._connect_done(0.2, sub2, conn2)
    assert call.outcome is conn2


def test_a_lost_connection_goes_idle_and_the_next_call_reconnects():
    d = Recorder()
    d._submit(Call(), 0.0)
    [(_, sub, _, _)] = d.take("connect")
    conn = Conn(sub)
    d._connect_done(0.1, sub, conn)
    d._connection_lost(5.0, conn)
    assert d.states[-1] == "IDLE" and d.take("connect") == []
    call = Call()
    d._submit(call, 6.0)
    [(_, sub2, _, _)] = d.take("connect")
    d._connect_done(6.1, sub2, Conn(sub2))
    assert call.outcome.sub_id == sub2


def test_lookup_answers_become_addresses():
    d = Recorder("dns:///svc.example:443")
    call = Call()
    d._submit(call, 0.0)
    assert d.take("resolve") == [("resolve", "svc.example", 443)]
    infos = [
        (socket.AF_INET, socket.SOCK_STREAM, 6, "", ("10.1.1.1", 443)),
        (socket.AF_INET, socket.SOCK_STREAM, 6, "", ("10.1.1.1", 443)),     # twice: once
        (socket.AF_UNIX, socket.SOCK_STREAM, 0, "", "/ignored"),
        (socket.AF_INET6, socket.SOCK_STREAM, 6, "", ("fd00::1", 443, 0, 0)),
    ]
    d._lookup_done(0.1, infos)
    [(_, sub, address, _)] = d.take("connect")     # pick_first: the first address
    assert address == Address("inet", "10.1.1.1", 443)
    d._connect_failed(0.2, sub, address, OSError(NO_PREFACE))
    [(_, _, address, _)] = d.take("connect")
    assert address == Address("inet6", "fd00::1", 443)


def test_a_failed_lookup_fails_calls_that_do_not_wait():
    d = Recorder("dns:///nowhere.invalid:1")
    call = Call()
    d._submit(call, 0.0)
    d.take("resolve")
    d._lookup_failed(0.1, "nowhere.invalid", 1, socket.gaierror(-2, "Name or service not known"))
    code, details = call.outcome
    assert code == "UNAVAILABLE"
    assert details.startswith("DNS resolution failed for nowhere.invalid:1: ")
    assert details.endswith("Name or service not known")


@pytest.mark.parametrize("config, message", [
    ('{"loadBalancingConfig": [{"no_such_policy": {}}]}',
     "errors validating service config: [field:loadBalancingConfig error:No known policies in list: "
     "no_such_policy]"),
    ("not json", "JSON parsing failed"),
    ("[1, 2]", "errors validating service config: [field: error:is not an object]"),
])
def test_an_unusable_service_config_fails_the_channel(config, message):
    # (grpcio makes the channel and fails every call INVALID_ARGUMENT with the
    # same message; grpcpy says so when the channel is made)
    with pytest.raises(ServiceConfigError) as info:
        Recorder(options=[("grpc.service_config", config)])
    assert str(info.value).startswith(message)
    assert isinstance(info.value, ValueError)


def test_client_idle_timeout_closes_an_unused_connection_and_the_next_call_reconnects():
    d = Recorder(options=FIXED + [("grpc.client_idle_timeout_ms", 10000)])
    d._submit(Call(), 0.0)
    [(_, sub, _, _)] = d.take("connect")
    conn = Conn(sub)
    d._connect_done(0.1, sub, conn)
    d.fire(1.0)                         # the connect deadline's timer, armed before
    assert d.armed[-1] == 10.1
    d._pick_now()                       # a call at 5 s: still in use at the first check
    d.fire(10.1)
    assert d.take("close") == [] and d.armed[-1] == 20.1
    conn.core.local_open = 1            # a stream open: in use
    d.fire(20.1)
    assert d.take("close") == [] and d.armed[-1] == 30.1
    conn.core.local_open = 0
    d.fire(30.1)
    assert d.take("close") == [("close", sub, conn)]
    assert d.states[-1] == "IDLE" and d._pick_now() is None
    call = Call()
    d._submit(call, 31.0)
    [(_, sub2, _, _)] = d.take("connect")
    conn2 = Conn(sub2)
    d._connect_done(31.1, sub2, conn2)
    assert call.outcome is conn2
    d.fire(32.0)                        # the connect deadline's timer
    assert d.armed[-1] == 41.1


def test_too_many_pings_doubles_the_keepalive_time_of_later_connections():
    d = Recorder(options=FIXED + [("grpc.keepalive_time_ms", 1000)])
    d._submit(Call(), 0.0)
    [(_, sub, _, _)] = d.take("connect")
    conn = Conn(sub)
    d._connect_done(0.1, sub, conn)
    assert d._new_core().config.keepalive_time == 1.0
    conn.core.too_many_pings = True
    d._connection_lost(5.0, conn)
    assert d._keepalive_time == 2.0 and d._new_core().config.keepalive_time == 2.0
