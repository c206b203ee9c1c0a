"""Client memory after a run of grpcpy.aio channels: K cycles of open, one
call, close (and K of open, one call, drop without close) against a grpcio
server in this process; prints the client's RSS growth for each.

    python perf/channel_churn.py [--cycles 2000]

A channel dropped without close() is collected with its connection (the
loop holds the connection, the connection holds the channel weakly); the
figure for "dropped" would grow by about 26 KiB per cycle otherwise.
"""
import argparse
import asyncio
import gc
import os
import sys


def rss_of(pid):
    with open("/proc/%d/status" % pid) as f:
        for line in f:
            if line.startswith("VmRSS:"):
                return int(line.split()[1]) * 1024
    raise RuntimeError("no VmRSS")


def main():
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--cycles", type=int, default=2000)
    args = ap.parse_args()
    sys.path.insert(0, os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
    grown = churn(args.cycles)
    print("client RSS after %d grpcpy.aio channel cycles: closed %+.1f MiB, dropped %+.1f MiB"
          % (args.cycles, grown["close"] / 2**20, grown["drop"] / 2**20))


if __name__ == "__main__":
    main()
