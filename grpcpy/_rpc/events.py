"""The one dispatch of the call core's events.

The core (grpcpy._cext) reports what happened as CallEvent objects. On a
client connection an event names the call's `user` (the call object of
grpcpy._rpc.client); on a server connection it names the core's ServerCall,
whose `user` is the servicer context once the call was accepted. Both
facades hand every batch of events to these two functions, so what an event
means is decided here once.

A connection object passed in provides:
  client: handshake_done()  the server's HTTP/2 preface arrived
          report_lost()     GOAWAY or connection closed: the channel must
                            stop picking this connection
  server: server            the server object; its _call_started(conn, call)
                            admits a new call and returns the context to
                            run (or None), _start_handler(ctx) starts its
                            handler (or leaves it pending for its request)
"""
from grpcpy import _cext

CE_CALL_STARTED = _cext.CE_CALL_STARTED
CE_INITIAL_METADATA = _cext.CE_INITIAL_METADATA
CE_MESSAGE = _cext.CE_MESSAGE
CE_HALF_CLOSED = _cext.CE_HALF_CLOSED
CE_CALL_ENDED = _cext.CE_CALL_ENDED
CE_WRITE_READY = _cext.CE_WRITE_READY
CE_GOAWAY = _cext.CE_GOAWAY
CE_CONNECTION_CLOSED = _cext.CE_CONNECTION_CLOSED
CE_CONNECTION_READY = _cext.CE_CONNECTION_READY
CE_STREAM_REFUSED = _cext.CE_STREAM_REFUSED
_ServerCall = _cext.ServerCall


def dispatch_client(conn, events):
    for ev in events:
        kind = ev.kind
        if kind == CE_MESSAGE:
            ev.call._on_message(ev.data, ev.value, ev.code)
        elif kind == CE_CALL_ENDED:
            ev.call._on_end(ev.code, ev.details, ev.metadata)
        elif kind == CE_INITIAL_METADATA:
            ev.call._on_initial_metadata(ev.metadata)
        elif kind == CE_WRITE_READY:
            ev.call._on_write_ready()
        elif kind == CE_CONNECTION_READY:
            conn.handshake_done()
        elif kind == CE_GOAWAY or kind == CE_CONNECTION_CLOSED:
            conn.report_lost()
        elif kind == CE_STREAM_REFUSED:
            ev.call._on_stream_refused()


def dispatch_server(conn, events):
    """Deliver a batch of server events. Calls started in the batch, and
    pending calls whose request the batch completed, start their handlers
    after the whole batch is delivered, so a unary handler finds its
    request (which came in the same read) in place."""
    started = None
    for ev in events:
        kind = ev.kind
        target = ev.call
        if type(target) is _ServerCall:
            if kind == CE_CALL_STARTED:
                ctx = conn.server._call_started(conn, target)
                if ctx is not None:
                    if started is None:
                        started = [ctx]
                    else:
                        started.append(ctx)
                continue
            target = target.user
            if target is None:
                continue
        if kind == CE_MESSAGE:
            target._on_message(ev.data, ev.value, ev.code)
        elif kind == CE_HALF_CLOSED:
            target._on_half_close()
            if target._pending:
                if started is None:
                    started = [target]
                elif target not in started:
                    started.append(target)
        elif kind == CE_CALL_ENDED:
            target._on_end(ev.code, ev.details)
        elif kind == CE_WRITE_READY:
            target._on_write_ready()
    if started is not None:
        start = conn.server._start_handler
        for ctx in started:
            if ctx._pending:
                start(ctx)
