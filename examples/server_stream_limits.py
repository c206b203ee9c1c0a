"""How a grpcpy server admits calls: the per-connection stream limit, and
workers only for handlers that can run.

`grpc.max_concurrent_streams` (default 256) is the number of calls one
connection may have open at once; the server advertises it in its HTTP/2
SETTINGS and refuses a stream beyond it (RST_STREAM REFUSED_STREAM). gRPC
clients know the limit and queue their calls instead of failing them: below,
12 calls at once on one channel to a server allowing 3 all succeed, and the
server never runs more than 3.

A handler whose request is unary starts only once its request has arrived,
so a client that opens a stream and sends nothing holds no worker thread:
below, a call that sends its request late does not keep the pool's only
worker from serving other calls meanwhile.

    python examples/server_stream_limits.py
"""
import threading
import time
from concurrent import futures

import grpcpy

running = 0
most = 0
lock = threading.Lock()


def work(request, context):
    global running, most
    with lock:
        running += 1
        most = max(most, running)
    time.sleep(0.05)
    with lock:
        running -= 1
    return b"done:" + request


def late_requests():
    """A client-streaming request that sends its one message late (a client
    that opens the call and sends nothing for a while)."""
    time.sleep(1.0)
    yield b"late"


def start_server(workers, options=None):
    server = grpcpy.server(futures.ThreadPoolExecutor(workers), options=options)
    server.add_generic_rpc_handlers((grpcpy.method_handlers_generic_handler(
        "demo.Work", {"Do": grpcpy.unary_unary_rpc_method_handler(work)}),))
    port = server.add_insecure_port("127.0.0.1:0")
    server.start()
    return server, "127.0.0.1:%d" % port


def main():
    # 8 workers, 3 streams per connection
    server, target = start_server(8, options=[("grpc.max_concurrent_streams", 3)])
    try:
        with grpcpy.insecure_channel(target) as channel:
            do = channel.unary_unary("/demo.Work/Do")
            do(b"warm-up", timeout=10)        # the channel learns the server's limit
            calls = [do.future(b"%d" % i, timeout=10) for i in range(12)]
            ok = sum(call.result() == b"done:%d" % i for i, call in enumerate(calls))
            print("12 calls on one channel: %d succeeded, at most %d ran at once" % (ok, most))
    finally:
        server.stop(None)

    # one worker: whatever holds it blocks every other call
    server, target = start_server(1)
    try:
        with grpcpy.insecure_channel(target) as channel:
            do = channel.unary_unary("/demo.Work/Do")
            # the method called with a request that comes late: the call
            # waits for it without the worker, so a call made after it is
            # answered at once (were the worker held, it would miss its deadline)
            slow = channel.stream_unary("/demo.Work/Do").future(late_requests(), timeout=10)
            quick = do(b"quick", timeout=0.5)
            print("while a request was on its way:", quick.decode())
            print("then:", slow.result().decode())
    finally:
        server.stop(None)


if __name__ == "__main__":
    main()
