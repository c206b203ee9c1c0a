"""Unit tests of a servicer with grpcpy.testing: a real grpcpy server and
channel connected in memory (no port, no socket to clean up), for the sync
and the asyncio API. Run it with pytest, or directly:

    python -m pytest examples/test_with_grpcpy_testing.py -q
    python examples/test_with_grpcpy_testing.py

The servicer here speaks JSON so the example needs no protoc; a servicer
from generated code is tested the same way, registered with its
``add_<Service>Servicer_to_server(servicer, server)`` inside the block and
called through its stub.
"""
import asyncio
import json
import sys

import grpcpy
import grpcpy.testing
import grpcpy.testing.aio


# -- the code under test ---------------------------------------------------------------------

class Inventory:
    """A tiny stock-keeping service (sync handlers)."""

    def __init__(self, stock):
        self.stock = dict(stock)

    def take(self, sku, quantity):
        """The reservation's answer, or (code, details, trailing metadata)."""
        if sku not in self.stock:
            return None, (grpcpy.StatusCode.NOT_FOUND, "unknown sku %s" % sku, ())
        if quantity > self.stock[sku]:
            return None, (grpcpy.StatusCode.FAILED_PRECONDITION, "not enough %s" % sku,
                          (("available", str(self.stock[sku])),))
        self.stock[sku] -= quantity
        return {"sku": sku, "left": self.stock[sku]}, None

    def Reserve(self, request, context):
        answer, failure = self.take(request["sku"], request["quantity"])
        if failure:
            code, details, trailing = failure
            context.set_trailing_metadata(trailing)
            context.abort(code, details)
        return answer

    def Levels(self, request, context):
        for sku in sorted(self.stock):
            yield {"sku": sku, "left": self.stock[sku]}


class AsyncInventory(Inventory):
    """The same service with asyncio handlers."""

    async def Reserve(self, request, context):
        answer, failure = self.take(request["sku"], request["quantity"])
        if failure:
            await context.abort(*failure)
        return answer

    async def Levels(self, request, context):
        for sku in sorted(self.stock):
            yield {"sku": sku, "left": self.stock[sku]}


def _encode(message):
    return json.dumps(message).encode()


def _decode(data):
    return json.loads(data)


def inventory_handler(servicer):
    return grpcpy.method_handlers_generic_handler("shop.Inventory", {
        "Reserve": grpcpy.unary_unary_rpc_method_handler(servicer.Reserve, _decode, _encode),
        "Levels": grpcpy.unary_stream_rpc_method_handler(servicer.Levels, _decode, _encode),
    })


def reserve(channel):
    return channel.unary_unary("/shop.Inventory/Reserve", _encode, _decode)


def levels(channel):
    return channel.unary_stream("/shop.Inventory/Levels", _encode, _decode)


# -- the tests -------------------------------------------------------------------------------

def test_reserve_takes_from_stock():
    with grpcpy.testing.server_and_channel(inventory_handler(Inventory({"apple": 5}))) as (_, channel):
        assert reserve(channel)({"sku": "apple", "quantity": 2}, timeout=5) == {"sku": "apple", "left": 3}


def test_reserve_failures_end_with_a_status():
    with grpcpy.testing.server_and_channel(inventory_handler(Inventory({"apple": 1}))) as (_, channel):
        # invoke() returns how the call ended instead of raising RpcError
        too_many = grpcpy.testing.invoke(reserve(channel), {"sku": "apple", "quantity": 2}, timeout=5)
        assert too_many.code is grpcpy.StatusCode.FAILED_PRECONDITION
        assert too_many.details == "not enough apple"
        assert dict(too_many.trailing_metadata)["available"] == "1"
        unknown = grpcpy.testing.invoke(reserve(channel), {"sku": "pear", "quantity": 1}, timeout=5)
        response, trailing, code, details = unknown.termination()
        assert (response, code, details) == (None, grpcpy.StatusCode.NOT_FOUND, "unknown sku pear")


def test_levels_streams_every_sku():
    with grpcpy.testing.server_and_channel(inventory_handler(Inventory({"b": 2, "a": 1}))) as (_, channel):
        assert list(levels(channel)({}, timeout=5)) == [{"sku": "a", "left": 1}, {"sku": "b", "left": 2}]


def test_asyncio_servicer():
    async def scenario():
        handler = inventory_handler(AsyncInventory({"apple": 5}))
        async with grpcpy.testing.aio.server_and_channel(handler) as (_, channel):
            assert await reserve(channel)({"sku": "apple", "quantity": 5}, timeout=5) == {"sku": "apple", "left": 0}
            empty = await grpcpy.testing.aio.invoke(reserve(channel), {"sku": "apple", "quantity": 1}, timeout=5)
            assert empty.code is grpcpy.StatusCode.FAILED_PRECONDITION
            assert (await grpcpy.testing.aio.invoke(levels(channel), {}, timeout=5)).responses == \
                [{"sku": "apple", "left": 0}]
    asyncio.run(scenario())


if __name__ == "__main__":
    import pytest
    sys.exit(pytest.main([__file__, "-q", "-p", "no:cacheprovider"]))
