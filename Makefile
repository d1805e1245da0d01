# dsa: thin wrapper; every target installs what it needs into .venv by itself.
PYTHON ?= python3
VENV   := .venv
BIN    := $(VENV)/bin
# re-install whenever the pinned dependencies change
STAMP  := $(VENV)/.installed-$(shell cat pyproject.toml | cksum | cut -d' ' -f1)
JOBS   ?= 2

.PHONY: setup demo test test-full coverage rtl bench lint clean fpga fpga-resources

$(STAMP): pyproject.toml
	test -x $(BIN)/python || $(PYTHON) -m venv $(VENV)
	$(BIN)/python -m pip install -q --upgrade pip
	$(BIN)/python -m pip install -q -e '.[test,models]'
	rm -f $(VENV)/.installed-*; touch $@

setup: $(STAMP)

## demo: Verilog for the default preset, then one workload through golden, simulator and RTL
demo: setup
	$(BIN)/dsa generate --config default --out rtl_out
	$(BIN)/dsa compare --config default --m 64 --k 256 --n 64 --density 0.1 --seed 0
	$(BIN)/dsa compare --config default --m 512 --k 256 --n 16 --density 0.1 --format bitmask --seed 0 --hbm
	$(BIN)/dsa compare --config tiny --workload workloads/multimodal.yaml

## test: the CI suite (< 30 min on 2 cores)
test: setup
	$(BIN)/lint-imports
	$(BIN)/python -m pytest -n $(JOBS) --dist loadgroup -m "not full" -q

## test-full: adds the long regressions (more seeds, bigger shapes)
test-full: setup
	$(BIN)/lint-imports
	$(BIN)/python -m pytest -n $(JOBS) --dist loadgroup -q

## coverage: Verilator line + toggle coverage of the generated Verilog (the tiny preset's tops and every component
## top) under the tests of make test; prints it per module, keeps annotated sources in build/coverage/annotated
coverage: setup
	rm -rf build/coverage
	DSA_COVERAGE=$(CURDIR)/build/coverage $(BIN)/python -m pytest -n $(JOBS) --dist loadgroup -m "not full" -q
	$(BIN)/python -m sim.rtl.coverage build/coverage

## rtl: generate Verilog for every preset into rtl_out/
rtl: setup
	for c in $$($(BIN)/python -c "from hwgen.spec.config import preset_names; print(' '.join(preset_names()))"); do \
	  $(BIN)/dsa generate --config $$c --out rtl_out || exit 1; done

## bench: speedup vs density (RTL and sim) and simulator vs RTL wall time
bench: setup
	$(BIN)/python -m sim.bench

## fpga: the ULX3S build (Yosys, nextpnr with seeds 1, 2, 3, ecppack); its record goes to data/fpga/ulx3s_build.json
fpga: setup
	$(BIN)/dsa fpga build --board ulx3s --seeds 1,2,3 --json data/fpga/ulx3s_build.json

## fpga-resources: synthesize a grid of configs (Yosys, ECP5) and refit the resource model in data/fpga (~20 min on 2 cores)
fpga-resources: setup
	$(BIN)/python -m sim.fpga.characterize --family ecp5

## lint: Python (ruff), the dependency rule (import-linter contracts) and the generated Verilog
lint: setup
	$(BIN)/ruff check hwgen sim golden tests
	$(BIN)/lint-imports
	$(BIN)/dsa lint --config tiny
	$(BIN)/dsa lint --config default

clean:
	rm -rf build .pytest_cache results
	find rtl_out -mindepth 1 -maxdepth 1 ! -name README.md -exec rm -rf {} +
