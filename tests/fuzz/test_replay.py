"""Every seed and every input that ever broke a harness (fuzz/corpus/,
fuzz/crashes/) replayed through its harness on the bounds-checked core:
each must pass every invariant. A new crash input is a new regression test
by being committed to fuzz/crashes/<harness>/."""
import os

import pytest

from fuzz.run import HARNESSES, ROOT, inputs

CASES = [(name, path) for name in HARNESSES for path, _ in inputs(name)]


@pytest.mark.parametrize("name,path", CASES, ids=[os.path.relpath(p, ROOT) for _, p in CASES])
def test_input_passes_its_harness(checked_core, name, path):
    import importlib
    os.environ["GRPCPY_FUZZ_CHECKED"] = "1"
    module = importlib.import_module("fuzz." + name)
    assert module.core is checked_core
    with open(path, "rb") as f:
        module.one_input(f.read())


def test_every_harness_has_seeds_and_findings_are_kept():
    for name in HARNESSES:
        assert any("corpus" in p for p, _ in inputs(name)), name
    # the inputs that reproduced the core's findings stay replayed
    assert len(inputs("server")) > len(os.listdir(os.path.join(ROOT, "fuzz", "corpus", "server")))
    assert len(inputs("client")) > len(os.listdir(os.path.join(ROOT, "fuzz", "corpus", "client")))
