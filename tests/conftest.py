import os
import pathlib

import pytest

SHARED = pathlib.Path(__file__).resolve().parents[2] / "shared"
if not SHARED.exists():  # a clone placed elsewhere: allow an explicit location
    SHARED = pathlib.Path(os.environ.get("GRPCPY_SHARED", SHARED))

HPACK_VECTORS = SHARED / "vectors" / "hpack-test-case"


@pytest.fixture(scope="session")
def hpack_vectors():
    if not HPACK_VECTORS.is_dir():
        pytest.fail("hpack-test-case vectors not found at %s (set GRPCPY_SHARED)" % HPACK_VECTORS)
    return HPACK_VECTORS


def _grpcio_channels_with_local_subchannels():
    """grpcio shares one subchannel per address across the whole process
    (its global subchannel pool). The suite starts and stops many servers on
    ports the kernel hands out again, so a new grpcio channel could take over
    the subchannel of a server stopped earlier, still backing off after
    "connection refused", and fail its first call UNAVAILABLE. Every grpcio
    channel the tests open gets a pool of its own instead
    (grpc.use_local_subchannel_pool, a grpcio option); nothing else about
    the reference peer changes."""
    import functools
    try:
        import grpc
        import grpc.aio
    except ImportError:
        return

    def wrap(module, name, index):
        make = getattr(module, name)
        if getattr(make, "_local_subchannels", False):
            return

        @functools.wraps(make)
        def channel(*args, **kwargs):
            args = list(args)
            given = args[index] if len(args) > index else kwargs.get("options")
            options = list(given or ())
            if not any(key == "grpc.use_local_subchannel_pool" for key, _ in options):
                options.append(("grpc.use_local_subchannel_pool", 1))
            if len(args) > index:
                args[index] = options
            else:
                kwargs["options"] = options
            return make(*args, **kwargs)

        channel._local_subchannels = True
        setattr(module, name, channel)

    for module in (grpc, grpc.aio):
        wrap(module, "insecure_channel", 1)
        wrap(module, "secure_channel", 2)


_grpcio_channels_with_local_subchannels()
