"""A log line per call, client and server, through the `logging` module.

Off until installed (register_global(), a `with` block, or the option
``("grpcpy.stats_hooks", logger)`` on one channel or server), and free
while the "grpcpy.calls" logger would drop the line: the hook then takes
no part in the call. A line is written when the call ends, with:

    side      "client" or "server"
    method    "/pkg.Service/Method"
    target    client: the channel's target
    peer      the other end's address, when known
    code      the status code's name; details too when not OK
    duration_ms
    sent_messages sent_bytes received_messages received_bytes
              (bytes as sent: compressed when they were, no framing)
    attempts  client: when the call took more than one
    md.KEY    each request metadata key (the values of a repeated key joined
              by ","); a value shows as "[redacted]" unless KEY is in
              `allow_metadata` (metadata often carries credentials, so
              nothing is shown unless asked for; binary values in base64)

as key=value pairs (logfmt: a value with spaces, quotes or "=" is quoted
JSON-style), or as one JSON object with ``json=True``. The fields are on
the record too, as ``record.grpc_call`` (a dict), for formatters of your own.
"""
import base64
import json as _json
import logging

from grpcpy import stats
from grpcpy._types import StatusCode
from grpcpy.observability._install import InstallableHook

__all__ = ["CallLogger"]

LOGGER_NAME = "grpcpy.calls"
REDACTED = "[redacted]"


def _logfmt_value(value):
    text = str(value)
    if text and not any(c in text for c in ' "=\\') and text.isprintable():
        return text
    return _json.dumps(text)


def logfmt(fields):
    """key=value pairs of `fields`, in their order."""
    return " ".join("%s=%s" % (key, _logfmt_value(value)) for key, value in fields.items())


class _Call(stats.ClientCallStats, stats.ServerCallStats):
    """One call's stats: it writes the line at the end."""

    def __init__(self, owner, info):
        self._owner = owner
        self._info = info

    def end(self, code, details, trailing, totals):
        self._owner._write(self._info, code, details, totals)


class CallLogger(InstallableHook):
    """Writes one line per call to `logger` (a logging.Logger or a logger's
    name; the "grpcpy.calls" logger when None) at `level`. `allow_metadata`: the metadata keys whose values are
    shown (case-insensitive); every other value is redacted. `json`: the
    message is a JSON object instead of key=value text. `client` /
    `server` False leaves that side's calls out."""

    def __init__(self, logger=None, level=logging.INFO, allow_metadata=(), json=False, client=True, server=True):
        if isinstance(allow_metadata, str):
            raise TypeError("allow_metadata: a collection of metadata keys is expected, not one string")
        if logger is None or isinstance(logger, str):
            logger = logging.getLogger(logger or LOGGER_NAME)
        self.logger = logger
        self.level = level
        self.allow_metadata = frozenset(key.lower() for key in allow_metadata)
        self.json = json
        self._sides = (client, server)

    def client_call(self, info):
        if self._sides[0] and self.logger.isEnabledFor(self.level):
            return _Call(self, info)
        return None

    def server_call(self, info):
        if self._sides[1] and self.logger.isEnabledFor(self.level):
            return _Call(self, info)
        return None

    def fields(self, info, code, details, totals):
        """The line's fields, in order."""
        fields = {"side": "server" if info.server else "client", "method": info.method}
        if not info.server:
            fields["target"] = info.target
        peer = info.peer if info.server else totals.peer
        if peer:
            fields["peer"] = peer
        fields["code"] = code.name
        if code != StatusCode.OK and details:
            fields["details"] = details
        fields["duration_ms"] = round(totals.duration * 1000.0, 3)
        fields["sent_messages"] = totals.sent_messages
        fields["sent_bytes"] = totals.sent_bytes
        fields["received_messages"] = totals.received_messages
        fields["received_bytes"] = totals.received_bytes
        if getattr(totals, "attempts", 1) > 1:
            fields["attempts"] = totals.attempts
        for key, value in info.metadata or ():
            name = "md." + key
            shown = self._shown(key, value)
            fields[name] = fields[name] + "," + shown if name in fields else shown
        return fields

    def _shown(self, key, value):
        if key.lower() not in self.allow_metadata:
            return REDACTED
        if isinstance(value, bytes):
            return base64.b64encode(value).decode("ascii")
        return value

    def _write(self, info, code, details, totals):
        fields = self.fields(info, code, details, totals)
        message = _json.dumps(fields) if self.json else logfmt(fields)
        self.logger.log(self.level, "%s", message, extra={"grpc_call": fields})
