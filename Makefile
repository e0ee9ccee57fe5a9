# The README's commands. `make run` sets up and starts everything with the demo; `make test` runs every test.
.PHONY: run test test-fast lint format bench frontend venv clean

run:
	bash scripts/run.sh

test:
	bash scripts/test.sh

test-fast:
	.venv/bin/python -m pytest -m "not browser and not services"

lint:
	.venv/bin/ruff check . && .venv/bin/ruff format --check .

format:
	.venv/bin/ruff format . && .venv/bin/ruff check --fix .

bench:
	bash scripts/bench.sh

frontend:
	bash scripts/build-frontend.sh

venv:
	bash scripts/venv.sh

clean:
	rm -rf var static/viewer viewer/frontend/node_modules
