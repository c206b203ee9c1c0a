"""Measurement helpers shared by the perf/ benchmarks.

Every figure is taken the same way: each implementation's workload is
calibrated to run for about `target` seconds per sample, then samples are
taken in interleaved rounds (A B C, A B C, ...) so that drift of a noisy
machine hits all implementations alike. We report medians, the min-max spread
and ratios computed from medians of the same run.
"""
import json
import os
import platform
import statistics
import sys
import time
from importlib import metadata

perf_counter = time.perf_counter


def calibrate(fn, target):
    """How many calls of fn take about `target` seconds."""
    n = 1
    while True:
        t0 = perf_counter()
        for _ in range(n):
            fn()
        dt = perf_counter() - t0
        if dt >= target / 4 or n >= 1 << 24:
            return max(1, int(n * target / max(dt, 1e-9)))
        n *= 4


def interleaved(workloads, rounds=7, target=0.2):
    """workloads: {name: (fn, units_per_call)} -> {name: [units/s per round]}.

    fn() performs one call's worth of work on `units_per_call` units (bytes,
    headers, frames...). Returns throughput samples in units per second.
    """
    loops = {name: calibrate(fn, target) for name, (fn, _) in workloads.items()}
    samples = {name: [] for name in workloads}
    for _ in range(rounds):
        for name, (fn, units) in workloads.items():
            n = loops[name]
            t0 = perf_counter()
            for _ in range(n):
                fn()
            dt = perf_counter() - t0
            samples[name].append(units * n / dt)
    return samples


def summary(values):
    return {
        "median": statistics.median(values),
        "min": min(values),
        "max": max(values),
        "samples": values,
    }


def versions(*packages):
    out = {"python": sys.version.split()[0], "implementation": platform.python_implementation(),
           "machine": platform.machine(), "cpus": os.cpu_count(), "platform": platform.platform()}
    for pkg in packages:
        try:
            out[pkg] = metadata.version(pkg)
        except metadata.PackageNotFoundError:
            out[pkg] = None
    return out


def write_results(name, payload):
    folder = os.path.join(os.path.dirname(os.path.abspath(__file__)), "results")
    os.makedirs(folder, exist_ok=True)
    path = os.path.join(folder, "%s-%s.json" % (name, time.strftime("%Y%m%d-%H%M%S")))
    with open(path, "w") as fh:
        json.dump(payload, fh, indent=1, sort_keys=True)
    return path


def fmt_rate(x):
    for unit, scale in (("G", 1e9), ("M", 1e6), ("k", 1e3)):
        if x >= scale:
            return "%.2f%s" % (x / scale, unit)
    return "%.1f" % x
