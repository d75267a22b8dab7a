#!/usr/bin/env bash
# Runs every check of the project: formatting, lints, unit and integration tests
# (the integration tests drive the real binaries through pipes and under tcpserver with
# swaks, Python's smtplib and Postfix's smtp-source). Tools come from .ci/run's apt line.
# The front ends under test are the static ones `make install` installs (tests/common).
set -euo pipefail
cd "$(dirname "$0")"
cargo fmt --check
cargo clippy --all-targets -- -D warnings
make build
static=$PWD/target/x86_64-unknown-linux-gnu/release
export SMTPFRONT_TEST_ECHO=$static/smtpfront-echo
export SMTPFRONT_TEST_REJECT=$static/smtpfront-reject
export SMTPFRONT_TEST_SPOOL=$static/smtpfront-spool
cargo build --release --bins
cargo test --release -- --test-threads=2
