"""The client channel's machinery below the facades, sans-IO.

target.py    what a target string names (gRPC naming)
resolver.py  the Resolver interface and the resolvers by scheme (a registry)
backoff.py   connection backoff
lb/          load-balancing policies: base.py (states, sticky failure,
             registry by name), pick_first.py, round_robin.py
plane.py     ChannelPlane: resolution, subchannels, policy, connectivity state
driver.py    ChannelDriver: runs the plane through a facade's I/O hooks and
             holds the rules for calls that wait for a connection
"""
