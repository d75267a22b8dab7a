#!/usr/bin/python3
"""The primary MX of bench/soak: an aiosmtpd server that `forward` delivers to.

Usage: soak_primary.py --seed N --out RECORDS.jsonl [--mail 4xx,5xx] [--rcpt 4xx,5xx]
                       [--dot 4xx,5xx]

Binds 127.0.0.1 on a free port and prints "PORT n" on stdout. It answers MAIL, each RCPT
and the final dot with 2xx, 4xx or 5xx at random, from a random.Random(seed): the same
seed gives the same sequence of decisions (the order in which forward asks still depends
on timing and kills). The probabilities are fractions, e.g. --rcpt 0.05,0.03 defers 5% of
the recipients and refuses 3%.

Every message it accepts (2xx to the dot) is appended to RECORDS as one JSON line, written
and flushed BEFORE the 250 goes out, so a message that forward removed is always on record:
  {"mid": Message-ID without <>, "from": sender, "rcpts": [accepted recipients],
   "sum": "ok" | "bad" | null (X-Soak-Sum present: the body's sha256 matched or not),
   "size": bytes}
The Message-ID is taken from the message's header block only (a forged Message-ID inside
a body, as the smuggling client sends, is not a header).

SIGUSR1 prints counters to stderr; SIGTERM ends it.
"""

import argparse
import asyncio
import hashlib
import json
import random
import re
import signal
import sys

from aiosmtpd.smtp import SMTP

MID = re.compile(rb"^message-id:[ \t]*<([^>\r\n]*)>", re.I | re.M)
SUM = re.compile(rb"^x-soak-sum:[ \t]*([0-9a-f]{64})", re.I | re.M)


def split_message(content):
    """(header block, body) of the message as received (CRLF line ends)."""
    if content.startswith(b"\r\n"):
        return b"", content[2:]
    head, sep, body = content.partition(b"\r\n\r\n")
    return (head + b"\r\n", body) if sep else (content, b"")


def body_sum(content):
    """'ok'/'bad' when the message carries X-Soak-Sum (sha256 of the body), else None."""
    head, body = split_message(content)
    m = SUM.search(head)
    if not m:
        return None, head
    return ("ok" if hashlib.sha256(body).hexdigest().encode() == m.group(1) else "bad"), head


class Primary:
    def __init__(self, args):
        self.rng = random.Random(args.seed)
        self.p = {"mail": args.mail, "rcpt": args.rcpt, "dot": args.dot}
        self.out = open(args.out, "a", buffering=1)
        self.counts = {}

    def decide(self, what, ok, soft, hard):
        p4, p5 = self.p[what]
        x = self.rng.random()
        verdict = hard if x < p5 else soft if x < p5 + p4 else ok
        key = f"{what} {verdict[:1]}xx"
        self.counts[key] = self.counts.get(key, 0) + 1
        return verdict

    async def handle_MAIL(self, server, session, envelope, address, options):
        reply = self.decide("mail", "250 2.1.0 Ok", "451 4.3.0 soak: try MAIL later",
                            "550 5.7.1 soak: sender refused")
        if reply.startswith("2"):
            envelope.mail_from = address
            envelope.mail_options.extend(options)
        return reply

    async def handle_RCPT(self, server, session, envelope, address, options):
        reply = self.decide("rcpt", "250 2.1.5 Ok", "450 4.2.0 soak: mailbox busy",
                            "550 5.1.1 soak: no such user")
        if reply.startswith("2"):
            envelope.rcpt_tos.append(address)
        return reply

    async def handle_DATA(self, server, session, envelope):
        reply = self.decide("dot", "250 2.0.0 Ok: soak primary took it",
                            "451 4.3.0 soak: try the message later",
                            "554 5.6.0 soak: message refused")
        if reply.startswith("2"):
            content = envelope.original_content or b""
            ok, head = body_sum(content)
            m = MID.search(head)
            record = {"mid": m.group(1).decode("latin-1") if m else None,
                      "from": envelope.mail_from, "rcpts": list(envelope.rcpt_tos),
                      "sum": ok, "size": len(content)}
            self.out.write(json.dumps(record) + "\n")  # before the 250 goes out
        return reply


class BigLines(SMTP):
    # aiosmtpd refuses DATA lines over 1001 bytes ("500 Line too long"); the soak sends
    # longer ones on purpose and wants them judged by forward, not refused here.
    line_length_limit = 4 * 1024 * 1024


def fractions(text):
    a, b = (float(x) for x in text.split(","))
    return a, b


async def main():
    p = argparse.ArgumentParser()
    p.add_argument("--seed", type=int, default=1)
    p.add_argument("--out", required=True)
    p.add_argument("--mail", type=fractions, default=(0.03, 0.01))
    p.add_argument("--rcpt", type=fractions, default=(0.05, 0.03))
    p.add_argument("--dot", type=fractions, default=(0.04, 0.02))
    args = p.parse_args()
    primary = Primary(args)
    loop = asyncio.get_running_loop()
    server = await loop.create_server(
        lambda: BigLines(primary, hostname="primary.soak.test", decode_data=False,
                         data_size_limit=64 * 1024 * 1024),
        "127.0.0.1", 0)
    print("PORT %d" % server.sockets[0].getsockname()[1], flush=True)
    stop = asyncio.Event()
    loop.add_signal_handler(signal.SIGTERM, stop.set)
    loop.add_signal_handler(signal.SIGINT, stop.set)
    loop.add_signal_handler(
        signal.SIGUSR1, lambda: print(json.dumps(primary.counts), file=sys.stderr, flush=True))
    async with server:
        await stop.wait()
    print(json.dumps(primary.counts), file=sys.stderr, flush=True)


if __name__ == "__main__":
    asyncio.run(main())
