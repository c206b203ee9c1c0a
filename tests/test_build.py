"""The package builds its compiled extension and refuses to run without it."""
import subprocess
import sys
import textwrap

import grpcpy


def test_extension_is_compiled():
    from grpcpy import _cext
    assert _cext.__file__.endswith((".so", ".pyd"))


def test_import_without_extension_explains_how_to_build():
    # Hide the compiled module from the import system and import grpcpy.
    code = textwrap.dedent("""
        import sys
        class Block:
            def find_spec(self, name, path=None, target=None):
                if name == "grpcpy._cext":
                    raise ImportError("No module named 'grpcpy._cext'")
        sys.meta_path.insert(0, Block())
        try:
            import grpcpy
        except ImportError as exc:
            print("IMPORT-ERROR:", exc)
        else:
            print("IMPORTED")
    """)
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True,
                         cwd=str(__import__("pathlib").Path(grpcpy.__file__).parents[1]))
    assert "IMPORT-ERROR:" in out.stdout, out.stdout + out.stderr
    assert "pip install" in out.stdout and "no pure-Python fallback" in out.stdout


def test_version():
    assert grpcpy.__version__.count(".") >= 2
