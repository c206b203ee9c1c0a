"""Sticky routing with ring_hash: every call of a user goes to the same
backend, chosen by consistent hashing of a request header.

The service config names the policy and the header (gRFC A42, A76):

    {"loadBalancingConfig": [{"ring_hash": {"requestHashHeader": "x-user"}}]}

Each backend sits on a hash ring at points derived from its "hash_key"
address attribute (set by the resolver here, so a backend that restarts on
another address keeps its place; without one its host:port is used), and a
call goes to the first backend after the hash of its x-user value.  When a
backend leaves, only the users that were on it move.  A call without the
header goes to a random backend.  (For calls that should go to the least
busy backend instead, name "least_request" in loadBalancingConfig.)

    python examples/ring_hash.py
"""
import collections
import json
from concurrent import futures

import grpcpy
from grpcpy import resolver

USERS = ["alice", "bob", "carol", "dave", "erin", "frank"]


def start_shard(name, host):
    server = grpcpy.server(futures.ThreadPoolExecutor(4))
    server.add_generic_rpc_handlers((grpcpy.method_handlers_generic_handler(
        "demo.Shard", {"Who": grpcpy.unary_unary_rpc_method_handler(lambda request, context: name.encode())}),))
    port = server.add_insecure_port("%s:0" % host)
    server.start()
    return server, resolver.Address.ip(host, port, hash_key=name)


shards = {name: start_shard(name, "127.0.0.%d" % i) for i, name in enumerate(["shard-1", "shard-2", "shard-3"], 1)}
listeners = []


class Shards(resolver.Resolver):
    """Where the shards are; a real one would watch a registry."""

    def start(self, listener):
        listeners.append(listener)
        listener.update([address for _, address in shards.values()])


resolver.register_resolver("shards", Shards)
config = json.dumps({"loadBalancingConfig": [{"ring_hash": {"requestHashHeader": "x-user"}}]})

with grpcpy.insecure_channel("shards:///users", [("grpc.service_config", config)]) as channel:
    who = channel.unary_unary("/demo.Shard/Who")

    def placement():
        seen = {}
        for user in USERS:
            answers = {who(b"", metadata=(("x-user", user),), timeout=10, wait_for_ready=True).decode()
                       for _ in range(3)}
            seen[user] = answers.pop() if len(answers) == 1 else "several!"
        return seen

    before = placement()
    print("placement:", ", ".join("%s->%s" % item for item in before.items()))
    spread = {who(b"", timeout=10, wait_for_ready=True) for _ in range(30)}
    print("without x-user: %d shards" % len(spread))

    listeners[0].update([address for name, (_, address) in shards.items() if name != "shard-2"])
    # (the channel takes the update on its own thread, in a moment)
    while "shard-2" in placement().values():
        pass
    after = placement()
    moved = sorted(user for user in USERS if after[user] != before[user])
    print("shard-2 gone, moved:", ", ".join(moved))
    print("the others stayed:", all(after[u] == before[u] for u in USERS if before[u] != "shard-2"))
    print("shards in use:", dict(collections.Counter(after.values())))

for server, _ in shards.values():
    server.stop(None)
