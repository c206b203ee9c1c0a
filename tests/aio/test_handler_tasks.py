"""Every handler runs in a task of its own, as in grpc.aio, even though
grpcpy takes the handler's first step inside the callback that received its
request: current_task(), asyncio.timeout(), TaskGroup, contextvars and
cancellation must behave as they do in any task, before and after the
handler first waits."""
import asyncio
import contextvars

import grpc
import pytest

from .harness import echo, run, serving, until

REQUEST_ID = contextvars.ContextVar("request_id", default=None)


def test_handler_is_inside_its_own_task(impl):
    tasks = []

    async def uu(request, context):
        tasks.append(asyncio.current_task())          # in the first step
        await asyncio.sleep(0)
        tasks.append(asyncio.current_task())          # after waiting
        return request

    async def scenario():
        async with serving(impl, {"UU": ("uu", uu)}) as s:
            assert await s.call("uu", "UU")(b"a", timeout=5) == b"a"
            assert await s.call("uu", "UU")(b"b", timeout=5) == b"b"
        assert len(tasks) == 4 and None not in tasks
        assert tasks[0] is tasks[1] and tasks[2] is tasks[3] and tasks[0] is not tasks[2]
    run(scenario())


def test_asyncio_timeout_and_taskgroup_in_a_unary_handler(impl):
    async def uu(request, context):
        if request == b"timeout":
            try:
                async with asyncio.timeout(0.05):
                    await asyncio.sleep(5)
            except TimeoutError:
                return b"timed out"
        async with asyncio.TaskGroup() as group:
            first = group.create_task(asyncio.sleep(0, b"x"))
            second = group.create_task(asyncio.sleep(0, b"y"))
        return request + first.result() + second.result()

    async def scenario():
        async with serving(impl, {"UU": ("uu", uu)}) as s:
            assert await s.call("uu", "UU")(b"timeout", timeout=5) == b"timed out"
            assert await s.call("uu", "UU")(b"group-", timeout=5) == b"group-xy"
    run(scenario())


def test_taskgroup_failure_cancels_the_handler_body(impl):
    async def uu(request, context):
        async def fail():
            raise ValueError("child failed")

        outcome = b"not reached"
        try:
            async with asyncio.TaskGroup() as group:
                group.create_task(fail())
                await asyncio.sleep(5)     # cancelled by the group
        except* ValueError:
            outcome = b"group error seen"
        return outcome

    async def scenario():
        async with serving(impl, {"UU": ("uu", uu)}) as s:
            assert await s.call("uu", "UU")(b"", timeout=5) == b"group error seen"
    run(scenario())


def test_context_variables_do_not_leak_between_handlers(impl):
    seen = []

    async def uu(request, context):
        seen.append(REQUEST_ID.get())      # each handler starts from a clean context
        REQUEST_ID.set(request)
        if request == b"wait":
            await asyncio.sleep(0.01)
        seen.append(REQUEST_ID.get())
        return request

    async def scenario():
        async with serving(impl, {"UU": ("uu", uu)}) as s:
            call = s.call("uu", "UU")
            for request in (b"one", b"wait", b"three"):
                assert await call(request, timeout=5) == request
            assert await asyncio.gather(call(b"p", timeout=5), call(b"q", timeout=5)) == [b"p", b"q"]
        assert seen[:6] == [None, b"one", None, b"wait", None, b"three"]
        assert seen[6::2] == [None, None] and sorted(seen[7::2]) == [b"p", b"q"]
        assert REQUEST_ID.get() is None
    run(scenario())


@pytest.mark.parametrize("where", ["before waiting", "while waiting"])
def test_client_cancel_cancels_the_handler(impl, where):
    state = {}

    async def uu(request, context):
        state["started"] = True
        try:
            if where == "before waiting":
                # the first step ends here: the cancellation finds the handler
                # suspended on its first await
                await asyncio.sleep(5)
            else:
                await asyncio.sleep(0)
                await asyncio.sleep(5)
        except asyncio.CancelledError:
            state["cancelled"] = True
            raise
        return b"not reached"

    async def scenario():
        async with serving(impl, {"UU": ("uu", uu), "Echo": ("uu", echo)}) as s:
            call = s.call("uu", "UU")(b"x", timeout=5)
            await until(lambda: state.get("started"))
            call.cancel()
            with pytest.raises(asyncio.CancelledError):
                await call
            await until(lambda: state.get("cancelled"))
            # the server goes on serving
            assert await s.call("uu", "Echo")(b"again", timeout=5) == b"again"
    run(scenario())


def test_handler_that_raises_in_its_first_step(impl):
    async def uu(request, context):
        raise KeyError("boom")

    async def abort(request, context):
        await context.abort(grpc.StatusCode.PERMISSION_DENIED, "no")

    async def scenario():
        async with serving(impl, {"UU": ("uu", uu), "AB": ("uu", abort)}) as s:
            with pytest.raises(grpc.aio.AioRpcError) as info:
                await s.call("uu", "UU")(b"x", timeout=5)
            assert info.value.code() == grpc.StatusCode.UNKNOWN
            with pytest.raises(grpc.aio.AioRpcError) as info:
                await s.call("uu", "AB")(b"x", timeout=5)
            assert info.value.code() == grpc.StatusCode.PERMISSION_DENIED
            assert info.value.details() == "no"
    run(scenario())
