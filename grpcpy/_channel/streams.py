"""The call that carries a policy's subchannel stream (``helper.open_stream``:
ORCA load reports, health watches): a server-streaming call pinned to one
connection, whose events go back to the policy on the channel's thread.

It is the call layer's ClientCall (grpcpy._rpc.client) with the facade
hooks filled in by the channel driver, so both facades run it the same way:
no retries, no deadline, no interceptors, no call credentials (it is the
channel's own call, not the application's).
"""

from grpcpy import _types
from grpcpy._rpc.client import ClientCall

__all__ = ["StreamCall"]


class StreamCall(ClientCall):
    """One SubchannelStream (grpcpy._channel.plane) on its connection."""

    def __init__(self, driver, stream):
        method = stream.method
        super().__init__(driver, method.encode("ascii") if isinstance(method, str) else method,
                         None, None, None, None, None, False, None, request=stream.request)
        self._policy = None         # never looked up again, never retried
        self._driver = driver
        self._stream = stream

    def _now(self):
        return self._driver._clock()

    def _wake_message(self):
        messages = self._messages
        while messages:
            data, _ = messages.popleft()
            self._driver._post(_message, self._stream, bytes(data))

    def _wake_end(self):
        driver = self._driver
        driver._post(driver._stream_done, self._stream, _types.status_number(self._code), self._details)

    def _error(self):
        return None


def _message(now, stream, data):
    if not stream.cancelled:
        stream.on_message(now, data)
