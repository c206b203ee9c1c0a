"""Name resolution, public: register a target scheme whose resolver gives
the channel its addresses (and, if it likes, a service config).

Three kinds of resolver (grpcpy._channel.resolver has the rules):

- static: ``addresses()`` returns the list once;
- lookup: ``lookup()`` names a (host, port) that the channel looks up with
  the system resolver, again whenever it wants fresh addresses;
- push: ``start(listener)`` is called when the channel first needs
  addresses; the resolver then calls ``listener.update(addresses,
  service_config=None)`` whenever its view changes, from any thread (a
  registry watch such as Consul or etcd, a file, a timer), and
  ``listener.error(message)`` when it cannot resolve.  ``resolve_now()``
  is the channel's hint that it lost a connection; ``close()`` comes with
  the channel's close.

Addresses carry attributes that balancers read (``Address.ip(host, port,
weight=3)``; by convention "weight", "hash_key", "locality")::

    class Registry(grpcpy.resolver.Resolver):
        def start(self, listener):
            self.watch = watch_service(self.target.path,
                                       lambda hosts: listener.update(
                                           [Address.ip(h, 50051) for h in hosts]))

        def close(self):
            self.watch.stop()

    grpcpy.resolver.register_resolver("registry", Registry)
    channel = grpcpy.insecure_channel("registry:///orders")

The example examples/name_resolution.py runs one whose addresses change
while calls run.
"""
from grpcpy._channel.resolver import Resolver, register_resolver, registered_schemes
from grpcpy._channel.target import Address, Target

__all__ = ["Address", "Resolver", "Target", "register_resolver", "registered_schemes"]
