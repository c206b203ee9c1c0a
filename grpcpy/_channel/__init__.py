"""The client channel's machinery below the facades, sans-IO.

target.py    what a target string names (gRPC naming); addresses and their attributes
resolver.py  the Resolver interface (static, lookup or pushing) and the resolvers by scheme
dns.py       the dns resolver's blocking lookups (system resolver, or a named DNS server)
backoff.py   connection backoff
lb/          load-balancing policies: base.py (the policy API: states, picks and their
             done reports, timers, configs, sticky failure, registry by name),
             pick_first, round_robin, weighted_round_robin, ring_hash, least_request,
             outlier_detection
plane.py     ChannelPlane: resolution, subchannels, client-side health checks, the
             policy, connectivity state
driver.py    ChannelDriver: runs the plane through a facade's I/O hooks and holds the
             rules for calls that wait for a connection
streams.py   the call that carries a policy's stream on one subchannel
"""
