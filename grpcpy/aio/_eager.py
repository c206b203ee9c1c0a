"""Tasks whose first step runs at once (asyncio's eager tasks, for Python 3.11).

A unary handler usually returns without ever waiting: the request is in
memory and the response is computed from it. As a plain task it would start
only on the next loop iteration, so its response would leave one iteration
(and one poll) later than it could. `start` creates the task, then runs the
coroutine's first step right away, inside the callback that has the request
in hand, with the task set as the current task, in the task's contextvars
context. A handler that finishes in that step has its response in the
connection's next write; one that waits goes on in its task from exactly
where it stopped. Either way it runs in a real task: current_task(),
asyncio.timeout(), TaskGroup and cancellation behave as in any task.

Python 3.12 has this built in (eager_start); 3.11 has not, so the task is
given a small coroutine object (_Resumable) that first replays what the
eager step produced and then delegates to the coroutine itself.
"""
import asyncio
import collections.abc
import contextvars

try:
    from _asyncio import _enter_task, _leave_task
except ImportError:  # pragma: no cover - the C accelerator is always built
    from asyncio.tasks import _enter_task, _leave_task

_NEW, _SUSPENDED, _RETURNED, _RAISED, _DELEGATING = range(5)


class _Resumable(collections.abc.Coroutine):
    """The coroutine a task is given: the eager step's outcome first, then
    the wrapped coroutine itself."""

    __slots__ = ("_coro", "_state", "_value")

    def __init__(self, coro):
        self._coro = coro
        self._state = _NEW
        self._value = None

    def step(self):
        """The eager first step."""
        try:
            self._value = self._coro.send(None)
        except StopIteration as stop:
            self._state = _RETURNED
            self._value = stop.value
        except BaseException as exc:  # delivered by the task, as a task would
            self._state = _RAISED
            self._value = exc
        else:
            self._state = _SUSPENDED

    def send(self, value):
        state = self._state
        if state == _DELEGATING or state == _NEW:
            self._state = _DELEGATING
            return self._coro.send(value)
        if state == _SUSPENDED:
            # hand the task what the coroutine stopped on (a future it waits for)
            self._state = _DELEGATING
            value, self._value = self._value, None
            return value
        self._state = _DELEGATING
        value, self._value = self._value, None
        if state == _RETURNED:
            raise StopIteration(value)
        raise value

    def throw(self, typ, val=None, tb=None):
        if self._state in (_RETURNED, _RAISED):
            # the coroutine already ended in its eager step
            self._state = _DELEGATING
            self._value = None
            if val is None:
                val = typ() if isinstance(typ, type) else typ
            raise val
        self._state = _DELEGATING
        self._value = None
        if val is None:
            return self._coro.throw(typ)
        return self._coro.throw(typ, val, tb)

    def close(self):
        self._coro.close()

    def __await__(self):  # required by the Coroutine ABC; tasks only send/throw
        raise TypeError("not awaitable")


def start(loop, coro):
    """A task running `coro`, its first step already taken."""
    resumable = _Resumable(coro)
    context = contextvars.copy_context()
    task = loop.create_task(resumable, context=context)
    try:
        _enter_task(loop, task)
    except RuntimeError:
        return task   # inside another task (not from a transport callback): a plain start
    try:
        context.run(resumable.step)
    finally:
        _leave_task(loop, task)
    return task
