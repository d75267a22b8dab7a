#!/usr/bin/python3
"""Test SMTP server for tests/forward.rs: the remote that `forward` delivers to.

Usage: forward_server.py CONFIG_JSON

Binds 127.0.0.1 on a free port and prints "PORT n" on stdout. Every message it accepts
(2xx at the dot) is written to OUTDIR as msg-NNNN.env (envelope) and msg-NNNN.eml (the
exact message bytes, un-stuffed), written under a temporary name and renamed, so a reader
never sees half a file.

Files: msg-NNNN.env holds "HELO name", "MAIL sender params..." and one "RCPT address"
line per accepted recipient; raw mode also writes transcript-N.txt, one line per read of
connection N, CR and LF shown as \r and \n.

CONFIG keys (all optional but "outdir"):
  mode        "aiosmtpd" (default): aiosmtpd with handler hooks;
              "raw": a small asyncio SMTP server that also records how the commands
              arrived (each read) and can misbehave.
  pipelining  advertise PIPELINING (default true)
  mail        reply to MAIL (default "250 2.1.0 Ok")
  rcpt        {"address": "550 5.1.1 No such user", ...}; others "250 2.1.5 Ok"
  dot         reply to the final dot (default "250 2.0.0 Ok: queued")
  smtputf8    aiosmtpd only: true offers SMTPUTF8 (enable_SMTPUTF8; default false: a
              UTF-8 command line gets "500 Error: strict ASCII mode")
  tls         aiosmtpd only: {"cert": PEM file, "key": PEM file}: STARTTLS offered; each
              message received inside TLS also gets msg-NNNN.tls, one line
              "PROTOCOL CIPHER" as the server's side of the connection saw them
  raw only:
  greeting    the greeting (default "220 raw.test ESMTP"); a 4xx/5xx greeting is followed
              by 503 to everything but QUIT
  ehlo        false: EHLO gets "502 5.5.1" (HELO works)
  close_in_data  close the connection after the first line of the message
  hang_at     "greeting" | "mail" | "dot": stop answering there (keep the connection)
  dot_delay   seconds to wait before answering the dot
  data        the reply to DATA (default "354 Go ahead"; may hold "\r\n" for more lines in
              the same write); the message is read only if it starts with "354"
  extra       {"MAIL": "250 2.0.0 Extra", ...}: a second reply sent after the reply to
              that command, in the same write (a remote out of step)
  starttls    a reply line, e.g. "454 4.7.0 TLS not available": EHLO lists STARTTLS and
              STARTTLS gets that reply (raw mode has no TLS; the session goes on in clear)
"""

import asyncio
import itertools
import json
import os
import sys

CFG = json.loads(sys.argv[1])
OUT = CFG["outdir"]
COUNTER = itertools.count(1)
CONNECTIONS = itertools.count(1)


def save(helo, mail_from, mail_options, rcpt_tos, content, tls=None):
    n = next(COUNTER)
    base = os.path.join(OUT, "msg-%04d" % n)
    envelope = "HELO %s\nMAIL %s\n" % (helo, " ".join([mail_from] + list(mail_options)))
    envelope += "".join("RCPT %s\n" % r for r in rcpt_tos)
    files = [(".eml", content), (".env", envelope.encode())]
    if tls:
        files.insert(0, (".tls", tls.encode()))
    for ext, data in files:
        with open(base + ext + ".tmp", "wb") as f:
            f.write(data)
        os.rename(base + ext + ".tmp", base + ext)


def rcpt_reply(address):
    return CFG.get("rcpt", {}).get(address, "250 2.1.5 Ok")


def mail_reply():
    return CFG.get("mail", "250 2.1.0 Ok")


def dot_reply():
    return CFG.get("dot", "250 2.0.0 Ok: queued")


# ---------------------------------------------------------------- aiosmtpd


def tls_context():
    """The server side of STARTTLS, with the test certificate (config key "tls")."""
    if "tls" not in CFG:
        return None
    import ssl

    ctx = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
    ctx.load_cert_chain(CFG["tls"]["cert"], CFG["tls"]["key"])
    return ctx


def tls_seen(server):
    """ "PROTOCOL CIPHER\n" of a connection inside TLS, else None."""
    ssl_object = server.transport.get_extra_info("ssl_object")
    if ssl_object is None:
        return None
    return "%s %s\n" % (ssl_object.version(), ssl_object.cipher()[0])


def aiosmtpd_factory():
    from aiosmtpd.smtp import SMTP

    class Handler:
        async def handle_EHLO(self, server, session, envelope, hostname, responses):
            session.host_name = hostname
            if CFG.get("pipelining", True):
                responses.insert(len(responses) - 1, "250-PIPELINING")
            return responses

        async def handle_MAIL(self, server, session, envelope, address, options):
            reply = mail_reply()
            if reply.startswith("2"):
                envelope.mail_from = address
                envelope.mail_options.extend(options)
            return reply

        async def handle_RCPT(self, server, session, envelope, address, options):
            reply = rcpt_reply(address)
            if reply.startswith("2"):
                envelope.rcpt_tos.append(address)
            return reply

        async def handle_DATA(self, server, session, envelope):
            reply = dot_reply()
            if reply.startswith("2"):
                save(
                    session.host_name,
                    envelope.mail_from,
                    envelope.mail_options,
                    envelope.rcpt_tos,
                    envelope.original_content,
                    tls_seen(server),
                )
            return reply

    handler = Handler()
    ctx = tls_context()
    utf8 = CFG.get("smtputf8", False)
    return lambda: SMTP(
        handler,
        hostname="aiosmtpd.test",
        decode_data=False,
        enable_SMTPUTF8=utf8,
        tls_context=ctx,
    )


# ---------------------------------------------------------------- raw


class Raw:
    def __init__(self, reader, writer):
        self.reader, self.writer = reader, writer
        self.buf = b""
        self.reads = []
        self.n = next(CONNECTIONS)

    def record(self):
        path = os.path.join(OUT, "transcript-%d.txt" % self.n)
        with open(path + ".tmp", "w") as f:
            for r in self.reads:
                text = r.decode("latin-1").replace("\r", "\\r").replace("\n", "\\n")
                f.write(text + "\n")
        os.rename(path + ".tmp", path)

    async def line(self, command_phase=True):
        while b"\n" not in self.buf:
            chunk = await self.reader.read(65536)
            if not chunk:
                return None
            if command_phase:
                self.reads.append(chunk)
                self.record()
            self.buf += chunk
        line, _, self.buf = self.buf.partition(b"\n")
        return line[:-1] if line.endswith(b"\r") else line

    async def send(self, *lines):
        self.writer.write(b"".join(l.encode() + b"\r\n" for l in lines))
        await self.writer.drain()

    async def reply(self, verb, *lines):
        """The reply to verb, and the configured extra reply in the same write."""
        extra = CFG.get("extra", {}).get(verb.decode())
        await self.send(*lines, *([extra] if extra else []))

    async def hang(self, where):
        if CFG.get("hang_at") == where:
            await asyncio.sleep(3600)

    async def serve(self):
        await self.hang("greeting")
        greeting = CFG.get("greeting", "220 raw.test ESMTP")
        await self.send(greeting)
        refused = not greeting.startswith("2")
        helo, mail, options, rcpts = None, None, [], []
        while True:
            line = await self.line()
            if line is None:
                return
            verb = line[:4].upper()
            arg = line[5:].decode("latin-1")
            if verb == b"QUIT":
                await self.send("221 2.0.0 Bye")
                return
            if refused:
                await self.send("503 5.5.1 Go away")
            elif line.upper() == b"STARTTLS" and "starttls" in CFG:
                await self.send(CFG["starttls"])
            elif verb == b"EHLO":
                if not CFG.get("ehlo", True):
                    await self.send("502 5.5.1 EHLO not implemented")
                    continue
                helo = arg
                ext = ["raw.test", "SIZE 0", "8BITMIME"]
                if CFG.get("pipelining", True):
                    ext.append("PIPELINING")
                if "starttls" in CFG:
                    ext.append("STARTTLS")
                await self.send(*["250-" + e for e in ext[:-1]], "250 " + ext[-1])
            elif verb == b"HELO":
                helo = arg
                await self.send("250 raw.test")
            elif verb == b"RSET":
                mail, options, rcpts = None, [], []
                await self.reply(verb, "250 2.0.0 Ok")
            elif verb == b"MAIL":
                await self.hang("mail")
                path, _, params = arg[5:].partition(" ")
                reply = mail_reply()
                if reply.startswith("2"):
                    mail, options = path.strip("<>"), params.split()
                await self.reply(verb, reply)
            elif verb == b"RCPT":
                address = arg[3:].strip("<>")
                reply = rcpt_reply(address) if mail is not None else "503 5.5.1 MAIL first"
                if reply.startswith("2"):
                    rcpts.append(address)
                await self.reply(verb, reply)
            elif verb == b"DATA":
                if not rcpts:
                    await self.send("554 5.5.1 No valid recipients")
                    continue
                data = CFG.get("data", "354 Go ahead")
                await self.reply(verb, data)
                if not data.startswith("354"):
                    continue
                if not await self.data(helo, mail, options, rcpts):
                    return
                mail, options, rcpts = None, [], []
            else:
                await self.send("500 5.5.1 Unknown command")

    async def data(self, helo, mail, options, rcpts):
        content = b""
        while True:
            line = await self.line(command_phase=False)
            if line is None:
                return False
            if CFG.get("close_in_data"):
                self.writer.transport.abort()
                return False
            if line == b".":
                break
            content += (line[1:] if line.startswith(b".") else line) + b"\r\n"
        await self.hang("dot")
        await asyncio.sleep(CFG.get("dot_delay", 0))
        reply = dot_reply()
        if reply.startswith("2"):
            save(helo, mail, options, rcpts, content)
        await self.send(reply)
        return True


async def raw_client(reader, writer):
    try:
        await Raw(reader, writer).serve()
    except ConnectionError:
        pass
    finally:
        writer.close()


async def main():
    loop = asyncio.get_running_loop()
    if CFG.get("mode", "aiosmtpd") == "raw":
        server = await asyncio.start_server(raw_client, "127.0.0.1", 0)
    else:
        server = await loop.create_server(aiosmtpd_factory(), "127.0.0.1", 0)
    port = server.sockets[0].getsockname()[1]
    print("PORT %d" % port, flush=True)
    async with server:
        await server.serve_forever()


if __name__ == "__main__":
    asyncio.run(main())
