"""Credentials: TLS and mTLS for channels and servers, call credentials, and
local credentials, with grpcio's factory functions.

Which library does what, and why
--------------------------------
* The TLS record layer is the standard library's `ssl` module: it is
  OpenSSL in C, the asyncio transports (uvloop's too) speak it natively, and
  it adds no Python work per byte - TLS must not cost the facades their
  speed. Both facades drive it through memory BIOs (ssl.SSLObject): the
  asyncio transports do so themselves, the threaded API in
  grpcpy/_sync/_conn.py (an ssl.SSLSocket costs a system call per record).
* pyOpenSSL (with `cryptography`, which it is built on and which parses
  the certificates) does what `ssl` cannot: `ssl` loads certificates and
  keys only from files and reports peer certificates only as a dict. Here
  the PEM bytes grpcio's API takes are parsed up front (bad input fails with
  a clear message before any handshake), OpenSSL checks through pyOpenSSL
  that each private key matches its certificate, and the subject and
  subject alternative names of peer certificates are read for the server's
  auth context.
* The PEM bytes reach `ssl` without touching the disk on Linux: they are
  written to anonymous memory files (memfd) that `ssl` opens through
  /proc/self/fd. Elsewhere a private temporary directory is used and removed
  at once.
"""
import collections
import os
import shutil
import ssl
import tempfile
import threading

from cryptography import x509 as _x509
from cryptography.hazmat.primitives import serialization as _serialization
from cryptography.x509.oid import NameOID as _NameOID
from OpenSSL import SSL as _SSL

from grpcpy import _types

ALPN = ["h2"]


# -- PEM handling (pyOpenSSL) ---------------------------------------------------------

def _as_bytes(value, what):
    if value is None:
        return None
    if isinstance(value, str):
        value = value.encode("ascii")
    if not isinstance(value, (bytes, bytearray)):
        raise TypeError("%s must be PEM bytes, not %s" % (what, type(value).__name__))
    return bytes(value)


def _check_certificates(pem, what):
    try:
        _x509.load_pem_x509_certificates(pem)
    except ValueError as exc:
        raise ValueError("%s is not a PEM certificate: %s" % (what, exc)) from None


def _check_key_pair(private_key, certificate_chain):
    """Both parse and the key belongs to the (first) certificate (checked
    by OpenSSL through pyOpenSSL)."""
    try:
        key = _serialization.load_pem_private_key(private_key, password=None)
    except (ValueError, TypeError) as exc:
        raise ValueError("private key is not a PEM private key: %s" % (exc,)) from None
    try:
        cert = _x509.load_pem_x509_certificates(certificate_chain)[0]
    except ValueError as exc:
        raise ValueError("certificate chain is not PEM: %s" % (exc,)) from None
    ctx = _SSL.Context(_SSL.TLS_METHOD)
    try:
        ctx.use_certificate(cert)
        ctx.use_privatekey(key)
        ctx.check_privatekey()
    except _SSL.Error:
        raise ValueError("the private key does not match the certificate") from None


def certificate_names(der):
    """(common name, [subject alternative names], PEM) of a DER certificate."""
    cert = _x509.load_der_x509_certificate(der)
    names = cert.subject.get_attributes_for_oid(_NameOID.COMMON_NAME)
    cn = names[0].value if names else None
    sans = []
    try:
        ext = cert.extensions.get_extension_for_class(_x509.SubjectAlternativeName).value
    except _x509.ExtensionNotFound:
        ext = None
    if ext is not None:
        for general in ext:
            sans.append(str(general.value))
    return cn, sans, cert.public_bytes(_serialization.Encoding.PEM)


def _load_chain(ctx, certificate_chain, private_key):
    """ssl.SSLContext.load_cert_chain from PEM bytes in memory."""
    if hasattr(os, "memfd_create"):
        fds = []
        try:
            for data in (certificate_chain, private_key):
                fd = os.memfd_create("grpcpy-pem", getattr(os, "MFD_CLOEXEC", 0))
                fds.append(fd)
                os.write(fd, data)
            ctx.load_cert_chain("/proc/self/fd/%d" % fds[0], "/proc/self/fd/%d" % fds[1])
            return
        except OSError:
            pass   # no /proc: fall through
        finally:
            for fd in fds:
                os.close(fd)
    folder = tempfile.mkdtemp(prefix="grpcpy-")
    try:
        paths = []
        for name, data in (("chain.pem", certificate_chain), ("key.pem", private_key)):
            path = os.path.join(folder, name)
            with open(os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600), "wb") as fh:
                fh.write(data)
            paths.append(path)
        ctx.load_cert_chain(paths[0], paths[1])
    finally:
        shutil.rmtree(folder, ignore_errors=True)


def _base_context(purpose_server):
    ctx = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER if purpose_server else ssl.PROTOCOL_TLS_CLIENT)
    ctx.minimum_version = ssl.TLSVersion.TLSv1_2
    ctx.set_alpn_protocols(ALPN)
    return ctx


def _default_roots():
    path = os.environ.get("GRPC_DEFAULT_SSL_ROOTS_FILE_PATH")
    if path:
        with open(path, "rb") as fh:
            return fh.read()
    return None


# -- channel credentials -------------------------------------------------------------------

class ChannelCredentials:
    """grpc.ChannelCredentials."""

    def __init__(self, kind, root_certificates=None, private_key=None, certificate_chain=None,
                 local_connect_type=None, call_credentials=()):
        self._kind = kind
        self._roots = root_certificates
        self._key = private_key
        self._chain = certificate_chain
        self._local_type = local_connect_type
        self._call_credentials = tuple(call_credentials)
        self._context = None
        self._lock = threading.Lock()

    @property
    def is_tls(self):
        return self._kind == "ssl"

    @property
    def allows_call_credentials(self):
        return self._kind in ("ssl", "local")

    def client_context(self):
        """The ssl.SSLContext for connections of this channel (cached)."""
        with self._lock:
            if self._context is None:
                ctx = _base_context(False)
                roots = self._roots if self._roots is not None else _default_roots()
                if roots is not None:
                    ctx.load_verify_locations(cadata=roots.decode("ascii"))
                else:
                    ctx.load_default_certs(ssl.Purpose.SERVER_AUTH)
                if self._key is not None:
                    _load_chain(ctx, self._chain, self._key)
                self._context = ctx
            return self._context

    def with_call_credentials(self, call_credentials):
        return ChannelCredentials(self._kind, self._roots, self._key, self._chain, self._local_type,
                                  self._call_credentials + tuple(call_credentials))


def ssl_channel_credentials(root_certificates=None, private_key=None, certificate_chain=None):
    roots = _as_bytes(root_certificates, "root_certificates")
    key = _as_bytes(private_key, "private_key")
    chain = _as_bytes(certificate_chain, "certificate_chain")
    if (key is None) != (chain is None):
        raise ValueError("private_key and certificate_chain go together")
    if roots is not None:
        _check_certificates(roots, "root_certificates")
    if key is not None:
        _check_key_pair(key, chain)
    return ChannelCredentials("ssl", roots, key, chain)


def local_channel_credentials(local_connect_type=_types.LocalConnectionType.LOCAL_TCP):
    return ChannelCredentials("local", local_connect_type=local_connect_type)


def insecure_channel_credentials():
    return ChannelCredentials("insecure")


def composite_channel_credentials(channel_credentials, *call_credentials):
    flat = []
    for cc in call_credentials:
        flat.extend(cc._plugins if isinstance(cc, CallCredentials) else [cc])
    return channel_credentials.with_call_credentials([CallCredentials(flat)])


# -- call credentials --------------------------------------------------------------------------

class AuthMetadataContext(collections.namedtuple("AuthMetadataContext", ("service_url", "method_name")),
                          _types.AuthMetadataContext):
    pass


class CallCredentials:
    """grpc.CallCredentials: metadata plugins run before each call."""

    def __init__(self, plugins):
        self._plugins = tuple(plugins)


class _AccessToken:
    def __init__(self, token):
        self._metadata = (("authorization", "Bearer " + token),)

    def __call__(self, context, callback):
        callback(self._metadata, None)


def access_token_call_credentials(access_token):
    return CallCredentials([_AccessToken(access_token)])


def metadata_call_credentials(metadata_plugin, name=None):
    return CallCredentials([metadata_plugin])


def composite_call_credentials(*call_credentials):
    plugins = []
    for cc in call_credentials:
        plugins.extend(cc._plugins)
    return CallCredentials(plugins)


def plugins_of(*credentials):
    """Every metadata plugin of some CallCredentials (None skipped)."""
    out = []
    for cc in credentials:
        if cc is not None:
            out.extend(cc._plugins)
    return out


# -- server credentials ------------------------------------------------------------------------

class ServerCertificateConfiguration:
    """grpc.ServerCertificateConfiguration."""

    def __init__(self, pairs, root_certificates):
        self._pairs = pairs
        self._roots = root_certificates


def ssl_server_certificate_configuration(private_key_certificate_chain_pairs, root_certificates=None):
    pairs = _check_pairs(private_key_certificate_chain_pairs)
    roots = _as_bytes(root_certificates, "root_certificates")
    if roots is not None:
        _check_certificates(roots, "root_certificates")
    return ServerCertificateConfiguration(pairs, roots)


def _check_pairs(pairs):
    checked = []
    for key, chain in pairs:
        key = _as_bytes(key, "private key")
        chain = _as_bytes(chain, "certificate chain")
        _check_key_pair(key, chain)
        checked.append((key, chain))
    if not checked:
        raise ValueError("at least one private key / certificate chain pair is required")
    return checked


class ServerCredentials:
    """grpc.ServerCredentials."""

    def __init__(self, kind, config=None, require_client_auth=False, fetcher=None, local_connect_type=None):
        self._kind = kind
        self._config = config
        self._require_client_auth = require_client_auth
        self._fetcher = fetcher
        self._local_type = local_connect_type
        self._lock = threading.Lock()
        self._context = None
        self._context_config = None

    @property
    def is_tls(self):
        return self._kind == "ssl"

    def _build(self, config):
        contexts = []
        for key, chain in config._pairs:
            ctx = _base_context(True)
            _load_chain(ctx, chain, key)
            if config._roots is not None:
                ctx.load_verify_locations(cadata=config._roots.decode("ascii"))
                ctx.verify_mode = ssl.CERT_REQUIRED if self._require_client_auth else ssl.CERT_OPTIONAL
            elif self._require_client_auth:
                raise ValueError("require_client_auth needs root_certificates to verify clients")
            contexts.append((ctx, certificate_names(ssl.PEM_cert_to_DER_cert(chain.decode("ascii")))))
        main = contexts[0][0]
        if len(contexts) > 1:
            # several certificates: choose by the name the client asks for (SNI)
            def choose(ssl_object, server_name, _ctx):
                if server_name:
                    for ctx, (cn, sans, _pem) in contexts:
                        if server_name == cn or server_name in sans or any(
                                s.startswith("*.") and server_name.endswith(s[1:]) for s in sans):
                            ssl_object.context = ctx
                            return None
                return None
            main.sni_callback = choose
        return main

    def server_context(self):
        """The SSLContext for new connections. With a certificate fetcher it
        consults the fetcher on every handshake (rotation without restart)."""
        with self._lock:
            if self._context is None:
                self._context = self._build(self._config)
                self._context_config = self._config
                if self._fetcher is not None:
                    self._context.sni_callback = self._rotate
            return self._context

    def _rotate(self, ssl_object, server_name, _ctx):
        try:
            config = self._fetcher()
        except Exception:   # a failing fetcher keeps the current certificates
            config = None
        with self._lock:
            if config is not None and config is not self._context_config:
                fresh = self._build(config)
                fresh.sni_callback = self._rotate
                self._current = fresh
                self._context_config = config
            current = getattr(self, "_current", None)
        if current is not None:
            ssl_object.context = current
        return None


def ssl_server_credentials(private_key_certificate_chain_pairs, root_certificates=None, require_client_auth=False):
    config = ssl_server_certificate_configuration(private_key_certificate_chain_pairs, root_certificates)
    if require_client_auth and config._roots is None:
        raise ValueError("require_client_auth needs root_certificates to verify clients")
    return ServerCredentials("ssl", config, require_client_auth)


def dynamic_ssl_server_credentials(initial_certificate_configuration, certificate_configuration_fetcher,
                                   require_client_authentication=False):
    return ServerCredentials("ssl", initial_certificate_configuration, require_client_authentication,
                             certificate_configuration_fetcher)


def local_server_credentials(local_connect_type=_types.LocalConnectionType.LOCAL_TCP):
    return ServerCredentials("local", local_connect_type=local_connect_type)


def insecure_server_credentials():
    return ServerCredentials("insecure")


# -- what a server learns about its peer ---------------------------------------------------------

def tls_auth_context(ssl_object):
    """grpcio-shaped auth context of a TLS connection (server side)."""
    context = {"transport_security_type": [b"ssl"], "security_level": [b"TSI_PRIVACY_AND_INTEGRITY"],
               "ssl_session_reused": [b"true" if ssl_object.session_reused else b"false"]}
    der = ssl_object.getpeercert(binary_form=True)
    if der:
        cn, sans, pem = certificate_names(der)
        if cn:
            context["x509_common_name"] = [cn.encode()]
        if sans:
            context["x509_subject_alternative_name"] = [s.encode() for s in sans]
        context["x509_pem_cert"] = [pem]
    return context


def insecure_auth_context():
    return {"transport_security_type": [b"insecure"], "security_level": [b"TSI_SECURITY_NONE"]}


def local_auth_context():
    return {"transport_security_type": [b"local"], "security_level": [b"TSI_PRIVACY_AND_INTEGRITY"]}


def peer_identities(auth_context):
    key = peer_identity_key(auth_context)
    return list(auth_context[key]) if key else None


def peer_identity_key(auth_context):
    if "x509_subject_alternative_name" in auth_context:
        return "x509_subject_alternative_name"
    if "x509_common_name" in auth_context:
        return "x509_common_name"
    return None


def check_alpn(ssl_object):
    """ALPN must have selected h2 (RFC 9113 §3.2): say what went wrong."""
    chosen = ssl_object.selected_alpn_protocol()
    if chosen != "h2":
        return "peer did not negotiate ALPN h2 (got %r)" % (chosen,)
    return None


# -- call credentials at call time (used by both facades) -------------------------------------

INSUFFICIENT_SECURITY = "Established channel does not have a sufficient security level to transfer call credential."


def call_plugins(channel_credentials, call_credentials):
    """(plugins, refusal): the metadata plugins a call must run, or the
    (status, details) it fails with. Call credentials need a secure channel
    (TLS or local), as in grpcio."""
    plugins = []
    if channel_credentials is not None:
        plugins.extend(plugins_of(*channel_credentials._call_credentials))
    if call_credentials is not None:
        plugins.extend(plugins_of(call_credentials))
    if not plugins:
        return (), None
    if channel_credentials is None or not channel_credentials.allows_call_credentials:
        return (), (_types.StatusCode.UNAUTHENTICATED, INSUFFICIENT_SECURITY)
    return plugins, None


def auth_context_for(scheme, authority, method):
    """The AuthMetadataContext given to plugins: service URL and method name."""
    method = method.decode("ascii") if isinstance(method, bytes) else method
    service, _, name = method.rpartition("/")
    host = authority[:-4] if authority.endswith(":443") and scheme == "https" else authority
    return AuthMetadataContext("%s://%s%s" % (scheme, host, service), name)


def run_plugin(plugin, context, done):
    """Run one plugin; done(metadata, error_details) is called exactly once
    (from whatever thread the plugin calls back on)."""
    called = []

    def callback(metadata, error):
        if called:
            return
        called.append(True)
        if error is not None:
            done(None, "Getting metadata from plugin failed with error: %s" % (error,))
        else:
            done(tuple(metadata or ()), None)

    try:
        plugin(context, callback)
    except Exception as exc:   # a plugin that raises is a plugin that failed
        callback(None, exc)


def local_refusal(channel_credentials, address):
    """Local credentials connect only to unix sockets or loopback addresses."""
    if channel_credentials is None or channel_credentials._kind != "local":
        return None
    if address.family == "unix":
        return None
    import ipaddress
    try:
        if ipaddress.ip_address(address.host).is_loopback:
            return None
    except ValueError:
        pass
    return "local credentials connect only to unix sockets and loopback addresses, not %s" % (address,)
