"""Run an unedited grpcio program on grpcpy:

    python -m grpcpy.run program.py [args...]
    python -m grpcpy.run -m package.module [args...]

`import grpc` inside the program (and inside its generated stubs) resolves
to grpcpy (see grpcpy.install_as_grpc).
"""
import runpy
import sys


def main(argv=None):
    argv = list(sys.argv[1:] if argv is None else argv)
    if not argv or argv[0] in ("-h", "--help"):
        print(__doc__.strip())
        return 0 if argv else 2
    import grpcpy
    grpcpy.install_as_grpc()
    if argv[0] == "-m":
        if len(argv) < 2:
            print("grpcpy.run: -m needs a module name", file=sys.stderr)
            return 2
        sys.argv = argv[1:]
        runpy.run_module(argv[1], run_name="__main__", alter_sys=True)
    else:
        sys.argv = argv
        sys.path.insert(0, __import__("os").path.dirname(__import__("os").path.abspath(argv[0])))
        runpy.run_path(argv[0], run_name="__main__")
    return 0


if __name__ == "__main__":
    sys.exit(main())
