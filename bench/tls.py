#!/usr/bin/python3
"""The cost of STARTTLS through s6-ucspitlsd (issue 10), measured by one client for both
sides: see bench/README.md, section "TLS: bench/tls".

    bench/tls [--quick] [--sessions N] [--rounds N] [--only session|pipeline]

Two benchmarks, each side by side in one run, interleaved round by round:
  session   one-message sessions (EHLO, MAIL, RCPT, 1 KiB, QUIT) into smtpfront-echo, three
            ways: with STARTTLS under tcpserver + s6-ucspitlsd; the same session in clear
            under the same chain; in clear without the helper. Median wall time per
            session, from connect to the server's close.
  pipeline  1,000 transactions of a 2 KiB message pipelined in one session into
            smtpfront-spool (fsync per message, SPEC 6), inside TLS and in clear under the
            same chain. Throughput; the ratio TLS / clear is the median of the per-round
            ratios (the disk's fsync latency drifts on a VM). Goal: >= 0.8.
"""

import argparse
import asyncio
import os
import shutil
import socket
import ssl
import statistics
import subprocess
import sys
import tempfile
import time

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
RELEASE = os.path.join(ROOT, "target", "release")
PEERS = os.path.join(ROOT, "target", "peers")


def client_context():
    """The client side: no certificate check (the test certificate is self-signed)."""
    ctx = ssl.SSLContext(ssl.PROTOCOL_TLS_CLIENT)
    ctx.check_hostname = False
    ctx.verify_mode = ssl.CERT_NONE
    return ctx


def free_port():
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


class Server:
    """tcpserver on a free port running [s6-ucspitlsd --] PROGRAM; stopped by stop()."""

    def __init__(self, program, tmp, name, helper, cert=None):
        self.port = free_port()
        self.spool = os.path.join(tmp, name + "-spool")
        os.makedirs(self.spool)
        env = {
            "PATH": os.path.join(PEERS, "bin") + ":/usr/bin:/bin",
            "SPOOLDIR": self.spool,
            "RELAYCLIENT": "",
            # A stalled run fails in seconds, not in the default 20 minutes.
            "TIMEOUT": "30",
        }
        argv = ["tcpserver", "-q", "-R", "-H", "-l", "bench.test", "-c", "20"]
        argv += ["127.0.0.1", str(self.port)]
        if helper:
            env.update(CERTFILE=cert[0], KEYFILE=cert[1])
            argv += [os.path.join(PEERS, "bin", "s6-ucspitlsd"), "--"]
        argv.append(program)
        self.proc = subprocess.Popen(
            argv, env=env, stdin=subprocess.DEVNULL, stdout=subprocess.DEVNULL,
            stderr=subprocess.DEVNULL)
        deadline = time.monotonic() + 10
        while True:
            try:
                socket.create_connection(("127.0.0.1", self.port)).close()
                break
            except OSError:
                if time.monotonic() > deadline:
                    sys.exit("bench/tls: tcpserver did not start")
                time.sleep(0.02)

    def empty_spool(self):
        new = os.path.join(self.spool, "new")
        if os.path.isdir(new):
            shutil.rmtree(new)
        os.sync()

    def stored(self):
        new = os.path.join(self.spool, "new")
        return len(os.listdir(new)) if os.path.isdir(new) else 0

    def stop(self):
        self.proc.terminate()
        self.proc.wait()


class Session:
    """One SMTP connection through asyncio streams (STARTTLS by start_tls)."""

    async def open(self, port):
        self.reader, self.writer = await asyncio.open_connection("127.0.0.1", port)
        await self.expect("220")

    async def reply(self):
        """The code of one (possibly multi-line) reply."""
        while True:
            line = await self.reader.readline()
            if not line:
                raise EOFError("connection closed")
            if line[3:4] != b"-":
                return line[:3].decode()

    async def expect(self, code):
        got = await self.reply()
        if got != code:
            raise RuntimeError("expected %s, got %s" % (code, got))

    async def command(self, line, code):
        self.writer.write(line)
        await self.expect(code)

    async def hello(self, tls):
        await self.command(b"EHLO client.test\r\n", "250")
        if tls:
            await self.command(b"STARTTLS\r\n", "220")
            await self.writer.start_tls(client_context())
            await self.command(b"EHLO client.test\r\n", "250")

    async def quit(self):
        await self.command(b"QUIT\r\n", "221")
        await self.reader.read()  # the server's close
        self.writer.close()


def transaction(body):
    return (b"MAIL FROM:<a@example.net>\r\nRCPT TO:<b@example.com>\r\nDATA\r\n" + body
            + b".\r\n")


def message(size):
    """A message of about `size` bytes: a Subject and lines of 76 letters."""
    lines = [b"Subject: bench\r\n", b"\r\n"]
    while sum(map(len, lines)) < size:
        lines.append(b"x" * 76 + b"\r\n")
    return b"".join(lines)


async def one_session(port, tls, body):
    """Seconds from connect to the server's close, for one one-message session."""
    started = time.perf_counter()
    s = Session()
    await s.open(port)
    await s.hello(tls)
    for line, code in [(b"MAIL FROM:<a@example.net>\r\n", "250"),
                       (b"RCPT TO:<b@example.com>\r\n", "250"), (b"DATA\r\n", "354")]:
        await s.command(line, code)
    await s.command(body + b".\r\n", "250")
    await s.quit()
    return time.perf_counter() - started


async def pipelined(port, tls, count, body, window):
    """Seconds for `count` transactions in one session, sent `window` at a time in one
    write each (replies read after each write), after the greeting and EHLO/STARTTLS: the
    handshake is the session benchmark's business. Checks every reply."""
    s = Session()
    await s.open(port)
    await s.hello(tls)
    started = time.perf_counter()
    for first in range(0, count, window):
        n = min(window, count - first)
        s.writer.write(transaction(body) * n)
        for _ in range(n):
            for code in ("250", "250", "354", "250"):
                await s.expect(code)
    took = time.perf_counter() - started
    await s.quit()
    return took


def bench_session(servers, rounds, per_round):
    body = message(1024)
    sides = [("STARTTLS", servers["echo-helper"], True),
             ("clear, helper", servers["echo-helper"], False),
             ("clear, no helper", servers["echo-bare"], False)]
    times = {name: [] for name, _, _ in sides}
    for r in range(rounds):
        order = sides if r % 2 == 0 else sides[::-1]
        for name, server, tls in order:
            for _ in range(per_round):
                times[name].append(asyncio.run(one_session(server.port, tls, body)))
    med = {name: statistics.median(t) * 1000 for name, t in times.items()}
    n = rounds * per_round
    print("session (one message, smtpfront-echo), median of %d each:" % n)
    for name in times:
        print("  %-18s %7.2f ms" % (name, med[name]))
    print("  STARTTLS - clear   %7.2f ms  (the handshake and EHLO again)"
          % (med["STARTTLS"] - med["clear, helper"]))
    print("  helper - no helper %7.2f ms  (s6-ucspitlsd's fork and exec)"
          % (med["clear, helper"] - med["clear, no helper"]))


# Transactions per write in the pipeline benchmark: 20 x 2 KiB stays under a pipe's 64 KiB.
# s6-tlsd-io (s6-networking 2.5.1.3) polls the network for reading only while its buffer
# toward the application has room; when that buffer fills, decrypted bytes left inside
# libtls wait for more network input, and a client that sent everything and waits for
# replies stalls until TIMEOUT (one pipelined write of 1,000 messages did: 997 stored).
WINDOW = 20


def bench_pipeline(servers, rounds, count):
    body = message(2048)
    server = servers["spool-helper"]
    rates = {"TLS": [], "clear": []}
    ratios = []
    for r in range(rounds):
        got = {}
        for name in (("TLS", "clear") if r % 2 == 0 else ("clear", "TLS")):
            server.empty_spool()
            took = asyncio.run(pipelined(server.port, name == "TLS", count, body, WINDOW))
            stored = server.stored()
            if stored != count:
                sys.exit("bench/tls: %d of %d messages stored" % (stored, count))
            got[name] = count / took
            rates[name].append(got[name])
        ratios.append(got["TLS"] / got["clear"])
    med = {name: statistics.median(v) for name, v in rates.items()}
    ratio = statistics.median(ratios)
    print("pipeline (%d x 2 KiB in one session, %d per write, smtpfront-spool, synced), "
          "%d rounds:" % (count, WINDOW, rounds))
    for name in ("TLS", "clear"):
        print("  %-6s median %7.0f msg/s  (fastest %.0f)" % (name, med[name], max(rates[name])))
    print("  ratio TLS / clear (median of per-round ratios) %.2f  goal >= 0.80: %s"
          % (ratio, "met" if ratio >= 0.8 else "MISSED"))


def certificate(tmp):
    cert, key = os.path.join(tmp, "cert.pem"), os.path.join(tmp, "key.pem")
    subprocess.run(["openssl", "req", "-x509", "-newkey", "rsa:2048", "-nodes", "-days", "2",
                    "-subj", "/CN=bench.test", "-keyout", key, "-out", cert],
                   check=True, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    return cert, key


def main():
    p = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    p.add_argument("--quick", action="store_true", help="fewer rounds: to check the script")
    p.add_argument("--rounds", type=int, help="rounds of each benchmark")
    p.add_argument("--sessions", type=int, default=40, help="sessions per side per round")
    p.add_argument("--only", choices=["session", "pipeline"], help="one benchmark")
    args = p.parse_args()
    rounds = args.rounds or (3 if args.quick else 9)
    per_round = 10 if args.quick else args.sessions
    tmp = tempfile.mkdtemp(prefix="smtpfront-bench-tls-")
    cert = certificate(tmp)
    echo = os.path.join(RELEASE, "smtpfront-echo")
    spool = os.path.join(RELEASE, "smtpfront-spool")
    servers = {
        "echo-helper": Server(echo, tmp, "echo-helper", True, cert),
        "echo-bare": Server(echo, tmp, "echo-bare", False),
        "spool-helper": Server(spool, tmp, "spool-helper", True, cert),
    }
    try:
        print("machine: %d cores, load average %.2f; commit %s" % (
            os.cpu_count(), os.getloadavg()[0],
            subprocess.run(["git", "-C", ROOT, "rev-parse", "--short", "HEAD"],
                           capture_output=True, text=True).stdout.strip()))
        if args.only in (None, "session"):
            bench_session(servers, rounds, per_round)
        if args.only in (None, "pipeline"):
            bench_pipeline(servers, rounds, 1000)
    finally:
        for s in servers.values():
            s.stop()
        shutil.rmtree(tmp)


if __name__ == "__main__":
    main()
