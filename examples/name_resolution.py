"""A resolver that pushes address changes while calls run, and round_robin
across the addresses.

A "registry:///<service>" target names a service in a registry (here a
dict with watchers; in a real program Consul, etcd, ZooKeeper, a file).
The resolver starts watching when the channel first needs addresses and
pushes every change with ``listener.update``, from the registry's thread,
together with a service config choosing round_robin. Three servers on
127.0.0.1, 127.0.0.2 and 127.0.0.3 (all loopback on Linux) say who they
are; the registry moves the service from a+b to b+c while calls run, and
no call fails.

    python examples/name_resolution.py
"""
import collections
import threading
from concurrent import futures

import grpcpy
from grpcpy.resolver import Address, Resolver, register_resolver

ROUND_ROBIN = {"loadBalancingConfig": [{"round_robin": {}}]}


class Registry:
    """service -> [(host, port)], with watchers called on every change."""

    def __init__(self):
        self.services = {}
        self.watchers = collections.defaultdict(list)
        self.lock = threading.Lock()

    def set(self, service, endpoints):
        with self.lock:
            self.services[service] = list(endpoints)
            watchers = list(self.watchers[service])
        for watcher in watchers:
            watcher(list(endpoints))

    def watch(self, service, watcher):
        with self.lock:
            self.watchers[service].append(watcher)
            current = self.services.get(service)
        if current is not None:
            watcher(current)
        return lambda: self.watchers[service].remove(watcher)


REGISTRY = Registry()


class RegistryResolver(Resolver):
    def start(self, listener):
        def changed(endpoints):
            listener.update([Address.ip(host, port) for host, port in endpoints], service_config=ROUND_ROBIN)
        self.stop_watching = REGISTRY.watch(self.target.path.lstrip("/"), changed)

    def close(self):
        self.stop_watching()


def start_server(host, name):
    server = grpcpy.server(futures.ThreadPoolExecutor(4))
    server.add_generic_rpc_handlers((grpcpy.method_handlers_generic_handler(
        "demo.Who", {"Am": grpcpy.unary_unary_rpc_method_handler(lambda request, context: name)}),))
    port = server.add_insecure_port("%s:0" % host)
    server.start()
    return server, (host, port)


def main():
    servers = {name: start_server(host, name.encode()) for name, host in
               (("a", "127.0.0.1"), ("b", "127.0.0.2"), ("c", "127.0.0.3"))}
    where = {name: endpoint for name, (_, endpoint) in servers.items()}
    register_resolver("registry", RegistryResolver)
    REGISTRY.set("who", [where["a"], where["b"]])
    try:
        with grpcpy.insecure_channel("registry:///who") as channel:
            who = channel.unary_unary("/demo.Who/Am")

            def spread(calls, expect):
                # round_robin connects to every address; picks rotate over the
                # ready ones, so first wait until every expected one answers
                seen = set()
                while not expect <= seen:
                    seen.add(who(b"", timeout=5, wait_for_ready=True).decode())
                counts = collections.Counter(who(b"", timeout=5).decode() for _ in range(calls))
                return ", ".join("%s: %d" % item for item in sorted(counts.items()))

            print("a+b:", spread(20, {"a", "b"}))

            # the registry moves the service while a thread keeps calling
            results = []
            moved = threading.Event()

            def caller():
                while not moved.is_set() or len(results) < 50:
                    try:
                        who(b"", timeout=5)
                        results.append(True)
                    except grpcpy.RpcError:
                        results.append(False)

            thread = threading.Thread(target=caller)
            thread.start()
            REGISTRY.set("who", [where["b"], where["c"]])
            moved.set()
            thread.join()
            print("calls while the registry changed: %d failed" % results.count(False))
            print("b+c:", spread(30, {"b", "c"}))
    finally:
        for server, _ in servers.values():
            server.stop(None)


if __name__ == "__main__":
    main()
