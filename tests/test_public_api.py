"""The public surface: grpcpy, grpcpy.aio and grpcpy.experimental export
grpcio's names (grpc, grpc.aio, grpc.experimental) less a listed few not
implemented yet; one UsageError; status numbers defined once, in the core;
the Python version the package claims."""
import ast
import pathlib
import re
import sys
import tomllib
import types

import grpc
import grpc.aio
import grpc.experimental
import pytest

import grpcpy
import grpcpy.aio
import grpcpy.experimental
from grpcpy import _cext, _types

ROOT = pathlib.Path(grpcpy.__file__).resolve().parents[1]

# module, grpcio's counterpart, grpcio names grpcpy does not have yet,
# grpcpy's own exported names, public names deliberately left out of __all__
SURFACES = {
    "grpcpy": (grpcpy, grpc, {
        "alts_channel_credentials", "alts_server_credentials", "compute_engine_channel_credentials",
        "xds_channel_credentials", "xds_server_credentials",
        "protos", "protos_and_services", "services",          # grpc's runtime .proto loading (grpcio-tools)
    }, {"install_as_grpc"}, {"GRPCIO_COMPAT_VERSION"}),
    "grpcpy.aio": (grpcpy.aio, grpc.aio, {
        "RpcContext", "init_grpc_aio", "shutdown_grpc_aio",
    }, {"run", "use_uvloop"}, set()),
    "grpcpy.experimental": (grpcpy.experimental, grpc.experimental, {
        "ssl_channel_credentials_with_custom_signer", "wrap_server_method_handler",
    }, {"Address", "Resolver", "Target", "register_resolver"}, {"experimental_api"}),        # as in grpc.experimental: public, not in __all__
}


@pytest.fixture(params=sorted(SURFACES))
def surface(request):
    return SURFACES[request.param]


def test_every_exported_name_exists(surface):
    module = surface[0]
    assert len(module.__all__) == len(set(module.__all__))
    missing = [name for name in module.__all__ if not hasattr(module, name)]
    assert missing == []


def test_exports_are_grpcios_less_the_listed_gaps(surface):
    module, reference, not_yet, own, _ = surface
    assert not_yet <= set(reference.__all__)
    assert set(module.__all__) == (set(reference.__all__) - not_yet) | own


def test_listed_gaps_are_really_missing(surface):
    # a gap filled without updating the list (and so __all__) fails here
    module, _, not_yet, _, _ = surface
    assert [name for name in sorted(not_yet) if hasattr(module, name)] == []


def test_no_public_name_outside_all(surface):
    # a new public function or class that was not exported fails here
    module, _, _, _, unexported = surface
    public = {name for name in dir(module)
              if not name.startswith("_") and not isinstance(getattr(module, name), types.ModuleType)}
    assert public - set(module.__all__) == unexported


def test_star_import_gives_all(surface):
    module = surface[0]
    namespace = {}
    exec("from %s import *" % module.__name__, namespace)
    assert set(namespace) - {"__builtins__"} == set(module.__all__)


def test_lazily_loaded_names_are_the_real_objects():
    from grpcpy import _credentials
    from grpcpy._sync import _interceptor
    assert grpcpy.ssl_channel_credentials is _credentials.ssl_channel_credentials
    assert grpcpy.ServerCredentials is _credentials.ServerCredentials
    assert grpcpy.UnaryUnaryClientInterceptor is _interceptor.UnaryUnaryClientInterceptor
    with pytest.raises(AttributeError):
        grpcpy.no_such_name


def test_type_checkers_see_the_lazily_loaded_names():
    # the `if TYPE_CHECKING:` imports in grpcpy/__init__.py name the same
    # objects, from the same modules, as the table the module loads them by
    tree = ast.parse((ROOT / "grpcpy" / "__init__.py").read_text())
    block = [node for node in tree.body
             if isinstance(node, ast.If) and getattr(node.test, "id", None) == "TYPE_CHECKING"]
    assert len(block) == 1
    seen = {alias.name: node.module for node in block[0].body for alias in node.names}
    assert seen == grpcpy._LAZY_MODULE


# -- one UsageError -----------------------------------------------------------

def test_one_usage_error():
    assert grpcpy.aio.UsageError is grpcpy.experimental.UsageError is _types.UsageError
    assert issubclass(grpcpy.aio.UsageError, grpcpy.aio.BaseError)
    assert issubclass(grpcpy.aio.UsageError, RuntimeError)
    # grpc.aio's shape: UsageError, InternalError and AbortError are BaseErrors
    for name in ("UsageError", "InternalError", "AbortError"):
        assert issubclass(getattr(grpc.aio, name), grpc.aio.BaseError)
        assert issubclass(getattr(grpcpy.aio, name), grpcpy.aio.BaseError)
    defined = [path.relative_to(ROOT) for path in (ROOT / "grpcpy").rglob("*.py")
               if re.search(r"^class UsageError\b", path.read_text(), re.M)]
    assert defined == [pathlib.Path("grpcpy/_types.py")]


def test_usage_error_raised_by_aio_is_caught_as_base_error_and_runtime_error():
    async def call_on_closed_channel():
        channel = grpcpy.aio.insecure_channel("127.0.0.1:1")
        await channel.close()
        with pytest.raises(grpcpy.aio.BaseError) as info:
            await channel.unary_unary("/t.S/M")(b"")
        return info.value

    error = grpcpy.aio.run(call_on_closed_channel(), use_uvloop=False)
    assert type(error) is grpcpy.aio.UsageError and isinstance(error, RuntimeError)


# -- status numbers -------------------------------------------------------------

def test_status_codes_come_from_the_core():
    numbers = {member.name[len("SC_"):]: int(member) for member in _cext.StatusCodeNumber}
    assert [code.name for code in grpcpy.StatusCode] == list(numbers)
    for code in grpcpy.StatusCode:
        assert code.value[0] == numbers[code.name] == getattr(_cext, "SC_" + code.name)
    assert _types.STATUS_BY_NUMBER == {number: grpcpy.StatusCode[name] for name, number in numbers.items()}
    assert _types.status_from_number(99) is grpcpy.StatusCode.UNKNOWN


def test_status_codes_are_grpcios():
    assert [(code.name, code.value) for code in grpcpy.StatusCode] == \
        [(code.name, code.value) for code in grpc.StatusCode]
    assert grpcpy.StatusCode.NOT_FOUND == grpc.StatusCode.NOT_FOUND


def test_no_other_status_table():
    # the numbers are written in _cext only: no (number, "name") tuples or
    # SC_X = number assignments in the Python package
    names = "|".join(code.value[1] for code in grpcpy.StatusCode)
    pattern = re.compile(r'\(\s*\d+\s*,\s*["\'](%s)["\']\s*\)|\bSC_[A-Z_]+\s*=\s*\d' % names)
    copies = ["%s: %s" % (path.relative_to(ROOT), match.group(0))
              for path in (ROOT / "grpcpy").rglob("*.py") for match in pattern.finditer(path.read_text())]
    assert copies == []


# -- the Python version claimed -------------------------------------------------

def test_requires_python_is_what_is_tested():
    project = tomllib.loads((ROOT / "pyproject.toml").read_text())["project"]
    assert project["requires-python"] == ">=3.11"
    assert sys.version_info >= (3, 11)
    versions = [c.rsplit(" ", 1)[1] for c in project["classifiers"]
                if re.fullmatch(r"Programming Language :: Python :: 3\.\d+", c)]
    assert versions and min(versions, key=lambda v: tuple(map(int, v.split(".")))) == "3.11"
    assert "Python 3.11+" in (ROOT / "README.md").read_text()
