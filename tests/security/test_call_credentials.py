"""Call credentials on every call shape, for clients of both facades of both
implementations against servers of both (grpcio with itself is the
reference): composite channel credentials (TLS + call credentials),
per-call `credentials=`, failing plugins, and the refusal of call
credentials on channels without transport security.

What grpcio does:
* the server receives the call's own metadata, then what the channel's
  call credentials give (in order), then what the per-call credentials give
  - two `authorization` entries when both carry a token;
* a plugin sees AuthMetadataContext(service_url="https://<authority>/<service>",
  method_name=<method>);
* a plugin that fails ends the call UNAVAILABLE "Getting metadata from
  plugin failed with error: <error>";
* call credentials on a channel without transport security: grpc.aio's
  insecure_channel raises UsageError "Call credentials are only valid on
  secure channels" when the call is made; every other way (sync
  insecure_channel; secure_channel with
  grpc.experimental.insecure_channel_credentials(), alone or in a composite)
  ends the call UNAUTHENTICATED "Established channel does not have a
  sufficient security level to transfer call credential."
"""
import itertools
import threading

import grpc
import grpc.experimental  # noqa: F401  (m.experimental below)
import pytest

from . import drive
from .certs import material

PAIRS = list(itertools.product(drive.KINDS, drive.KINDS))
PAIR_IDS = ["%s-to-%s" % pair for pair in PAIRS]
INSUFFICIENT = "Established channel does not have a sufficient security level to transfer call credential."
METHOD_NAMES = {"unary_unary": "Who", "unary_stream": "US", "stream_unary": "SU", "stream_stream": "SS"}


def shapes(kind):
    return drive.AIO_SHAPES if drive.is_aio(kind) else drive.SYNC_SHAPES


class Plugin(grpc.AuthMetadataPlugin):
    """Gives one metadata entry, or fails (raising, or through the
    callback); records the contexts it was called with."""

    def __init__(self, key="x-plugin", value="yes", fail=None):
        self.key, self.value, self.fail = key, value, fail
        self.contexts = []
        self._lock = threading.Lock()

    def __call__(self, context, callback):
        with self._lock:
            self.contexts.append((context.service_url, context.method_name))
        if self.fail == "raise":
            raise RuntimeError("plugin raised")
        if self.fail == "callback":
            callback(None, ValueError("no token today"))
            return
        callback(((self.key, self.value),), None)


def tls_server(m):
    return m.ssl_server_credentials([material()["server"]])


@pytest.mark.parametrize("pair", PAIRS, ids=PAIR_IDS)
def test_composite_and_per_call_credentials_on_every_shape(pair):
    client, server = pair
    channel_plugin = Plugin("x-a", "1")

    def channel_creds(m):
        return m.composite_channel_credentials(m.ssl_channel_credentials(material()["ca"]),
                                               m.access_token_call_credentials("chan"),
                                               m.metadata_call_credentials(channel_plugin))

    with drive.serving(server, creds=tls_server) as port:
        for shape in shapes(client):
            call_plugin = Plugin("x-b", "2")
            out = drive.call(client, "localhost:%d" % port, channel_creds, shape=shape, metadata=[("x-user", "u")],
                             credentials=lambda m: m.composite_call_credentials(
                                 m.access_token_call_credentials("call"), m.metadata_call_credentials(call_plugin)))
            assert out.code == "OK", (shape, out)
            got = drive.decode(out.value if shape.split(".")[0] in ("unary_unary", "stream_unary") else out.value[0])
            assert got["md"] == [("x-user", "u"), ("authorization", "Bearer chan"), ("x-a", "1"),
                                 ("authorization", "Bearer call"), ("x-b", "2")], shape
            assert call_plugin.contexts == [("https://localhost:%d/T" % port, METHOD_NAMES[shape.split(".")[0]])]
            # the channel's credentials alone
            out = drive.call(client, "localhost:%d" % port, channel_creds, shape=shape)
            assert out.code == "OK", (shape, out)
            got = drive.decode(out.value if shape.split(".")[0] in ("unary_unary", "stream_unary") else out.value[0])
            assert got["md"] == [("authorization", "Bearer chan"), ("x-a", "1")], shape


@pytest.mark.parametrize("fail", ["raise", "callback"])
@pytest.mark.parametrize("client", drive.KINDS)
def test_failing_per_call_plugin_on_every_shape(client, fail):
    detail = {"raise": "plugin raised", "callback": "no token today"}[fail]
    with drive.serving("grpcio-sync", creds=tls_server) as port:
        for shape in shapes(client):
            out = drive.call(client, "localhost:%d" % port, lambda m: m.ssl_channel_credentials(material()["ca"]),
                             shape=shape, credentials=lambda m: m.metadata_call_credentials(Plugin(fail=fail)))
            assert out == ("UNAVAILABLE", "Getting metadata from plugin failed with error: " + detail), shape


def _insecure_creds(m):
    return m.experimental.insecure_channel_credentials()


REFUSALS = {
    # name: (channel credentials, per-call credentials, outcome by facade)
    "insecure_channel, per-call": (None, True, {"sync": ("UNAUTHENTICATED", INSUFFICIENT),
                                                "aio": ("UsageError", "Call credentials are only valid on "
                                                                      "secure channels")}),
    "insecure channel credentials, per-call": (_insecure_creds, True, {"sync": ("UNAUTHENTICATED", INSUFFICIENT),
                                                                       "aio": ("UNAUTHENTICATED", INSUFFICIENT)}),
    "insecure channel credentials in a composite": (
        lambda m: m.composite_channel_credentials(_insecure_creds(m), m.access_token_call_credentials("t")),
        False, {"sync": ("UNAUTHENTICATED", INSUFFICIENT), "aio": ("UNAUTHENTICATED", INSUFFICIENT)}),
}


def _refused_call_credentials(client, plugin):
    """Per-call credentials for the refusal test. grpcio's clients get an
    access token: a grpcio call refused this way can drop the last
    reference to a Python metadata plugin's credentials on a C-core
    thread, which then waits for the GIL while the sync channel's close()
    holds it and waits for that thread - a grpcio deadlock (seen with
    grpc.experimental.insecure_channel_credentials(), about one run in
    three). grpcpy's clients get the plugin, which must never be asked."""
    if client.startswith("grpcio"):
        return lambda m: m.access_token_call_credentials("t")
    return lambda m: m.metadata_call_credentials(plugin)


@pytest.mark.parametrize("case", sorted(REFUSALS))
@pytest.mark.parametrize("pair", PAIRS, ids=PAIR_IDS)
def test_call_credentials_refused_without_transport_security(pair, case):
    client, server = pair
    chan_creds, per_call, outcome = REFUSALS[case]
    plugin = Plugin()
    with drive.serving(server) as port:
        for shape in shapes(client):
            out = drive.call(client, "127.0.0.1:%d" % port, chan_creds, shape=shape,
                             credentials=_refused_call_credentials(client, plugin) if per_call else None)
            assert out == outcome["aio" if drive.is_aio(client) else "sync"], shape
        assert plugin.contexts == []       # never asked for metadata
        # the same channel kind without call credentials works
        out = drive.call(client, "127.0.0.1:%d" % port, _insecure_creds if chan_creds else None)
        assert out.code == "OK", out
        assert drive.decode(out.value)["auth"]["transport_security_type"] == [b"insecure"]
