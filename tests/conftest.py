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
