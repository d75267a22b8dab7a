#!/usr/bin/env bash
# Builds smtpfront and serves, under tcpserver on 127.0.0.1:${PORT:-2525}:
#   ./quickstart.sh        the store half of a backup MX: smtpfront-reject smtpfront-spool,
#                          spooling to ./spool for the domains in ./rcpthosts
#   ./quickstart.sh echo   smtpfront-echo, the debugging front end (stores nothing)
# Try it with: swaks --server 127.0.0.1:2525 --to postmaster@example.com
set -euo pipefail
cd "$(dirname "$0")"
if ! command -v tcpserver >/dev/null; then
    echo "tcpserver is missing: install it with 'apt-get install ucspi-tcp' (Debian/Ubuntu)" >&2
    exit 1
fi
cargo build --release --bins
bin=$PWD/target/release
port=${PORT:-2525}
case "${1:-spool}" in
echo)
    echo "smtpfront-echo listening on 127.0.0.1:$port (Ctrl-C to stop)" >&2
    exec tcpserver -v -R -H -l localhost -c 20 127.0.0.1 "$port" "$bin/smtpfront-echo"
    ;;
spool)
    mkdir -p -m 0700 spool
    [ -f rcpthosts ] || printf 'example.com\nlocalhost\n' > rcpthosts
    echo "backup MX store listening on 127.0.0.1:$port for $(tr '\n' ' ' < rcpthosts)" >&2
    echo "mail lands in $PWD/spool/new (Ctrl-C to stop)" >&2
    export SPOOLDIR=$PWD/spool RCPTHOSTS=$PWD/rcpthosts
    exec tcpserver -v -R -H -l localhost -c 20 127.0.0.1 "$port" \
        "$bin/smtpfront-reject" "$bin/smtpfront-spool"
    ;;
*)
    echo "usage: $0 [spool|echo]" >&2
    exit 64
    ;;
esac
