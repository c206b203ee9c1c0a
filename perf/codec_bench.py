"""Codec microbenchmarks: grpcpy's compiled codec against the pure-Python
reference packages, in one run, as ratios.

    python perf/codec_bench.py [--rounds N] [--quick]

Figures (all throughput, higher is better):
  hpack-decode/<folder>  headers/s decoding every story of an hpack-test-case
                         folder, one fresh decoder per story (grpcpy vs hpack)
  hpack-encode/raw-data  headers/s encoding every raw-data story, one fresh
                         encoder per story (grpcpy vs hpack)
  frames/grpc-stream     frames/s parsing a recorded gRPC byte stream of many
                         small HEADERS/DATA frames in 16 KiB chunks
                         (grpcpy FrameParser vs hyperframe)
  framing/messages       messages/s through the 5-byte message decoder (grpcpy
                         only: an absolute figure to catch regressions)

Results go to perf/results/codec-*.json with versions and raw samples.
"""
import argparse
import json
import os
import pathlib
import sys

HERE = pathlib.Path(__file__).resolve().parent
sys.path.insert(0, str(HERE.parent))
sys.path.insert(0, str(HERE))

import hpack  # noqa: E402
import hyperframe.frame as hf  # noqa: E402

from grpcpy import _cext as c  # noqa: E402
from harness import fmt_rate, interleaved, summary, versions, write_results  # noqa: E402
from tests.codec.framegen import recorded_grpc_stream  # noqa: E402

VECTORS = pathlib.Path(os.environ.get("GRPCPY_SHARED", HERE.parents[1] / "shared")) / "vectors" / "hpack-test-case"


def load_stories(folder):
    stories = []
    for path in sorted((VECTORS / folder).glob("*.json")):
        cases = []
        for case in json.loads(path.read_text())["cases"]:
            headers = [next(iter(h.items())) for h in case["headers"]]
            wire = bytes.fromhex(case["wire"]) if "wire" in case else None
            cases.append((wire, headers, case.get("header_table_size")))
        stories.append(cases)
    return stories


def decode_workloads(stories):
    n_headers = sum(len(h) for story in stories for _, h, _ in story)

    def grpcpy_decode():
        for story in stories:
            d = c.Decoder()
            for wire, _, size in story:
                if size is not None:
                    d.max_table_size = size
                d.decode(wire)

    def hpack_decode():
        for story in stories:
            d = hpack.Decoder()
            for wire, _, size in story:
                if size is not None:
                    d.max_allowed_table_size = size
                d.decode(wire, raw=True)

    return {"grpcpy": (grpcpy_decode, n_headers), "hpack": (hpack_decode, n_headers)}


def encode_workloads(stories):
    prepared = [[[(n.encode(), v.encode()) for n, v in h] for _, h, _ in story] for story in stories]
    n_headers = sum(len(h) for story in prepared for h in story)

    def grpcpy_encode():
        for story in prepared:
            e = c.Encoder()
            for headers in story:
                e.encode(headers)

    def hpack_encode():
        for story in prepared:
            e = hpack.Encoder()
            for headers in story:
                e.encode(headers)

    return {"grpcpy": (grpcpy_encode, n_headers), "hpack": (hpack_encode, n_headers)}


def frame_workloads(calls):
    stream = recorded_grpc_stream(calls)
    chunks = [stream[i:i + 16384] for i in range(0, len(stream), 16384)]
    n_frames = len(c.FrameParser().receive(stream))

    def grpcpy_parse():
        p = c.FrameParser()
        for chunk in chunks:
            p.receive(chunk)

    def hyperframe_parse():
        buf = bytearray()
        for chunk in chunks:
            buf += chunk
            pos = 0
            while len(buf) - pos >= 9:
                frame, length = hf.Frame.parse_frame_header(memoryview(buf[pos:pos + 9]))
                if len(buf) - pos - 9 < length:
                    break
                frame.parse_body(memoryview(buf[pos + 9:pos + 9 + length]))
                pos += 9 + length
            del buf[:pos]

    return {"grpcpy": (grpcpy_parse, n_frames), "hyperframe": (hyperframe_parse, n_frames)}, len(stream)


def framing_workloads():
    msgs = [c.encode_message(b"m" * n) for n in (0, 10, 100, 20, 1000) * 200]
    stream = b"".join(msgs)
    chunks = [stream[i:i + 16384] for i in range(0, len(stream), 16384)]

    def grpcpy_messages():
        d = c.MessageDecoder()
        for chunk in chunks:
            d.feed(chunk)

    return {"grpcpy": (grpcpy_messages, len(msgs))}


def main(argv=None):
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--rounds", type=int, default=7)
    ap.add_argument("--target", type=float, default=0.2, help="seconds per sample")
    ap.add_argument("--quick", action="store_true", help="3 rounds of 0.05 s (smoke run)")
    ap.add_argument("--no-save", action="store_true")
    args = ap.parse_args(argv)
    if args.quick:
        args.rounds, args.target = 3, 0.05

    figures = {}
    for folder in ("nghttp2", "go-hpack", "python-hpack", "nghttp2-change-table-size"):
        figures["hpack-decode/" + folder] = ("headers/s", decode_workloads(load_stories(folder)))
    figures["hpack-encode/raw-data"] = ("headers/s", encode_workloads(load_stories("raw-data")))
    frames, stream_len = frame_workloads(1000)
    figures["frames/grpc-stream"] = ("frames/s", frames)
    figures["framing/messages"] = ("messages/s", framing_workloads())

    results = {}
    print("%-38s %-10s %12s %23s %9s" % ("figure", "impl", "median", "min-max", "grpcpy x"))
    for name, (unit, workloads) in figures.items():
        samples = interleaved(workloads, rounds=args.rounds, target=args.target)
        stats = {impl: summary(v) for impl, v in samples.items()}
        base = stats["grpcpy"]["median"]
        results[name] = {"unit": unit, "impls": stats}
        for impl, s in stats.items():
            ratio = "" if impl == "grpcpy" else "%.1fx" % (base / s["median"])
            if impl != "grpcpy":
                results[name].setdefault("ratios", {})[impl] = base / s["median"]
            print("%-38s %-10s %12s %23s %9s" % (
                name + " (" + unit + ")", impl, fmt_rate(s["median"]),
                "%s-%s" % (fmt_rate(s["min"]), fmt_rate(s["max"])), ratio))
    payload = {
        "benchmark": "codec",
        "rounds": args.rounds,
        "seconds_per_sample": args.target,
        "grpc_stream_bytes": stream_len,
        "versions": versions("grpcpy", "hpack", "hyperframe", "Cython"),
        "figures": results,
    }
    if not args.no_save:
        print("results:", write_results("codec", payload))
    return results


if __name__ == "__main__":
    main()
