"""A short fuzzing run of every harness (atheris/libFuzzer, coverage from the
checked core's line trace): about two minutes in all, GRPCPY_FUZZ_SECONDS to
change it (0 skips). Longer runs: python -m fuzz.run --minutes 60."""
import os

import pytest

from fuzz.run import HARNESSES, fuzz

TOTAL = float(os.environ.get("GRPCPY_FUZZ_SECONDS", "120"))


@pytest.mark.skipif(TOTAL <= 0, reason="GRPCPY_FUZZ_SECONDS=0")
@pytest.mark.parametrize("name", HARNESSES)
def test_harness_runs_clean_with_coverage(checked_core, name):
    ok, execs, cov, ft, tail = fuzz(name, max(1, TOTAL / len(HARNESSES)), quiet=True, extra=["-seed=1"])
    assert ok, "the fuzzer broke an invariant (input saved under fuzz/crashes/%s/):\n%s" % (name, tail)
    assert execs > 0, tail
    # libFuzzer sees the core's edges: the line trace of the checked build works
    assert cov > 100, tail
