"""Fuzzing harnesses for grpcpy's compiled core (atheris).

Each harness module (frames, hpack, framing, server, client) has a
`one_input(data)` function that feeds fuzz bytes to one part of the core and
checks its invariants, raising AssertionError (or the unexpected exception)
when one breaks. They run on grpcpy._cext_checked, the same core built with
bounds checks and line tracing (`make checked`), so an unchecked index is an
IndexError instead of a stray memory read, and the line trace gives libFuzzer
coverage of the Cython code.

    python -m fuzz.run --minutes 60              # every harness, in turn
    python -m fuzz.run --seconds 30 server       # one harness
    python -m fuzz.run --replay                  # seeds and crash inputs once

fuzz/corpus/<harness>/ holds small seed inputs; fuzz/crashes/<harness>/ every
input that ever broke an invariant, replayed by tests/fuzz/.
"""
