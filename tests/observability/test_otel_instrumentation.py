"""The real opentelemetry-instrumentation-grpc package on grpcpy, with the
real OpenTelemetry SDK. One program (otel_program.py) instruments itself
with the package's four instrumentors, makes sync and asyncio calls of every
shape and prints the spans; each run is a fresh interpreter (the test
process has grpcio as `grpc`). The reference is the same program on grpcio:

- the unedited program under `python -m grpcpy.run` (grpcpy as `grpc`),
- the program written against grpcpy (grpcpy.insecure_channel,
  grpcpy.server, grpcpy.aio...) after grpcpy.install_as_grpc(),
- that program where the grpcio distribution is not installed: the
  instrumentors then do nothing unless instrument(skip_dep_check=True),

must all give the reference's spans: names, kinds, status, attributes,
exception events, and the server span a child of the client span."""
import json
import os
import pathlib
import re
import subprocess
import sys
import sysconfig

import pytest

import grpcpy

PROGRAM = pathlib.Path(__file__).with_name("otel_program.py")
REPO = os.path.dirname(os.path.abspath(grpcpy.__file__ + "/.."))
CASES = {"unary", "unary_abort", "unary_set_code", "unary_raise", "unary_with_call", "unary_future",
         "server_stream", "server_stream_abort", "client_stream", "bidi",
         "aio_unary", "aio_unary_abort", "aio_server_stream", "aio_client_stream", "aio_bidi"}


def _run(*args, env=None):
    done = subprocess.run([sys.executable, *args], capture_output=True, text=True, timeout=120, cwd=REPO, env=env)
    assert done.returncode == 0, done.stderr[-3000:]
    return json.loads(done.stdout.splitlines()[-1]), done.stderr


@pytest.fixture(scope="module")
def reference():
    printed, _ = _run(str(PROGRAM), "grpc")
    assert printed["grpc"] == "builtins"          # grpcio's own module
    cases = printed["cases"]
    # a sanity check of the program: every case has both spans, linked
    assert set(cases) == CASES
    assert all(case["client"] and case["server"] and case["linked"] for case in cases.values())
    assert cases["unary"]["client"]["kind"] == "CLIENT" and cases["unary"]["server"]["kind"] == "SERVER"
    assert cases["unary_abort"]["client"]["attributes"]["rpc.grpc.status_code"] == 5
    assert cases["unary_abort"]["client"]["status"] == "ERROR"
    assert printed["restored"]
    return cases


def test_unedited_program_under_grpcpy_run(reference):
    printed, _ = _run("-m", "grpcpy.run", str(PROGRAM), "grpc")
    assert printed["grpc"] == "grpcpy._alias"
    assert printed["cases"] == reference
    assert printed["restored"]


def test_program_written_for_grpcpy(reference):
    """grpcpy.insecure_channel and grpcpy.server are what the instrumentors
    wrapped (through the alias); uninstrument() puts the originals back."""
    printed, _ = _run(str(PROGRAM), "grpcpy")
    assert printed["cases"] == reference
    assert printed["restored"]


def _without_grpcio(tmp_path):
    """An environment for `python -S` where every package of this one is
    importable except grpcio and the grpcio-* packages (their modules and
    their distribution metadata), and grpcpy comes from the checkout:
    symbolic links to the other entries of site-packages."""
    site = sysconfig.get_paths()["purelib"]
    farm = tmp_path / "site-packages"
    farm.mkdir()
    for name in os.listdir(site):
        if re.match(r"grpc(io)?([-_.]|$)|grpcpy|__editable__", name) or name.endswith(".pth"):
            continue
        (farm / name).symlink_to(os.path.join(site, name))
    env = {key: value for key, value in os.environ.items() if not key.startswith("PYTHON")}
    env["PYTHONPATH"] = os.pathsep.join((str(farm), REPO))
    probe = subprocess.run([sys.executable, "-S", "-c", (
        "import importlib.metadata as m, importlib.util as u, json\n"
        "def dist(name):\n"
        "    try:\n"
        "        return m.distribution(name).version\n"
        "    except m.PackageNotFoundError:\n"
        "        return None\n"
        "print(json.dumps([dist('grpcio'), u.find_spec('grpc') is None, dist('opentelemetry-sdk')]))")],
        capture_output=True, text=True, timeout=60, env=env)
    assert probe.returncode == 0, probe.stderr
    grpcio, no_grpc_module, sdk = json.loads(probe.stdout)
    assert grpcio is None and no_grpc_module and sdk
    return env


def test_without_grpcio_needs_skip_dep_check(reference, tmp_path):
    env = _without_grpcio(tmp_path)
    # as the package ships: it finds no grpcio distribution, logs it and instruments nothing
    printed, stderr = _run("-S", str(PROGRAM), "grpcpy", env=env)
    assert printed["spans"] == len(CASES)      # the programs's own case spans, no gRPC span
    assert "grpcio" in stderr
    # skip_dep_check=True: the same spans as on grpcio
    printed, _ = _run("-S", str(PROGRAM), "grpcpy", "--skip-dep-check", env=env)
    assert printed["grpc"] == "grpcpy._alias"
    assert printed["cases"] == reference
