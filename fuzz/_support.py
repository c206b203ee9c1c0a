"""What the harnesses share: the core module, coverage for atheris, and a
reader that turns fuzz bytes into choices."""
import importlib
import os
import struct
import sys

_HERE = os.path.dirname(os.path.abspath(__file__))
ROOT = os.path.dirname(_HERE)


def load_core(require_checked=None):
    """grpcpy._cext_checked when it is built, else (unless GRPCPY_FUZZ_CHECKED=1
    or require_checked) the release grpcpy._cext."""
    if require_checked is None:
        require_checked = os.environ.get("GRPCPY_FUZZ_CHECKED") == "1"
    try:
        return importlib.import_module("grpcpy._cext_checked")
    except ImportError:
        if require_checked:
            raise
        return importlib.import_module("grpcpy._cext")


core = load_core()
CHECKED = core.__name__.endswith("_checked")


# ---------------------------------------------------------------------------
# coverage: the checked build reports line events (Cython linetrace) to
# sys.settrace; each (previous line, line) pair in the core's sources becomes
# a libFuzzer counter, so the fuzzer is guided by edges in the Cython code.

_CORE_DIR_PREFIXES = (os.path.join(ROOT, "_cext"), "_cext/", "_cext\\")
_edge_ids = {}
_hits = {}
_last = 0
_counters = ()
COUNTERS = 1 << 15


def _trace(frame, event, arg):
    """Global and local trace function at once: the checked build hands
    some frames the global one for their line events (see setup.py)."""
    global _last
    if event == "line":
        here = hash((frame.f_code.co_filename, frame.f_lineno))
        key = (_last, here)
        idx = _edge_ids.get(key)
        if idx is None:
            idx = _edge_ids[key] = hash(key) % len(_counters)
        _last = here
        _hits[idx] = _hits.get(idx, 0) + 1
        return _trace
    if event == "call":
        return _trace if frame.f_code.co_filename.startswith(_CORE_DIR_PREFIXES) else None
    return _trace


def flush_coverage():
    """Hand the edges of the last run to libFuzzer: each edge once, and its
    hit count as a power-of-two bucket on a second counter (one call per
    edge, not one per line executed)."""
    global _last
    import atheris
    trace_branch = atheris._trace_branch   # bound by atheris.Setup: look it up now
    n = len(_counters)
    for idx, count in _hits.items():
        trace_branch(_counters[idx])
        trace_branch(_counters[(idx * 31 + count.bit_length()) % n])
    _hits.clear()
    _last = 0


def coverage_target(fn):
    """fn(data) traced, its edges flushed to libFuzzer after each run."""
    def target(data):
        sys.settrace(_trace)
        try:
            fn(data)
        finally:
            sys.settrace(None)
            flush_coverage()
    return target


def enable_coverage():
    """Reserve the counters the core's line edges go to (wrap the target
    with coverage_target; a release build reports no lines)."""
    global _counters
    import atheris
    # counters must exist before atheris.Setup (libFuzzer maps them then):
    # a fixed pool, edges hashed into it
    _counters = [atheris._reserve_counter() for _ in range(COUNTERS)]


def coverage_edges():
    return len(_edge_ids)


# ---------------------------------------------------------------------------
# fuzz bytes -> choices


class Input:
    """Consumes fuzz bytes from the front; past the end every read is 0 /
    empty, so any input is a valid program of choices."""

    __slots__ = ("data", "pos")

    def __init__(self, data):
        self.data = data
        self.pos = 0

    def __len__(self):
        return len(self.data) - self.pos

    def byte(self):
        if self.pos >= len(self.data):
            return 0
        self.pos += 1
        return self.data[self.pos - 1]

    def u16(self):
        return self.byte() << 8 | self.byte()

    def u32(self):
        return self.u16() << 16 | self.u16()

    def take(self, n):
        chunk = self.data[self.pos:self.pos + n]
        self.pos += len(chunk)
        return chunk

    def rest(self):
        return self.take(len(self.data) - self.pos)

    def chunks(self, data=None):
        """Split `data` (default: the rest) into chunks whose sizes come
        from the input itself (a size byte before each chunk)."""
        if data is None:
            out = []
            while len(self):
                out.append(self.take(1 + self.byte() * 4))
            return out
        out = []
        pos = 0
        while pos < len(data):
            n = 1 + self.byte() * 8
            out.append(data[pos:pos + n])
            pos += n
        return out


def frame(ftype, flags, sid, payload):
    return struct.pack(">I", len(payload))[1:] + bytes([ftype, flags]) + struct.pack(">I", sid) + payload
