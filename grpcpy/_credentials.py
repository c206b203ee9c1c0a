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
import ipaddress
import logging
import os
import socket
import ssl
import threading

from grpcpy import _types

ALPN = ["h2"]
_LOGGER = logging.getLogger("grpcpy.credentials")


# -- PEM handling (pyOpenSSL) ---------------------------------------------------------

# cryptography and pyOpenSSL are imported when a certificate is first
# handled, not with grpcpy: together they take longer to import than the
# rest of grpcpy, and an insecure channel or server never needs them.
_x509 = _serialization = _NameOID = _SSL = _SAN_KINDS = None


def _crypto():
    global _x509, _serialization, _NameOID, _SSL, _SAN_KINDS
    if _SAN_KINDS is None:
        from cryptography import x509
        from cryptography.hazmat.primitives import serialization
        from cryptography.x509.oid import NameOID
        from OpenSSL import SSL
        _x509, _serialization, _NameOID, _SSL = x509, serialization, NameOID, SSL
        _SAN_KINDS = ((x509.DNSName, "dns"), (x509.UniformResourceIdentifier, "uri"), (x509.RFC822Name, "email"))


def _as_bytes(value, what):
    if value is None:
        return None
    if isinstance(value, str):
        value = value.encode("ascii")
    if not isinstance(value, (bytes, bytearray)):
        raise TypeError("%s must be PEM bytes, not %s" % (what, type(value).__name__))
    return bytes(value)


def _check_certificates(pem, what):
    _crypto()
    try:
        _x509.load_pem_x509_certificates(pem)
    except ValueError as exc:
        raise ValueError("%s is not a PEM certificate: %s" % (what, exc)) from None


def _check_key_pair(private_key, certificate_chain):
    """Both parse and the key belongs to the (first) certificate (checked
    by OpenSSL through pyOpenSSL)."""
    _crypto()
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


OTHER_SAN = "other types of SAN"   # grpcio's text for the kinds of name it does not spell out


def certificate_names(der):
    """(common name, [(kind, text)] of subject alternative names, PEM) of a
    DER certificate, read as grpcio reads them: the subject's first common
    name ("" when it has none); alternative names in certificate order, of
    kind "dns", "uri", "email", "ip" (inet_ntop text) or None (any other
    kind, text OTHER_SAN)."""
    _crypto()
    cert = _x509.load_der_x509_certificate(der)
    names = cert.subject.get_attributes_for_oid(_NameOID.COMMON_NAME)
    cn = names[0].value if names else ""
    if isinstance(cn, bytes):
        cn = cn.decode("utf-8", "replace")
    sans = []
    try:
        ext = cert.extensions.get_extension_for_class(_x509.SubjectAlternativeName).value
    except _x509.ExtensionNotFound:
        ext = ()
    for general in ext:
        if isinstance(general, _x509.IPAddress) and not isinstance(general.value, (ipaddress.IPv4Network,
                                                                                   ipaddress.IPv6Network)):
            ip = general.value
            sans.append(("ip", socket.inet_ntop(socket.AF_INET if ip.version == 4 else socket.AF_INET6, ip.packed)))
            continue
        for cls, kind in _SAN_KINDS:
            if isinstance(general, cls):
                sans.append((kind, general.value))
                break
        else:
            sans.append((None, OTHER_SAN))
    return cn, sans, cert.public_bytes(_serialization.Encoding.PEM)


def _is_spiffe_id(uri):
    """grpcio's test for a SPIFFE ID: spiffe://trust-domain/workload."""
    if not uri.startswith("spiffe://") or len(uri) > 2048:
        return False
    parts = uri.split("/")
    return len(parts) >= 4 and parts[3] != "" and len(parts[2]) <= 255


def _load_chain(ctx, certificate_chain, private_key):
    """ssl.SSLContext.load_cert_chain from PEM bytes in memory."""
    # (the standard library cannot tell which certificate a context holds:
    # kept for channelz's socket security, the local certificate)
    if getattr(ctx, "grpcpy_certificate_chain", None) is None:
        ctx.grpcpy_certificate_chain = certificate_chain
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
    import shutil   # the fallback only: most systems never import these here
    import tempfile
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
        self._context = None            # the SSLContext sockets are wrapped with
        self._current = None            # the _ContextSet of the configuration in force
        self._context_config = None

    @property
    def is_tls(self):
        return self._kind == "ssl"

    def _build(self, config):
        """The contexts of one configuration, one per key/certificate pair."""
        contexts = []
        for key, chain in config._pairs:
            ctx = _base_context(True)
            _load_chain(ctx, chain, key)
            if config._roots is not None:
                ctx.load_verify_locations(cadata=config._roots.decode("ascii"))
                ctx.verify_mode = ssl.CERT_REQUIRED if self._require_client_auth else ssl.CERT_OPTIONAL
            elif self._require_client_auth:
                raise ValueError("require_client_auth needs root_certificates to verify clients")
            cn, sans, _pem = certificate_names(ssl.PEM_cert_to_DER_cert(chain.decode("ascii")))
            contexts.append((ctx, cn, [text for _, text in sans]))
        return _ContextSet(contexts)

    def server_context(self):
        """The SSLContext for new connections. With several certificates it
        serves the one naming the server name the client asks for (SNI);
        with a certificate fetcher it consults the fetcher on every
        handshake (rotation without restart)."""
        with self._lock:
            if self._context is None:
                self._current = self._build(self._config)
                self._context_config = self._config
                self._context = self._current.main
                if self._fetcher is not None:
                    self._context.sni_callback = self._rotate
                elif len(self._current.contexts) > 1:
                    self._context.sni_callback = self._current.choose
            return self._context

    def _rotate(self, ssl_object, server_name, _ctx):
        """SNI callback of a dynamic port: as grpcio, a fetcher that returns
        None, raises, or returns something that is not a certificate
        configuration leaves the current certificates in place."""
        try:
            config = self._fetcher()
        except Exception:
            _LOGGER.exception("Failed fetching new server credentials, continuing to use previously-loaded "
                              "credentials.")
            config = None
        if config is not None and not isinstance(config, ServerCertificateConfiguration):
            _LOGGER.error("Error fetching certificate configuration: certificate configuration must be of type "
                          "grpc.ServerCertificateConfiguration, not %s", type(config).__name__)
            config = None
        with self._lock:
            if config is not None and config is not self._context_config:
                try:
                    self._current = self._build(config)
                    self._context_config = config
                except (ValueError, OSError, ssl.SSLError):
                    _LOGGER.exception("Failed loading the fetched server certificates, continuing to use "
                                      "previously-loaded credentials.")
            current = self._current
        current.choose(ssl_object, server_name, _ctx)
        return None


class _ContextSet:
    """The server contexts of one certificate configuration and the choice
    among them by SNI (grpcio's rule: the first certificate whose names
    match the requested name, else the first certificate)."""

    def __init__(self, contexts):
        self.contexts = contexts            # [(SSLContext, common name, [alternative names])]
        self.main = contexts[0][0]

    def pick(self, server_name):
        if server_name and len(self.contexts) > 1:
            for ctx, cn, sans in self.contexts:
                if names_match(cn, sans, server_name):
                    return ctx
        return self.main

    def choose(self, ssl_object, server_name, _ctx):
        ctx = self.pick(server_name)
        if ssl_object.context is not ctx:
            ssl_object.context = ctx
        return None


def names_match(cn, sans, name):
    """Whether a certificate with common name `cn` and alternative names
    `sans` (texts) is one for `name`, by grpcio's rules: the alternative
    names when there are any (IP addresses exactly, DNS names without case,
    '*.' wildcards for one leftmost label), else the common name (not for
    an IP address)."""
    try:
        ipaddress.ip_address(name)
        like_ip = True
    except ValueError:
        like_ip = False
    for entry in sans:
        if (name == entry) if like_ip else _entry_matches(entry, name):
            return True
    return not sans and not like_ip and _entry_matches(cn or "", name)


def _entry_matches(entry, name):
    name = name[:-1] if name.endswith(".") else name
    entry = entry[:-1] if entry.endswith(".") else entry
    if not entry or not name:
        return False
    if entry.lower() == name.lower():
        return True
    if not entry.startswith("*.") or len(entry) < 3:
        return False
    # '*.example.com' stands for exactly one label in front of example.com
    label_end = name.find(".")
    if label_end <= 0:
        return False
    rest = name[label_end + 1:]
    if "." not in rest.rstrip(".") or rest.endswith("."):
        return False     # no wildcard for a name directly under a top-level domain
    return rest.lower() == entry[2:].lower()


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
    version = ssl_object.version()
    if version:
        context["ssl_tls_version"] = [version.encode()]
    der = ssl_object.getpeercert(binary_form=True)
    if der:
        cn, sans, pem = certificate_names(der)
        context["x509_common_name"] = [cn.encode()]
        if sans:
            context["x509_subject_alternative_name"] = [text.encode() for _, text in sans]
            for kind, key in (("dns", "peer_dns"), ("uri", "peer_uri"), ("email", "peer_email"), ("ip", "peer_ip")):
                values = [text.encode() for k, text in sans if k == kind]
                if values:
                    context[key] = values
            uris = context.get("peer_uri", ())
            if len(uris) == 1 and _is_spiffe_id(uris[0].decode()):
                context["peer_spiffe_id"] = list(uris)   # one URI only, as grpcio
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
    if auth_context.get("transport_security_type") == [b"local"]:
        return "transport_security_type"     # as grpcio's local credentials
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


# -- what a channel calls its server (used by both facades) -----------------------------------

def host_of(authority):
    """The host part of an authority (host, host:port, [v6]:port)."""
    if authority.startswith("["):
        return authority[1:].split("]", 1)[0]
    return authority.rsplit(":", 1)[0] if authority.count(":") == 1 else authority


def channel_names(target_authority, default_authority, target_name_override, tls):
    """(authority, TLS server name, check_call_host) of a channel, derived
    as grpcio derives them: the :authority of its calls is
    grpc.default_authority, else grpc.ssl_target_name_override, else the
    target's; TLS asks for and verifies the override, else the authority's
    host. With an override in force and an authority that is not the name
    verified, grpcio checks each call's host against the server's
    certificate (check_call_host, see call_host_refusal)."""
    authority = default_authority or target_name_override or target_authority
    target_name = host_of(authority)
    check = bool(tls and target_name_override and authority != target_name)
    return authority, target_name_override or target_name, check


CALL_HOST_MISMATCH = "call host does not match SSL server name"


def call_host_refusal(authority, ssl_object):
    """None when the server certificate of a TLS connection names the
    authority's host, else the (status, details) grpcio fails calls with."""
    der = ssl_object.getpeercert(binary_form=True)
    cn, sans = certificate_names(der)[:2] if der else ("", [])
    if names_match(cn, [text for _, text in sans], host_of(authority)):
        return None
    return _types.StatusCode.UNAUTHENTICATED, CALL_HOST_MISMATCH


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


LOCAL_ENDPOINT_REFUSAL = "Endpoint is neither UDS or TCP loopback address."


def _is_uds(connect_type):
    return getattr(connect_type, "name", connect_type) == "UDS"


def local_refusal(channel_credentials, address):
    """Why a channel with local credentials may not connect to `address`
    (None: it may). As in grpcio each connection type allows one kind of
    endpoint: UDS a unix socket (unix: or unix-abstract: targets), LOCAL_TCP
    a loopback IP address."""
    if channel_credentials is None or channel_credentials._kind != "local":
        return None
    if _is_uds(channel_credentials._local_type):
        if address.family == "unix":
            return None
        return "local credentials of type UDS connect only to unix: and unix-abstract: targets, not %s" % (address,)
    if address.family != "unix":
        try:
            if ipaddress.ip_address(address.host).is_loopback:
                return None
        except ValueError:
            pass
    return LOCAL_ENDPOINT_REFUSAL


def local_server_refusal(server_credentials, sock):
    """Why a connection accepted on a port with local server credentials is
    refused (None: it is not). grpcio checks the connection's local address
    against the credentials' connection type: UDS takes unix-socket
    connections only, LOCAL_TCP TCP connections made to 127.0.0.1 or ::1
    only (a listener on another address refuses everything)."""
    if server_credentials is None or server_credentials._kind != "local":
        return None
    family = sock.family
    if _is_uds(server_credentials._local_type):
        return None if family == getattr(socket, "AF_UNIX", None) else LOCAL_ENDPOINT_REFUSAL
    if family in (socket.AF_INET, socket.AF_INET6):
        try:
            ip = ipaddress.ip_address(sock.getsockname()[0].split("%", 1)[0])
        except (OSError, ValueError):
            return LOCAL_ENDPOINT_REFUSAL
        if ip.version == 6 and ip.ipv4_mapped is not None:
            ip = ip.ipv4_mapped
        if ip in (_LOOPBACK_V4, _LOOPBACK_V6):
            return None
    return LOCAL_ENDPOINT_REFUSAL


_LOOPBACK_V4 = ipaddress.ip_address("127.0.0.1")
_LOOPBACK_V6 = ipaddress.ip_address("::1")
