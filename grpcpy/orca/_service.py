"""The out-of-band load report service (gRFC A51, A64):
xds.service.orca.v3.OpenRcaService/StreamCoreMetrics streams a
ServerMetricsRecorder's snapshot at once and then every
max(the interval the client asks for, the server's minimum), until the call
ends.  The rule is here once; the sync and asyncio servicers only wait."""
import asyncio
import heapq
import inspect
import itertools
import threading
import time

from grpcpy import _types
from grpcpy._protos.orca_load_report_pb import OrcaLoadReport
from grpcpy._protos.orca_service_pb import OrcaLoadReportRequest

SERVICE_NAME = "xds.service.orca.v3.OpenRcaService"
METHOD = "/%s/StreamCoreMetrics" % SERVICE_NAME
# grpc-go's default floor: a client cannot make a server report more often
DEFAULT_MIN_REPORT_INTERVAL = 30.0


def report_interval(request, min_interval):
    """Seconds between two reports on a stream opened with ``request``."""
    asked = request.report_interval.seconds + request.report_interval.nanos / 1e9
    return max(asked, min_interval)


def _sync_handler(recorder, min_interval):
    def StreamCoreMetrics(request, context, send_response_callback=None):
        interval = report_interval(request, min_interval)
        if send_response_callback is not None:
            _REPORTER.start(_Stream(recorder, interval, send_response_callback), context)
            return None
        return _blocking_reports(recorder, interval, context)
    # grpcio's non-blocking protocol (grpcpy's and grpcio's sync servers): an
    # open stream holds no worker thread, one reporter thread serves them all
    StreamCoreMetrics.experimental_non_blocking = True
    return StreamCoreMetrics


def _blocking_reports(recorder, interval, context):
    ended = threading.Event()
    if not context.add_callback(ended.set):
        return
    while True:
        yield recorder.snapshot()
        if ended.wait(interval) or not context.is_active():
            return


class _Stream:
    __slots__ = ("recorder", "interval", "send", "ended")

    def __init__(self, recorder, interval, send):
        self.recorder = recorder
        self.interval = interval
        self.send = send
        self.ended = False


class _Reporter:
    """Sends the reports of every non-blocking stream of the process at
    their times, from one daemon thread (started on first use, and again in
    a forked child)."""

    def __init__(self):
        self._cond = threading.Condition()
        self._heap = []         # (when, seq, stream)
        self._seq = itertools.count()
        self._thread = None

    def start(self, stream, context):
        def end():
            stream.ended = True
            stream.send(None)
        stream.send(stream.recorder.snapshot())
        if not context.add_callback(end):
            end()       # the call has ended already
            return
        self._schedule(time.monotonic() + stream.interval, stream)

    def _schedule(self, when, stream):
        with self._cond:
            heapq.heappush(self._heap, (when, next(self._seq), stream))
            if self._thread is None or not self._thread.is_alive():
                self._thread = threading.Thread(target=self._run, name="grpcpy-orca-reports", daemon=True)
                self._thread.start()
            self._cond.notify()

    def _run(self):
        cond, heap = self._cond, self._heap
        while True:
            with cond:
                while True:
                    while heap and heap[0][2].ended:
                        heapq.heappop(heap)
                    if not heap:
                        cond.wait()
                        continue
                    when = heap[0][0]
                    delay = when - time.monotonic()
                    if delay <= 0:
                        stream = heapq.heappop(heap)[2]
                        break
                    cond.wait(delay)
            try:
                stream.send(stream.recorder.snapshot())
            except Exception:   # the call is gone: nothing more for it
                stream.ended = True
                continue
            if not stream.ended:
                # from the planned time, so reports do not drift; never a burst to catch up
                self._schedule(max(when + stream.interval, time.monotonic()), stream)


_REPORTER = _Reporter()


def _aio_handler(recorder, min_interval):
    async def StreamCoreMetrics(request, context):
        interval = report_interval(request, min_interval)
        while True:
            await context.write(recorder.snapshot())
            await asyncio.sleep(interval)
    return StreamCoreMetrics


def add_orca_service(server, recorder, min_report_interval=DEFAULT_MIN_REPORT_INTERVAL):
    """Serve ``recorder``'s (a ServerMetricsRecorder) snapshots on
    ``server`` (grpcpy or grpcio, sync or asyncio) to clients that stream
    them (weighted_round_robin with enableOobLoadReport).
    ``min_report_interval`` (seconds) is the shortest interval a client may
    ask for: reports cost the server, and the balancers need few."""
    if min_report_interval <= 0:
        raise ValueError("min_report_interval must be > 0")
    aio = inspect.iscoroutinefunction(getattr(server, "start", None))
    make = _aio_handler if aio else _sync_handler
    handlers = {
        "StreamCoreMetrics": _types.unary_stream_rpc_method_handler(
            make(recorder, float(min_report_interval)),
            request_deserializer=OrcaLoadReportRequest.FromString,
            response_serializer=OrcaLoadReport.SerializeToString),
    }
    server.add_generic_rpc_handlers((_types.method_handlers_generic_handler(SERVICE_NAME, handlers),))
    add_registered = getattr(server, "add_registered_method_handlers", None)
    if add_registered is not None:
        add_registered(SERVICE_NAME, handlers)
