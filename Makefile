PYTHON ?= python3

.PHONY: compile debug annotate test bench bench-e2e clean

compile:
	$(PYTHON) setup.py build_ext --inplace

# debug: -O0, line tracing, and the measurement hooks (grpcpy._cext_debug, for
# perf/core_bench.py's allocation figures). Back to a release build: make clean compile
debug:
	GRPCPY_DEBUG=1 $(PYTHON) setup.py build_ext --inplace --force

annotate:
	GRPCPY_CYTHON_ANNOTATE=1 $(PYTHON) setup.py build_ext --inplace --force

test: compile
	$(PYTHON) -m pytest tests

bench: compile
	$(PYTHON) perf/codec_bench.py

bench-e2e: compile
	$(PYTHON) perf/bench.py

clean:
	rm -rf build grpcpy/*.so _cext/*.c _cext/*.html dist
