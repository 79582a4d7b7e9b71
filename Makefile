# Two commands set everything up on a fresh machine:
#   make demo   create .venv, install robench, evaluate the bundled model on the bundled sample,
#               then compare the three bundled models (standard, PGD-AT, IGD)
#   make test   create .venv, install robench with its dev extras, run ruff, mypy and the test suite
PYTHON ?= python3
VENV ?= .venv
BIN := $(VENV)/bin
STAMP := $(VENV)/.installed

.PHONY: demo test bench venv clean

$(STAMP): pyproject.toml constraints.txt
	test -x $(BIN)/python || $(PYTHON) -m venv $(VENV)
	$(BIN)/python -m pip install --quiet --upgrade pip
	$(BIN)/python -m pip install --quiet -c constraints.txt -e ".[dev,corruptions]"
	touch $(STAMP)

venv: $(STAMP)

demo: $(STAMP)
	$(BIN)/robench evaluate --model zoo:standard --data sample --suite inequality,adversarial --limit 200 --out runs/zoo/standard
	$(BIN)/python experiments/evaluate_zoo.py --limit 200 --out runs/zoo

test: $(STAMP)
	$(BIN)/ruff check robench tests benchmarks experiments examples
	$(BIN)/mypy robench
	$(BIN)/python -m pytest -q

bench: $(STAMP)
	$(BIN)/python -m pytest benchmarks -q --benchmark-only

clean:
	rm -rf runs .pytest_cache .benchmarks
