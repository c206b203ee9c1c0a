"""Byte streams shaped like real gRPC traffic, built with grpcpy's frame writers.

recorded_grpc_stream(n_calls) is what the frame-parser tests and the perf
harness feed to parsers: n unary calls, each as the frames both peers send
(request HEADERS + DATA with END_STREAM; response HEADERS, DATA, trailers
HEADERS with END_STREAM), with the connection chatter a real peer adds now
and then (WINDOW_UPDATE after data, PING and its ack, a SETTINGS ack).
Header blocks are opaque bytes of realistic sizes (the frame layer never
looks inside them); DATA payloads carry a 5-byte gRPC message prefix.
"""
import random

from grpcpy._cext import (
    WriteBuffer,
    write_data_frame,
    write_headers_frame,
    write_ping_frame,
    write_settings_frame,
    write_window_update_frame,
)


def _grpc_message(rng):
    body = rng.randbytes(rng.randint(20, 100))
    return b"\x00" + len(body).to_bytes(4, "big") + body


def recorded_grpc_stream(n_calls, seed=0, side="both"):
    """Frames of n_calls unary gRPC calls as one byte string.

    side: "client" (what a server receives), "server" (what a client
    receives) or "both" (each call's request frames followed by its response
    frames: one stream with the frame mix of both directions).
    """
    if side not in ("client", "server", "both"):
        raise ValueError("side must be 'client', 'server' or 'both'")
    rng = random.Random(seed)
    wb = WriteBuffer(1 << 16)
    if side in ("server", "both"):
        write_settings_frame(wb, [(4, 1 << 20), (5, 16384), (6, 8192)])
    if side in ("client", "both"):
        write_settings_frame(wb, [(2, 0), (4, 1 << 20)])
    write_settings_frame(wb, ack=True)
    received = 0
    for call in range(n_calls):
        sid = 2 * call + 1
        if side in ("client", "both"):
            # First request: a full HPACK block; later ones mostly indexed.
            write_headers_frame(wb, sid, rng.randbytes(180 if call == 0 else rng.randint(45, 75)))
            write_data_frame(wb, sid, _grpc_message(rng), end_stream=True)
        if side in ("server", "both"):
            write_headers_frame(wb, sid, rng.randbytes(60 if call == 0 else rng.randint(5, 15)))
            msg = _grpc_message(rng)
            received += len(msg)
            write_data_frame(wb, sid, msg)
            write_headers_frame(wb, sid, rng.randbytes(rng.randint(10, 30)), end_stream=True)
        if received > 32768:
            write_window_update_frame(wb, 0, received)
            received = 0
        if call % 97 == 50:
            opaque = rng.randbytes(8)
            write_ping_frame(wb, opaque)
            write_ping_frame(wb, opaque, ack=True)
        if call % 500 == 499:
            write_settings_frame(wb, ack=True)
    return wb.take()


def chunked(data, size=16384):
    """The stream cut into size-byte chunks, as a socket would deliver it."""
    return [data[i:i + size] for i in range(0, len(data), size)]
