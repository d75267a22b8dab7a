#!/usr/bin/python3
"""ETRN answer time with 10,000 queued messages (SPEC 3.3; goal: under 50 ms).

    bench/etrn [--messages N] [--rounds R]        (bench/etrn builds, then runs this)

Fills a spool's new/ with N message files in the format smtpfront-spool writes (checked with
`forward --list`), holds $SPOOLDIR/trigger open for reading as service/forward/run does, and
times, from the client's side, the reply to `ETRN example.com` sent to one smtpfront-spool
session over pipes, R times per case:

  match-first  every message is for example.com: 250 after the first file read
  match-last   every message but one (the newest) is for example.net: the scan reads
               files until it meets that one (readdir order, so about half on average)
  none         every message is for example.net: 251 after reading all N envelopes, or
               250 when the scan runs out of its 25 ms budget first (the queue then
               counts as waiting, src/etrn/scan.rs)
  none-2000    the same with 2,000 messages: a complete scan, the cost per file

The `cut` column counts the ETRNs whose scan ran out of time (from the log).

The spool is warm in the page cache (it was just written): a cold cache adds one disk read
per file. A missed goal is reported, never a failure: this is a benchmark, not a test.
"""

import argparse
import os
import shutil
import statistics
import subprocess
import sys
import tempfile
import time

GOAL_MS = 50.0


def message(i, domain):
    """One file as smtpfront-spool stores it (SPEC 6)."""
    return (
        "HELO client.example.net\r\n"
        "MAIL FROM:<sender%d@example.net>\r\n"
        "RCPT TO:<user%d@%s>\r\n"
        "DATA\r\n"
        "Received: from client.example.net ([192.0.2.7])\r\n"
        "\tby backup.test ([198.51.100.1])\r\n"
        "\twith ESMTP via TCP; Wed, 02 Dec 2026 12:00:00 +0000\r\n"
        "Subject: message %d\r\n"
        "\r\n"
        "%s\r\n"
        ".\r\n" % (i, i, domain, i, "x" * 1000)
    ).encode()


def fill(spool, n, domain_of):
    new = os.path.join(spool, "new")
    os.makedirs(new, exist_ok=True)
    os.makedirs(os.path.join(spool, "tmp"), exist_ok=True)
    for name in os.listdir(new):
        os.unlink(os.path.join(new, name))
    for i in range(n):
        name = "1796000000.%06d.4242.%d" % (i, i)
        with open(os.path.join(new, name), "wb") as f:
            f.write(message(i, domain_of(i)))


def check_list(forward, spool, n):
    out = subprocess.run(
        [forward, "--list"], env={"SPOOLDIR": spool}, capture_output=True, text=True
    )
    lines = out.stdout.splitlines()
    if out.returncode != 0 or len(lines) != n + 1:
        sys.exit("forward --list did not read the %d files: %s" % (n, out.stderr))


def read_reply(proc):
    line = proc.stdout.readline()
    if not line:
        sys.exit("smtpfront-spool closed the connection")
    return line.decode().rstrip("\r\n")


def time_etrn(spool_bin, spool, rounds, fifo, log):
    env = {
        "SPOOLDIR": spool,
        "RELAYCLIENT": "",
        "PROTO": "TCP",
        "TCPREMOTEIP": "192.0.2.9",
        "TCPLOCALHOST": "backup.test",
    }
    proc = subprocess.Popen(
        [spool_bin],
        env=env,
        stdin=subprocess.PIPE,
        stdout=subprocess.PIPE,
        stderr=log,
    )
    read_reply(proc)  # greeting
    times, answers = [], set()
    for _ in range(rounds):
        start = time.perf_counter()
        proc.stdin.write(b"ETRN example.com\r\n")
        proc.stdin.flush()
        answer = read_reply(proc)
        times.append((time.perf_counter() - start) * 1000)
        answers.add(answer)
        try:
            os.read(fifo, 65536)  # drain, as forward --wait would
        except BlockingIOError:
            pass
    proc.stdin.write(b"QUIT\r\n")
    proc.stdin.close()
    proc.wait()
    return times, answers


def main():
    p = argparse.ArgumentParser()
    p.add_argument("--messages", type=int, default=10000)
    p.add_argument("--rounds", type=int, default=50)
    p.add_argument("--bin", required=True, help="directory of the release binaries")
    a = p.parse_args()
    n = a.messages
    work = tempfile.mkdtemp(prefix="smtpfront-bench-etrn-")
    spool = os.path.join(work, "spool")
    forward = os.path.join(a.bin, "forward")
    spool_bin = os.path.join(a.bin, "smtpfront-spool")
    try:
        os.makedirs(spool)
        log_path = os.path.join(work, "log")
        fifo_path = os.path.join(spool, "trigger")
        os.mkfifo(fifo_path, 0o600)
        fifo = os.open(fifo_path, os.O_RDWR | os.O_NONBLOCK)
        cases = [
            ("match-first", n, lambda i: "example.com"),
            ("match-last", n, lambda i: "example.com" if i == n - 1 else "example.net"),
            ("none", n, lambda i: "example.net"),
            ("none-2000", 2000, lambda i: "example.net"),
        ]
        print("ETRN answer time, %d queued messages, %d ETRNs per case (ms)" % (n, a.rounds))
        print("%-12s %8s %8s %8s %5s  %s" % ("case", "median", "p90", "max", "cut", "answer"))
        missed = False
        for name, count, domain_of in cases:
            fill(spool, count, domain_of)
            check_list(forward, spool, count)
            with open(log_path, "w+b") as log:
                times, answers = time_etrn(spool_bin, spool, a.rounds, fifo, log)
                log.seek(0)
                cut = log.read().count(b"counted as waiting")
            times.sort()
            med = statistics.median(times)
            p90 = times[int(len(times) * 0.9) - 1]
            print(
                "%-12s %8.2f %8.2f %8.2f %5d  %s"
                % (name, med, p90, times[-1], cut, " | ".join(sorted(answers)))
            )
            missed |= med >= GOAL_MS
        print("goal: median under %.0f ms in every case: %s" % (GOAL_MS, "MISSED" if missed else "met"))
    finally:
        shutil.rmtree(work, ignore_errors=True)


if __name__ == "__main__":
    main()
