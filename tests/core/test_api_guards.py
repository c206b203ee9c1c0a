"""Misuse of the compiled API raises a Python error; it never crashes the
interpreter (each probe runs in a child process, so a crash is a failure,
not a lost test run)."""
import subprocess
import sys

import pytest

PROBES = [
    "c.ClientConnection().send_message(None, b'x')",
    "c.ClientConnection().send_unary(None, b'x')",
    "c.ClientConnection().close_send(None)",
    "c.ClientConnection().write_pending(None)",
    "c.ClientConnection().cancel_call(None)",
    "c.ClientConnection().message_consumed(None, 5)",
    "c.ServerConnection().send_message(None, b'x')",
    "c.ServerConnection().send_status(None, 0)",
    "c.ServerConnection().send_initial_metadata(None)",
    "c.ServerConnection().set_compression(None, 'gzip')",
    "c.ServerConnection().accept_call(None, object())",
    "c.ServerConnection().cancel_call(None)",
    "c.ServerConnection().write_pending(None)",
    "c.ServerConnection().message_consumed(None, 5)",
    "c.BufferPool().release(None)",
    "c.write_data_frame(None, 1, b'')",
    "c.write_headers_frame(None, 1, b'')",
    "c.ClientConnection().send_message(c.ServerConnection(), b'x')",
]


@pytest.mark.parametrize("probe", PROBES)
def test_misuse_raises_instead_of_crashing(probe):
    code = "from grpcpy import _cext as c\ntry:\n    %s\nexcept (TypeError, ValueError) as e:\n    print('RAISED', type(e).__name__)\n" % probe
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=60)
    assert out.returncode == 0, "crashed (%d): %s" % (out.returncode, out.stderr[-500:])
    assert "RAISED" in out.stdout
