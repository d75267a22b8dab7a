#!/usr/bin/python3
"""The Python clients of bench/soak: well-behaved and hostile SMTP sessions, in one asyncio
process, for a fixed time.

Usage: soak_clients.py --port P --ledger FILE --seed N --seconds S [--scale X]

Every message a client tries is one JSON line in the ledger, written as soon as its fate is
known (in particular right after the reply to the final dot):
  {"k": kind, "mid": Message-ID without <>, "from": sender, "rcpts": [recipients that got
   250], "acked": true only if the reply to the dot was 250, "qid": queue id from that reply,
   "reply": the reply to the dot, plus kind-specific fields}
Message-IDs are unique (kind.seed.counter@soak.test) and each message's recipients are
unique to it too, so the soak can find every message at the primary, in the bounces and in
the spool.

Kinds (each runs as a few concurrent loops of sessions):
  normal    EHLO, 1-3 messages of 1-3 recipients, PIPELINING half of the time, BODY= and
            SIZE= now and then, bodies with
            dot-stuffing, 8-bit bytes and an X-Soak-Sum header (sha256 of the body) that the
            primary checks
  slow      the same, one byte at a time with pauses (5-40 ms)
  vanish    goes away in the middle of DATA (FIN or RST), also right after "CRLF." or
            "CRLF.CR": "vanished": true; such a message must never be stored
  flood     100-300 transactions in one write, then QUIT; replies matched in order
  smuggle   DATA ended by CRLF, a body holding a bare-LF end of data ("\\n.\\n" and
            friends) followed by a forged MAIL/RCPT/DATA whose Message-ID is forged.*:
            the outer message is accounted as usual; "forged_acks" counts the 250s that the
            server gave after the outer one (a vulnerable server accepts the forged message)
  longline  a 5-20 kB command line (must get 500 and the session goes on), then a message
            with a 100 kB - 1 MB line and a long header line
  garbage   random bytes (NULs, CRs, 8-bit), then an ordinary transaction
"""

import argparse
import asyncio
import hashlib
import json
import random
import socket
import struct
import sys
import time

HOST = "127.0.0.1"
REPLY_TIMEOUT = 60
SMUGGLE_VARIANTS = {
    "LF.LF": b"\n.\n",
    "CRLF.LF": b"\r\n.\n",
    "LF.CRLF": b"\n.\r\n",
    "CR.CRLF": b"\r.\r\n",
    "CRLF.CR": b"\r\n.\r",
}


class Ledger:
    def __init__(self, path, seed):
        self.f = open(path, "a", buffering=1)
        self.seed = seed
        self.n = 0
        self.sessions = {}

    def mid(self, kind):
        self.n += 1
        return f"{kind}.{self.seed}.{self.n}"

    def write(self, **entry):
        self.f.write(json.dumps(entry) + "\n")

    def session(self, kind, outcome):
        key = f"{kind} {outcome}"
        self.sessions[key] = self.sessions.get(key, 0) + 1


class Closed(Exception):
    pass


class Conn:
    def __init__(self, reader, writer):
        self.r, self.w = reader, writer

    @classmethod
    async def open(cls):
        reader, writer = await asyncio.wait_for(
            asyncio.open_connection(HOST, PORT, limit=1 << 20), REPLY_TIMEOUT)
        return cls(reader, writer)

    async def reply(self, timeout=REPLY_TIMEOUT):
        """One (possibly multi-line) reply: (code, last line text)."""
        lines = []
        while True:
            try:
                line = await asyncio.wait_for(self.r.readline(), timeout)
            except (ConnectionError, asyncio.IncompleteReadError) as e:
                raise Closed(str(e))
            if not line:
                raise Closed("EOF")
            line = line.rstrip(b"\r\n").decode("latin-1")
            lines.append(line)
            if len(line) < 4 or line[3] != "-":
                break
        try:
            code = int(lines[-1][:3])
        except ValueError:
            code = 0
        return code, lines[-1]

    async def send(self, data):
        try:
            self.w.write(data)
            await asyncio.wait_for(self.w.drain(), REPLY_TIMEOUT)
        except ConnectionError as e:
            raise Closed(str(e))

    async def cmd(self, line):
        await self.send(line.encode("latin-1") + b"\r\n")
        return await self.reply()

    def close(self, reset=False):
        try:
            if reset:
                sock = self.w.get_extra_info("socket")
                sock.setsockopt(socket.SOL_SOCKET, socket.SO_LINGER, struct.pack("ii", 1, 0))
            self.w.close()
        except Exception:
            pass


def qid_of(text):
    return text.rsplit(" ", 1)[-1] if "queued as" in text else None


def stuff(body):
    """Dot-stuffing of a CRLF body, plus the end of data."""
    out = body.replace(b"\r\n.", b"\r\n..")
    if out.startswith(b"."):
        out = b"." + out
    return out + b".\r\n"


def make_message(rng, mid, sender, rcpts, size, extra_headers=b""):
    lines = []
    n = 0
    while n < size:
        r = rng.random()
        if r < 0.1:
            line = b"." * rng.randint(1, 3) + b" a line that starts with a dot"
        elif r < 0.15:
            line = bytes(rng.randint(0xa0, 0xff) for _ in range(rng.randint(1, 40)))
        elif r < 0.18:
            line = b""
        else:
            line = bytes(rng.choice(b"abcdefghijklmnopqrstuvwxyz  0123456789")
                         for _ in range(rng.randint(1, 76)))
        lines.append(line)
        n += len(line) + 2
    body = b"\r\n".join(lines) + b"\r\n"
    head = (f"Message-ID: <{mid}@soak.test>\r\nFrom: <{sender}>\r\n"
            f"To: {', '.join('<%s>' % r for r in rcpts)}\r\nSubject: soak {mid}\r\n"
            f"X-Soak-Sum: {hashlib.sha256(body).hexdigest()}\r\n").encode()
    return head + extra_headers + b"\r\n" + body


async def transaction(c, L, kind, rng, pipelining, size=None, extra_headers=b"",
                      body=None, slow=None):
    """One MAIL/RCPT/DATA; records it in the ledger. Returns the dot reply code."""
    mid = L.mid(kind)
    sender = f"{kind}-sender@soak.test"
    rcpts = [f"{mid}.r{i}@soak.test" for i in range(rng.randint(1, 3))]
    msg = body if body is not None else make_message(
        rng, mid, sender, rcpts, size or int(rng.expovariate(1 / 3000)) + 100, extra_headers)
    params = rng.choice(["", " BODY=8BITMIME", f" SIZE={len(msg)}",
                         f" BODY=8BITMIME SIZE={len(msg)}"])
    cmds = [f"MAIL FROM:<{sender}>{params}"] + [f"RCPT TO:<{r}>" for r in rcpts] + ["DATA"]
    entry = {"k": kind, "mid": mid, "from": sender, "rcpts": [], "acked": False}
    try:
        if pipelining:
            await c.send(b"".join(x.encode() + b"\r\n" for x in cmds))
            replies = [await c.reply() for _ in cmds]
        else:
            replies = []
            for x in cmds:
                if slow:
                    await slow(x.encode() + b"\r\n")
                    replies.append(await c.reply())
                else:
                    replies.append(await c.cmd(x))
                if replies[-1][0] != 250 and x.startswith("MAIL"):
                    break
        entry["rcpts"] = [r for r, (code, _) in zip(rcpts, replies[1:]) if code == 250]
        if len(replies) < len(cmds) or replies[-1][0] != 354:
            entry["reply"] = " / ".join(t for _, t in replies)
            L.write(**entry)
            if replies and replies[0][0] == 250:
                await c.cmd("RSET")
            return 0
        if slow:
            await slow(stuff(msg))
        else:
            await c.send(stuff(msg))
        code, text = await c.reply()
        entry.update(acked=code == 250, reply=text, qid=qid_of(text))
        L.write(**entry)
        return code
    except (Closed, asyncio.TimeoutError) as e:
        entry["reply"] = f"connection: {e!r}"
        L.write(**entry)
        raise Closed(str(e))


async def session_normal(L, rng):
    c = await Conn.open()
    try:
        await c.reply()
        await c.cmd("EHLO normal.soak.test")
        for _ in range(rng.randint(1, 3)):
            await transaction(c, L, "normal", rng, rng.random() < 0.5)
        await c.cmd("QUIT")
    finally:
        c.close()


async def session_slow(L, rng):
    c = await Conn.open()

    async def slow(data):
        i = 0
        while i < len(data):
            n = 1 if rng.random() < 0.8 else rng.randint(2, 10)
            await c.send(data[i:i + n])
            i += n
            await asyncio.sleep(rng.uniform(0.005, 0.04))
    try:
        await c.reply()
        await slow(b"EHLO slow.soak.test\r\n")
        await c.reply()
        await transaction(c, L, "slow", rng, False, size=rng.randint(100, 400), slow=slow)
        await slow(b"QUIT\r\n")
        await c.reply()
    finally:
        c.close()


async def session_vanish(L, rng):
    c = await Conn.open()
    mid = L.mid("vanish")
    sender = "vanish-sender@soak.test"
    rcpts = [f"{mid}.r0@soak.test"]
    msg = stuff(make_message(rng, mid, sender, rcpts, rng.randint(200, 20000)))
    # Where to go away: anywhere before the final dot line is complete, or right after
    # the "CRLF." or "CRLF.CR" of the end.
    cut = rng.choice(["random", "dot", "dotcr"])
    part = {"random": msg[:rng.randint(0, len(msg) - 4)],
            "dot": msg[:-2], "dotcr": msg[:-1]}[cut]
    reset = rng.random() < 0.5
    try:
        await c.reply()
        await c.cmd("EHLO vanish.soak.test")
        ok = [(await c.cmd(x))[0] for x in (f"MAIL FROM:<{sender}>", f"RCPT TO:<{rcpts[0]}>")]
        code, _ = await c.cmd("DATA")
        if code == 354 and ok == [250, 250]:
            L.write(k="vanish", mid=mid, **{"from": sender}, rcpts=rcpts, acked=False,
                    vanished=True, cut=cut, reset=reset)
            await c.send(part)
            await asyncio.sleep(rng.uniform(0, 0.2))
    finally:
        c.close(reset=reset)


async def session_flood(L, rng):
    c = await Conn.open()
    n = rng.randint(100, 300)
    batch = []
    entries = []
    for _ in range(n):
        mid = L.mid("flood")
        sender = "flood-sender@soak.test"
        rcpts = [f"{mid}.r0@soak.test"]
        msg = make_message(rng, mid, sender, rcpts, rng.randint(50, 600))
        batch.append(f"MAIL FROM:<{sender}>\r\nRCPT TO:<{rcpts[0]}>\r\nDATA\r\n".encode()
                     + stuff(msg))
        entries.append({"k": "flood", "mid": mid, "from": sender, "rcpts": rcpts,
                        "acked": False})
    data = b"".join(batch) + b"QUIT\r\n"
    writer = None
    try:
        await c.reply()
        await c.cmd("EHLO flood.soak.test")
        writer = asyncio.ensure_future(c.send(data))
        desync = None
        for i, e in enumerate(entries):
            if desync:
                e["reply"] = desync
                continue
            codes = [(await c.reply())[0] for _ in range(3)]
            if codes != [250, 250, 354]:
                # The replies no longer line up with the transactions: claim nothing more.
                desync = f"desync at {i}: {codes}"
                e["reply"] = desync
                e["rcpts"] = []
                continue
            code, text = await c.reply()
            e.update(acked=code == 250, reply=text, qid=qid_of(text))
            L.write(**e)
            e["written"] = True
        await c.reply()  # 221
        await writer
    except (Closed, asyncio.TimeoutError) as ex:
        for e in entries:
            e.setdefault("reply", f"connection: {ex!r}")
        raise Closed(str(ex))
    finally:
        if writer is not None and not writer.done():
            writer.cancel()
        if writer is not None and writer.done() and not writer.cancelled():
            writer.exception()  # retrieved: no "never retrieved" warning
        for e in entries:
            if not e.pop("written", False) and "reply" in e:
                L.write(**e)
        c.close()


async def session_smuggle(L, rng):
    c = await Conn.open()
    variant = rng.choice(sorted(SMUGGLE_VARIANTS))
    mid = L.mid("smuggle")
    forged = L.mid("forged")
    sender = "smuggle-sender@soak.test"
    rcpt = f"{mid}.r0@soak.test"
    victim = f"{forged}.victim@soak.test"
    outer = (f"Message-ID: <{mid}@soak.test>\r\nFrom: <{sender}>\r\nSubject: smuggle "
             f"{variant}\r\n\r\nOuter body.\r\nA line").encode()
    inner = (f"MAIL FROM:<smuggled-{forged}@soak.test>\r\nRCPT TO:<{victim}>\r\nDATA\r\n"
             f"Message-ID: <{forged}@soak.test>\r\nFrom: <ceo@soak.test>\r\n"
             f"Subject: forged\r\n\r\nForged body.\r\n.\r\n").encode()
    entry = {"k": "smuggle", "mid": mid, "from": sender, "rcpts": [], "acked": False,
             "variant": variant, "forged_mid": forged, "forged_acks": 0}
    try:
        await c.reply()
        await c.cmd("EHLO smuggle.soak.test")
        await c.send(f"MAIL FROM:<{sender}>\r\nRCPT TO:<{rcpt}>\r\nDATA\r\n".encode())
        codes = [(await c.reply())[0] for _ in range(3)]
        if codes != [250, 250, 354]:
            entry["reply"] = f"envelope {codes}"
            return
        entry["rcpts"] = [rcpt]
        await c.send(outer + SMUGGLE_VARIANTS[variant] + inner + b"QUIT\r\n")
        code, text = await c.reply()
        entry.update(acked=code == 250, reply=text, qid=qid_of(text))
        # The rest: 221 alone from a sound server; 250 250 354 250 221 from one that let
        # the forged transaction through.
        while True:
            code, text = await c.reply(timeout=10)
            if code == 221:
                break
            if code == 250 and "queued as" in text:
                entry["forged_acks"] += 1
                entry["forged_qid"] = qid_of(text)
    except (Closed, asyncio.TimeoutError) as e:
        entry.setdefault("reply", f"connection: {e!r}")
    finally:
        L.write(**entry)
        c.close()


async def session_longline(L, rng):
    c = await Conn.open()
    try:
        await c.reply()
        await c.cmd("EHLO longline.soak.test")
        n = rng.randint(5000, 20000)
        code, text = await c.cmd("NOOP " + "x" * n if rng.random() < 0.5
                                 else "MAIL FROM:<" + "a" * n + "@soak.test>")
        if code != 500:
            L.session("longline", f"long command got {code}")
        long_header = b"X-Long: " + b"h" * rng.randint(2000, 20000) + b"\r\n"
        length = rng.randint(100_000, 1_000_000)
        body_line = bytes(rng.choice(b"0123456789abcdef") for _ in range(64)) * (length // 64)
        # First a message with a long header line, then one with a very long body line.
        await transaction(c, L, "longline", rng, True, size=200, extra_headers=long_header)
        mid = L.mid("longline")
        sender = "longline-sender@soak.test"
        rcpts = [f"{mid}.r0@soak.test"]
        body = b"first\r\n" + body_line + b"\r\nlast\r\n"
        msg = (f"Message-ID: <{mid}@soak.test>\r\nFrom: <{sender}>\r\n"
               f"X-Soak-Sum: {hashlib.sha256(body).hexdigest()}\r\n").encode() \
            + long_header + b"\r\n" + body
        await c.send(f"MAIL FROM:<{sender}>\r\nRCPT TO:<{rcpts[0]}>\r\nDATA\r\n".encode())
        codes = [(await c.reply())[0] for _ in range(3)]
        entry = {"k": "longline", "mid": mid, "from": sender, "acked": False,
                 "rcpts": rcpts if codes[1] == 250 else []}
        if codes != [250, 250, 354]:
            entry["reply"] = f"envelope {codes}"
            L.write(**entry)
        else:
            try:
                await c.send(stuff(msg))
                code, text = await c.reply()
                entry.update(acked=code == 250, reply=text, qid=qid_of(text))
            finally:
                entry.setdefault("reply", "connection lost")
                L.write(**entry)
        await c.cmd("QUIT")
    finally:
        c.close()


async def session_garbage(L, rng):
    c = await Conn.open()
    try:
        await c.reply()
        junk = bytes(rng.choice([0, 13, 10, 0xff, 0x80]) if rng.random() < 0.1
                     else rng.randint(0, 255) for _ in range(rng.randint(50, 5000)))
        await c.send(junk + b"\r\n")
        # Whatever it answered to the junk: read until quiet, then a real transaction.
        try:
            while True:
                await c.reply(timeout=0.5)
        except asyncio.TimeoutError:
            pass
        await c.cmd("RSET")
        await transaction(c, L, "garbage", rng, False)
        await c.cmd("QUIT")
    finally:
        c.close()


KINDS = {
    # kind: (function, concurrent loops, pause between sessions in seconds)
    "normal": (session_normal, 5, (0.05, 0.4)),
    "slow": (session_slow, 2, (0.1, 1.0)),
    "vanish": (session_vanish, 2, (0.1, 0.8)),
    "flood": (session_flood, 1, (2.0, 6.0)),
    "smuggle": (session_smuggle, 1, (0.2, 1.0)),
    "longline": (session_longline, 1, (0.5, 2.0)),
    "garbage": (session_garbage, 1, (0.2, 1.0)),
}


async def loop(kind, i, L, deadline, seed, scale):
    fn, _, (lo, hi) = KINDS[kind]
    rng = random.Random(f"{seed}/{kind}/{i}")
    while time.monotonic() < deadline:
        try:
            await fn(L, rng)
            L.session(kind, "ok")
        except (Closed, ConnectionError, asyncio.TimeoutError) as e:
            L.session(kind, "cut" if isinstance(e, (Closed, ConnectionError)) else "timeout")
        except Exception as e:  # a bug in this script: say so, go on
            L.session(kind, f"client error {type(e).__name__}: {e}")
        await asyncio.sleep(rng.uniform(lo, hi) / scale)


async def main():
    global PORT
    p = argparse.ArgumentParser()
    p.add_argument("--port", type=int, required=True)
    p.add_argument("--ledger", required=True)
    p.add_argument("--seed", type=int, default=1)
    p.add_argument("--seconds", type=float, required=True)
    p.add_argument("--scale", type=float, default=1.0, help="rate factor")
    p.add_argument("--grace", type=float, default=40,
                   help="seconds the sessions in progress get after --seconds")
    args = p.parse_args()
    PORT = args.port
    L = Ledger(args.ledger, args.seed)
    deadline = time.monotonic() + args.seconds
    tasks = [asyncio.ensure_future(loop(k, i, L, deadline, args.seed, args.scale))
             for k, (_, n, _) in KINDS.items() for i in range(n)]
    done, pending = await asyncio.wait(tasks, timeout=args.seconds + args.grace)
    for t in pending:
        t.cancel()
    await asyncio.gather(*pending, return_exceptions=True)
    L.session("all", f"cancelled at the end {len(pending)}")
    print(json.dumps(L.sessions), flush=True)


if __name__ == "__main__":
    asyncio.run(main())
