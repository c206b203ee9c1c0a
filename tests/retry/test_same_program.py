"""One grpcio-written client program (tests/retry/retry_program.py), run as
it is with grpcio and under `python -m grpcpy.run`, against the same flaky
grpcio server: the printed outcomes and the attempts the server saw for each
call must be the same."""
import json
import pathlib
import subprocess
import sys

PROGRAM = pathlib.Path(__file__).with_name("retry_program.py")
ROOT = pathlib.Path(__file__).resolve().parents[2]


def _run(server, prefix, *launcher):
    done = subprocess.run([sys.executable, *launcher, str(PROGRAM), server.target, prefix],
                          capture_output=True, text=True, timeout=60, cwd=str(ROOT))
    assert done.returncode == 0, done.stderr[-2000:]
    printed = json.loads(done.stdout.splitlines()[-1])
    seen = {name: [a.previous for a in server.recorder.attempts(prefix + name)] for name in printed}
    return printed, seen


def test_grpcio_program_behaves_the_same_on_grpcpy(grpcio_server):
    reference, reference_seen = _run(grpcio_server, "grpcio:")
    # the reference is what the policy says (a sanity check of the program)
    assert reference["fails twice"] == {"code": "OK", "response": "ok:a", "answered by attempt": "3"}
    assert reference["always fails"]["answered by attempt"] == "4"
    assert reference_seen["fails twice"] == [None, "1", "2"]
    assert reference_seen["retries off"] == [None]

    printed, seen = _run(grpcio_server, "grpcpy:", "-m", "grpcpy.run")
    assert printed == reference
    assert seen == reference_seen
