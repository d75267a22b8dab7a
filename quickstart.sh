#!/usr/bin/env bash
# Builds smtpfront and serves smtpfront-echo under tcpserver on 127.0.0.1:${PORT:-2525}.
# Try it with: swaks --server 127.0.0.1:2525 --to you@example.com
set -euo pipefail
cd "$(dirname "$0")"
if ! command -v tcpserver >/dev/null; then
    echo "tcpserver is missing: install it with 'apt-get install ucspi-tcp' (Debian/Ubuntu)" >&2
    exit 1
fi
cargo build --release --bins
port=${PORT:-2525}
echo "smtpfront-echo listening on 127.0.0.1:$port (Ctrl-C to stop)" >&2
exec tcpserver -v -R -H -c 20 127.0.0.1 "$port" target/release/smtpfront-echo
