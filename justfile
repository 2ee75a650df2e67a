# Development recipes (https://just.systems). CI runs .ci/run, which needs neither just nor uv.

# Install the package with every extra and the dev tools into .venv
install:
    uv sync --all-extras

# Run the test suite (the README's test command)
test *args:
    uv run --all-extras pytest {{args}}

# Lint, check formatting and types
lint:
    uv run ruff check .
    uv run ruff format --check .
    uv run mypy

# Format and auto-fix
format:
    uv run ruff format .
    uv run ruff check --fix .

# Side-by-side benchmarks against the baselines (see benchmarks/README.md)
bench *args:
    uv run --all-extras python -m benchmarks.run {{args}}

# The README's main job: a demo batch against the bundled mock server
demo:
    uv run --all-extras fastllm demo
