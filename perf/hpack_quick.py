"""Quick HPACK speed check: grpcpy._cext against the pure-Python hpack package.

    python perf/hpack_quick.py [path/to/hpack-test-case]

Decode: every nghttp2 story, a fresh decoder per story.
Encode: every raw-data story, a fresh encoder per story, headers as lists of
str pairs (as an application passes them; lists are not cached).
Reports the best of several repetitions.
"""
import json
import pathlib
import sys
import time

import hpack

from grpcpy._cext import Decoder, Encoder

ROOT = pathlib.Path(sys.argv[1] if len(sys.argv) > 1 else
                    pathlib.Path(__file__).resolve().parents[2] / "shared/vectors/hpack-test-case")


def load(folder):
    return [json.loads(p.read_text())["cases"] for p in sorted((ROOT / folder).glob("story_*.json"))]


def best(fn, reps=7):
    times = []
    for _ in range(reps):
        t = time.perf_counter()
        fn()
        times.append(time.perf_counter() - t)
    return min(times)


def main():
    wire = [[bytes.fromhex(c["wire"]) for c in cases] for cases in load("nghttp2")]
    raw = [[[(k, v) for h in c["headers"] for k, v in h.items()] for c in cases]
           for cases in load("raw-data")]
    nblocks = sum(map(len, wire))

    def dec_ours():
        for story in wire:
            d = Decoder()
            for b in story:
                d.decode(b)

    def dec_ref():
        for story in wire:
            d = hpack.Decoder()
            for b in story:
                d.decode(b, raw=True)

    def enc_ours():
        for story in raw:
            e = Encoder()
            for h in story:
                e.encode(h)

    def enc_ref():
        for story in raw:
            e = hpack.Encoder()
            for h in story:
                e.encode(h)

    for name, ours, ref, n in (("decode nghttp2", dec_ours, dec_ref, nblocks),
                               ("encode raw-data", enc_ours, enc_ref, sum(map(len, raw)))):
        a, b = best(ours), best(ref, 3)
        print("%-16s %5d blocks  grpcpy %8.2f ms  hpack %8.2f ms  ratio %5.1fx"
              % (name, n, a * 1e3, b * 1e3, b / a))


if __name__ == "__main__":
    main()
