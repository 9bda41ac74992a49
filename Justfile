# Tasks for the serverless tunnel. `just --list` shows them.
# Python-packaged tools (cargo-lambda, just) live in target/venvs/tools:
# `scripts/tools.sh` installs them.

set shell := ["bash", "-euo", "pipefail", "-c"]

tools := `scripts/tools.sh`
export PATH := tools + ":" + env_var('PATH')

# List the recipes.
default:
    @just --list

# Build every crate (debug).
build:
    cargo build --workspace

# Every test: unit tests and the end-to-end suite (the README's test command).
test:
    cargo test --workspace

# The end-to-end suite only (ITEST_DYNAMODB=moto|localstack|http://… picks the backend).
itest *ARGS:
    cargo test -p tunnel-integration-tests {{ARGS}}

# Formatting and lints, as CI checks them.
lint:
    cargo fmt --all -- --check
    cargo clippy --workspace --all-targets -- -D warnings

# Format everything.
fmt:
    cargo fmt --all

# The whole tunnel on localhost; `just dev --expose 3000` also starts an agent.
dev *ARGS:
    cargo run -p tunnel-integration-tests --bin local-stack -- {{ARGS}}

# Lambda zips for deployment: target/lambda/<bin>/bootstrap.zip (arm64).
lambda:
    cargo lambda build --release --arm64 --output-format zip -p tunnel-handlers

# The same for x86_64 (machines without the aarch64 target).
lambda-x86:
    cargo lambda build --release --x86-64 --output-format zip -p tunnel-handlers

# Security scan of the Terraform configuration.
checkov:
    bash terraform/checkov.sh

# Create, once per account and region, the S3 bucket holding ENV's Terraform state.
bootstrap-state ENV:
    scripts/bootstrap-state.sh {{ENV}}

# Build the zips and apply one environment (`just deploy dev`), as the deploy
# workflow does: init (fails early without the state bucket), a full plan
# first (the concurrency quota and routing preconditions stop it before
# anything is created), the agent-token secret's parameter alone, the gate
# (the secret is set), then everything.
deploy ENV: lambda
    scripts/tf.sh {{ENV}} init
    scripts/tf.sh {{ENV}} plan -input=false
    scripts/tf.sh {{ENV}} apply -target=module.tunnel.module.auth_secret
    scripts/auth-secret-set.sh "$(scripts/tf.sh {{ENV}} output -raw auth_secret_parameter)"
    scripts/tf.sh {{ENV}} apply

# Terraform for one environment: `just tf prod output`, `just tf dev destroy`.
tf ENV *ARGS:
    scripts/tf.sh {{ENV}} {{ARGS}}

# What CI runs.
ci:
    bash .ci/run

# Benchmarks on the local stack: latency, throughput, DynamoDB ops, cost, cold start (see bench/BENCHMARKS.md).
bench *ARGS:
    cargo run --release -p tunnel-bench --bin bench -- {{ARGS}}
