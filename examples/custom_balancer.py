"""A load-balancing policy of your own: "primary_first" sends every call to
the backends the resolver marks primary while any of them is READY, and
spills over to the others only when none is; it also counts how each
backend's calls end, through the report a pick can ask for.

A policy is sans-IO (it never blocks, never reads a clock: time comes in as
``now``) and runs the same under the sync and the asyncio API.  It is chosen
by name, in the service config's loadBalancingConfig (with a config of its
own, checked by ``parse_config``) or with grpc.lb_policy_name.  The
resolver here pushes addresses with attributes, which the policy reads.

    python examples/custom_balancer.py
"""
import collections
import json
import time
from concurrent import futures

import grpcpy
from grpcpy import balancer, resolver


@balancer.register_policy
class PrimaryFirst(balancer.LoadBalancingPolicy):
    name = "primary_first"

    @classmethod
    def parse_config(cls, raw):
        spill = raw.get("spillOver", True)
        if not isinstance(spill, bool):
            raise ValueError("spillOver must be true or false")
        return {"spill_over": spill}

    def __init__(self, helper, config=None):
        super().__init__(helper, config)
        self.next = 0
        self.outcomes = collections.Counter()   # (address, status code) -> calls

    # connect to every address, keep reconnecting the ones that go IDLE
    def update_addresses(self, now, addresses):
        if not self._same_addresses(addresses):
            self._replace_subchannels(addresses)
            self._connect(now)
        self._report()

    def subchannel_state_changed(self, now, sub):
        if sub.state == balancer.READY:
            self._reset_failures()
        elif sub.state == balancer.TRANSIENT_FAILURE:
            self._note_failure(now, sub)
        elif sub.state == balancer.IDLE:
            self._connect(now)
        self._report()

    # connect every IDLE subchannel (the primary is used while it is up,
    # the others must be ready to take over)
    _connect = balancer.LoadBalancingPolicy._connect_all

    def is_ready(self):
        return any(sub.state == balancer.READY for sub in self.subchannels)

    def pick(self, info):
        ready = [s for s in self.subchannels if s.state == balancer.READY]
        primary = [s for s in ready if s.address.attributes.get("primary")]
        choices = primary or (ready if self.config["spill_over"] else [])
        if not choices:
            return None
        sub = choices[self.next % len(choices)]
        self.next += 1

        def done(now, code, trailing):
            if code is not None:        # None: the pick was not used
                self.outcomes[(str(sub.address), code)] += 1
        return sub.sub_id, done


class Fleet(resolver.Resolver):
    """Two backends, the first one primary; the example flips them."""
    listener = None
    addresses = []

    def start(self, listener):
        Fleet.listener = listener
        listener.update(Fleet.addresses)


def _backend(name):
    def echo(request, context):
        context.set_trailing_metadata((("served-by", name),))
        return request
    server = grpcpy.server(futures.ThreadPoolExecutor(4))
    server.add_generic_rpc_handlers((grpcpy.method_handlers_generic_handler(
        "demo.Echo", {"Echo": grpcpy.unary_unary_rpc_method_handler(echo)}),))
    port = server.add_insecure_port("127.0.0.1:0")
    server.start()
    return server, port


def main():
    (blue, blue_port), (green, green_port) = _backend("blue"), _backend("green")
    Fleet.addresses = [resolver.Address.ip("127.0.0.1", blue_port, primary=True),
                       resolver.Address.ip("127.0.0.1", green_port)]
    resolver.register_resolver("fleet", Fleet)
    config = json.dumps({"loadBalancingConfig": [{"primary_first": {"spillOver": True}}]})
    with grpcpy.insecure_channel("fleet:///echo", options=[("grpc.service_config", config)]) as channel:
        echo = channel.unary_unary("/demo.Echo/Echo")

        made = [0]

        def served(n):
            names = collections.Counter()
            made[0] += n
            for _ in range(n):
                _, call = echo.with_call(b"hi", timeout=5, wait_for_ready=True)
                names[dict(call.trailing_metadata())["served-by"]] += 1
            return dict(sorted(names.items()))

        print("primary blue:", served(6))
        # the registry now says green is the primary: the policy reads the new attributes
        Fleet.listener.update([resolver.Address.ip("127.0.0.1", blue_port),
                               resolver.Address.ip("127.0.0.1", green_port, primary=True)])
        while "blue" in served(1):
            pass
        print("primary green:", served(6))
        green.stop(None)            # no primary left: spill over to blue
        while served(1) != {"blue": 1}:
            pass
        print("green gone, spill-over:", served(6))
        policy = channel._plane._policy     # (a peek at the policy's counts, for the example)
        # every attempt's end is reported: one OK per call (an attempt cut
        # off by green's stop and retried transparently shows as UNAVAILABLE)
        ok = lambda: sum(n for (_, code), n in policy.outcomes.items() if code == 0)  # noqa: E731
        deadline = time.monotonic() + 5     # (the sync API reports an end just after it)
        while ok() < made[0] and time.monotonic() < deadline:
            time.sleep(0.01)
        print("one OK report per call:", ok() == made[0])
    blue.stop(None)


if __name__ == "__main__":
    main()
