PYTHON ?= python3

.PHONY: compile debug checked annotate test bench bench-e2e fuzz clean

compile:
	$(PYTHON) setup.py build_ext --inplace

# debug: -O0, line tracing, and the measurement hooks (grpcpy._cext_debug, for
# perf/core_bench.py's allocation figures). Back to a release build: make clean compile
debug:
	GRPCPY_DEBUG=1 $(PYTHON) setup.py build_ext --inplace --force

# checked: grpcpy._cext_checked, the core again with bounds checks and line
# tracing, beside the release build (for the fuzzers in fuzz/)
checked:
	GRPCPY_CHECKED=1 $(PYTHON) setup.py build_ext --inplace

fuzz: checked
	$(PYTHON) -m fuzz.run --minutes 10

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
