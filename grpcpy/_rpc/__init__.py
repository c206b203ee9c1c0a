"""The call layer: the application's view of a call, written once.

Between the sans-IO call core (grpcpy._cext: headers, messages, trailers,
deadlines on the wire) and the two facades (grpcpy._sync, grpcpy.aio: I/O,
threads or tasks, and waiting) sits this layer. It holds every gRPC rule a
user of the API can observe that is not a wire rule:

  events.py   the one dispatch of the core's events to calls and servers
  client.py   a client call: its status, metadata, unary result,
              cancellation, (de)serialisation with grpcio's status codes and
              details, call-credential plugins and their deadline, the debug
              string; and its attempts (a call owns the tries that carry it)
  server.py   a server call: admission (shutting down, concurrency limit),
              method lookup, the handler's status rules (abort, set_code,
              what a raising handler ends with), (de)serialisation, trailing
              metadata checks

A facade subclasses the classes here and adds only how to wait and wake
(a threading.Condition on the sync side, futures on the asyncio side) and
how bytes move. Where grpcio's two APIs disagree, the rule here is the one
behaviour both grpcpy facades have; each such choice is written down next to
the code that makes it.

The modules are plain Python with no facade imports, so Cython compiles
them as they are (cythonize grpcpy/_rpc/*.py). Measured, that does not pay
today: with the facades' subclasses still in Python, the compiled modules
cost more per call than CPython 3.11's specialising interpreter running
them (callgrind on perf/facade_bench.py: 196k instructions per aio unary
call compiled, 192k interpreted, same code), because every attribute of
a call object is then a generic lookup instead of an inline-cached one.
Moving this glue into C needs the call objects themselves as cdef
classes with typed fields (the facades would hold one, not subclass it);
the split between rules here and waiting in the facades is what makes that
a mechanical step.
"""
