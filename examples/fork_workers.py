"""Worker processes forked from a parent that already uses a channel (the
pre-fork model of gunicorn, multiprocessing's "fork" start method, ...).

The parent makes calls on a sync channel, then forks three workers. Each
worker calls through the channel it inherited (grpcpy drops the parent's
connection in the child without touching it, and the channel connects again)
and through a channel of its own. The parent's channel keeps working.

    python examples/fork_workers.py
"""
import os
from concurrent import futures

import grpcpy


def echo(request, context):
    return b"echo:" + request


def main():
    handler = grpcpy.method_handlers_generic_handler(
        "demo.Echo", {"Say": grpcpy.unary_unary_rpc_method_handler(echo)})
    server = grpcpy.server(futures.ThreadPoolExecutor(4), handlers=[handler])
    port = server.add_insecure_port("127.0.0.1:0")
    server.start()
    target = "127.0.0.1:%d" % port

    channel = grpcpy.insecure_channel(target)
    say = channel.unary_unary("/demo.Echo/Say")
    print("parent:", say(b"before fork", timeout=5).decode())

    children = []
    for n in range(3):
        pid = os.fork()
        if pid == 0:
            inherited = say(b"worker %d, inherited channel" % n, timeout=5).decode()
            with grpcpy.insecure_channel(target) as own:
                fresh = own.unary_unary("/demo.Echo/Say")(b"worker %d, own channel" % n, timeout=5).decode()
            ok = inherited.startswith("echo:") and fresh.startswith("echo:")
            os._exit(0 if ok else 1)
        children.append(pid)
    failed = sum(1 for pid in children if os.waitpid(pid, 0)[1] != 0)
    print("workers ok: %d of %d" % (len(children) - failed, len(children)))
    print("parent:", say(b"after fork", timeout=5).decode())
    channel.close()
    server.stop(None)


if __name__ == "__main__":
    main()
