PYTHON ?= python3

.PHONY: compile debug annotate test bench bench-e2e clean

compile:
	$(PYTHON) setup.py build_ext --inplace

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
	rm -rf build grpcpy/*.so _cext/*.c _cext/*.html
