# The single entry point for every workflow. Run through ./just, which installs the pinned
# tools first; `./just --list` describes each recipe.

set shell := ["bash", "-euo", "pipefail", "-c"]

cache := env("HAMI_CACHE", env("HOME") / ".cache/hami")

# Never download a Python: use the machine's python3.11.
export UV_PYTHON_DOWNLOADS := "never"
export UV_PYTHON := "python3.11"
# Rust builds are cached outside the checkout so a fresh clone (CI) reuses them.
export CARGO_TARGET_DIR := cache / "cargo-target"

import 'hook/hook.just'
import 'e2e/e2e.just'
import 'extender-svc/extender.just'
import 'monitor-svc/monitor.just'
import 'plugin-nvidia/plugin.just'
import 'images/images.just'
import 'charts/charts.just'

# List the recipes
default:
    @just --list --unsorted

# Install every dependency and build every component (idempotent; cached builds)
setup: build build-hook
    @echo "setup: done. Run './just test' for the tests."

# Build the Python workspace and the Rust extension (hami_rustcore) into .venv
build:
    uv sync --all-packages {{ if env("CI", "") == "true" { "--locked" } else { "" } }}
    uv run --no-sync python -m hami_common.deviceplugin.api.generate
    uv run --no-sync python -m hami_common.dra.api.generate
    uv run --no-sync python -c "import hami_rustcore; print('hami_rustcore', hami_rustcore.__version__)"

# Lint: ruff, mypy strict, stubtest of the native module, the import layering, cargo fmt and clippy
lint: build
    uv run --no-sync ruff check .
    uv run --no-sync ruff format --check .
    uv run --no-sync mypy common/src webhook-svc/src extender-svc/src monitor-svc/src kubectl-hami/src plugin-nvidia/src plugin-ascend/src plugin-cambricon/src e2e/src images/src rustcore/benches
    uv run --no-sync python -m mypy.stubtest hami_rustcore --allowlist rustcore/stubtest-allowlist.txt
    uv run --no-sync lint-imports --no-cache
    @# the scheduling core is a pure crate: no Python binding and no Kubernetes client in its tree
    @tree="$(cargo tree --manifest-path rustcore/Cargo.toml -p hami-sched -e normal --prefix none)"; if grep -Eiq '^(pyo3|kube|k8s-openapi)[ -]' <<<"$tree"; then echo "lint: hami-sched must not depend on pyo3 or a Kubernetes crate"; exit 1; fi
    cargo fmt --manifest-path rustcore/Cargo.toml --all -- --check
    cargo clippy --manifest-path rustcore/Cargo.toml --workspace --all-targets -- -D warnings

# Every test suite: Rust core, Python packages, hook, end-to-end, images, charts (what .ci/run runs)
test: lint test-core test-py test-e2e test-hook test-images test-charts

# Rust core: unit, golden and proptest suites
test-core:
    cargo test --manifest-path rustcore/Cargo.toml --workspace --release

# Python unit and integration tests of every package with tests (end-to-end suites excluded)
test-py: build build-hook
    uv run --no-sync pytest -m "not e2e" rustcore/tests common/tests webhook-svc/tests extender-svc/tests monitor-svc/tests kubectl-hami/tests plugin-nvidia/tests plugin-ascend/tests plugin-cambricon/tests e2e/tests

# Every benchmark
bench: bench-core bench-cluster bench-hook bench-extender bench-dra bench-plugin bench-monitor bench-ui

# Rust core benchmarks: filter at 5,000 nodes x 8 GPUs, 100k pod load, pure-Python baseline
bench-core: build
    uv run --no-sync python rustcore/benches/bench_core.py
