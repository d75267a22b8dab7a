"""A scripted SMTP client for tests/starttls.rs: STARTTLS done by hand, so that a test can
send exactly the bytes it means (the CVE-2011-0411 injection, garbage for a handshake).

    starttls_client.py PORT STEP...

STEP is one of
    N:LINE|LINE...  send the lines (CRLF after each) in ONE write, then read N replies
    TLS             start TLS on the socket (no certificate check); prints
                    "TLS <version> <cipher>"; bytes read ahead in clear print "LEFTOVER"
    RAW:TEXT        send TEXT as it is, read nothing
    READ            read one reply, send nothing
    EOF             read until the server closes: prints "EOF" (or "TIMEOUT" after 20 s)

Prints every reply line received, one a line, the greeting first.
"""
import socket
import ssl
import sys


class Conn:
    def __init__(self, sock):
        self.sock = sock
        self.buf = b""

    def line(self):
        while b"\r\n" not in self.buf:
            data = self.sock.recv(4096)
            if not data:
                raise EOFError
            self.buf += data
        line, self.buf = self.buf.split(b"\r\n", 1)
        return line.decode("utf-8", "replace")

    def reply(self):
        while True:
            line = self.line()
            print(line, flush=True)
            if len(line) < 4 or line[3] != "-":
                return


def main():
    port = int(sys.argv[1])
    sock = socket.create_connection(("127.0.0.1", port), timeout=20)
    conn = Conn(sock)
    try:
        conn.reply()
        for step in sys.argv[2:]:
            if step == "TLS":
                if conn.buf:
                    print("LEFTOVER", flush=True)
                ctx = ssl.SSLContext(ssl.PROTOCOL_TLS_CLIENT)
                ctx.check_hostname = False
                ctx.verify_mode = ssl.CERT_NONE
                tls = ctx.wrap_socket(conn.sock)
                print("TLS", tls.version(), tls.cipher()[0], flush=True)
                conn = Conn(tls)
            elif step == "READ":
                conn.reply()
            elif step.startswith("RAW:"):
                conn.sock.sendall(step[4:].encode())
            elif step == "EOF":
                try:
                    while conn.sock.recv(4096):
                        pass
                    print("EOF", flush=True)
                except socket.timeout:
                    print("TIMEOUT", flush=True)
                except (ConnectionResetError, ssl.SSLError):
                    print("EOF", flush=True)
            else:
                count, lines = step.split(":", 1)
                data = "".join(l + "\r\n" for l in lines.split("|"))
                conn.sock.sendall(data.encode())
                for _ in range(int(count)):
                    conn.reply()
    except EOFError:
        print("EOF", flush=True)


main()
