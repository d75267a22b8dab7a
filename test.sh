#!/usr/bin/env bash
# Runs every check of the project: formatting, lints, unit and integration tests
# (the integration tests drive the real binaries through pipes and under tcpserver with
# swaks, Python's smtplib and Postfix's smtp-source). Tools come from .ci/run's apt line.
set -euo pipefail
cd "$(dirname "$0")"
cargo fmt --check
cargo clippy --all-targets -- -D warnings
cargo build --release --bins
cargo test --release -- --test-threads=2
