# The README's commands. `make run` sets up and starts everything with the demo; `make test` runs every test.
.PHONY: run test test-fast lint format bench fuzz frontend venv lock lock-upgrade image container-smoke clean

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

# The long fuzzing run (exports on hostile stored rows, Schemathesis per operation and stateful); counts in
# benchmarks/results/fuzz.json.
fuzz:
	bash scripts/fuzz.sh

frontend:
	bash scripts/build-frontend.sh

venv:
	bash scripts/venv.sh

# The Python lock in requirements/: after editing pyproject.toml, and for a deliberate upgrade.
lock:
	bash scripts/lock.sh

lock-upgrade:
	bash scripts/lock.sh --upgrade

# The container image from local Debian bases (no Docker Hub), and its smoke test (as root; CI runs it).
image:
	bash scripts/container-image.sh

container-smoke:
	bash scripts/container-smoke.sh

clean:
	rm -rf var static/viewer viewer/frontend/node_modules
