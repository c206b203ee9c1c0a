"""The `grpcpy` command.

    grpcpy demo [--calls N] [--loop uvloop|asyncio]
    grpcpy selfcheck [--seconds S]

demo (the default): a grpcpy server and clients in one process on a free
port; the four call types through the sync and the asyncio API, and how fast
unary calls are (see grpcpy/demo.py). The asyncio side runs on uvloop when
it is installed (as grpcpy.aio.run does), or on the loop --loop names.

selfcheck: runs a gRPC request and response through every layer
that exists so far - HPACK, the frame codec, message framing and two sans-IO
cores (client and server) joined in memory - checks each round trip, and
prints how fast each layer is on this machine. Exit status 0 when every check
passes.
"""
import argparse
import sys
import time

import grpcpy
from grpcpy import _cext as c

REQUEST_HEADERS = (
    (b":method", b"POST"), (b":scheme", b"http"), (b":path", b"/grpc.testing.TestService/UnaryCall"),
    (b":authority", b"localhost:50051"), (b"te", b"trailers"), (b"content-type", b"application/grpc"),
    (b"user-agent", b"grpc-python-grpcpy/" + grpcpy.__version__.encode()),
    (b"grpc-accept-encoding", b"identity,deflate,gzip"),
)


def _rate(fn, seconds):
    """Calls of fn per second, measured for about `seconds`."""
    n, total, t0 = 1, 0, time.perf_counter()
    while True:
        for _ in range(n):
            fn()
        total += n
        dt = time.perf_counter() - t0
        if dt >= seconds:
            return total / dt
        n *= 2


def check_hpack():
    enc, dec = c.Encoder(), c.Decoder()
    for _ in range(3):  # the 2nd and 3rd come from the encoder's cache
        assert dec.decode(enc.encode(REQUEST_HEADERS)) == list(REQUEST_HEADERS)
    block = enc.encode(REQUEST_HEADERS)
    return {"hpack encode (header sets/s)": lambda: enc.encode(REQUEST_HEADERS),
            "hpack decode (header sets/s)": lambda: dec.decode(block)}


def check_frames():
    wb = c.WriteBuffer()
    for sid in range(1, 200, 2):
        c.write_headers_frame(wb, sid, b"h" * 60, False)
        c.write_data_frame(wb, sid, c.encode_message(b"m" * 40), True)
    stream = wb.take()
    frames = c.FrameParser().receive(stream)
    assert len(frames) == 200 and frames[1].data == c.encode_message(b"m" * 40)
    return {"frame parse (frames/s)": (lambda: c.FrameParser().receive(stream), 200)}


def check_messages():
    wire = c.encode_message(b"x" * 100) * 100
    assert c.MessageDecoder().feed(wire) == [(0, b"x" * 100)] * 100
    return {"message decode (messages/s)": (lambda: c.MessageDecoder().feed(wire), 100)}


def check_core():
    client = c.ClientConnection(authority=b"selfcheck")
    server = c.ServerConnection()
    client.initiate()
    server.initiate()

    def pump():
        while True:
            a, b = client.data_to_send(), server.data_to_send()
            if not a and not b:
                return
            if a:
                for ev in server.receive_data(a):
                    if ev.kind == c.CE_MESSAGE:
                        server.send_message(ev.call, ev.data[::-1])
                    elif ev.kind == c.CE_HALF_CLOSED:
                        server.send_status(ev.call, c.SC_OK, "")
            if b:
                for ev in client.receive_data(b):
                    if ev.kind == c.CE_MESSAGE:
                        results.append(ev.data)
                    elif ev.kind == c.CE_CALL_ENDED:
                        results.append(ev.code)

    results = []
    pump()

    def unary():
        call = client.start_call(b"/selfcheck.Echo/Reverse")
        client.send_unary(call, b"selfcheck")
        pump()

    unary()
    assert results == [b"kcehcfles", 0], results
    return {"unary call, two in-memory cores (calls/s)": unary}


def selfcheck(seconds):
    print("grpcpy %s  (extension %s)" % (grpcpy.__version__, c.__file__))
    ok = True
    workloads = {}
    for name, check in (("HPACK", check_hpack), ("frames", check_frames),
                        ("message framing", check_messages), ("sans-IO core", check_core)):
        try:
            workloads.update(check())
            print("  check %-16s ok" % name)
        except Exception as exc:  # report every failing layer, not just the first
            ok = False
            print("  check %-16s FAILED: %r" % (name, exc))
    print()
    for name, work in workloads.items():
        fn, per_call = work if isinstance(work, tuple) else (work, 1)
        print("  %-45s %12.0f" % (name, _rate(fn, seconds) * per_call))
    print("\nselfcheck %s" % ("passed" if ok else "FAILED"))
    return 0 if ok else 1


def main(argv=None):
    ap = argparse.ArgumentParser(prog="grpcpy", description="gRPC for Python")
    ap.add_argument("command", nargs="?", default="demo", choices=["demo", "selfcheck"])
    ap.add_argument("--seconds", type=float, default=0.3, help="selfcheck: time per speed figure")
    ap.add_argument("--calls", type=int, default=2000, help="demo: unary calls to time per API")
    ap.add_argument("--loop", choices=["uvloop", "asyncio"], default=None,
                    help="demo: the event loop (default: uvloop when installed, unless GRPCPY_UVLOOP=0)")
    args = ap.parse_args(argv)
    if args.command == "demo":
        from grpcpy import demo
        return demo.run(args.calls, use_uvloop=None if args.loop is None else args.loop == "uvloop")
    return selfcheck(args.seconds)


if __name__ == "__main__":
    sys.exit(main())
