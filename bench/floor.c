/* floor.c: the exec floor of bench/run's `session` benchmark (issue 12).
 *
 * A statically linked C program that answers the benchmark's SMTP session as
 * smtpfront-echo does (greeting, EHLO list, MAIL, RCPT, DATA, the dot, QUIT), with
 * one read buffer and one write buffer, flushed before each read (pipelining) and
 * nothing else: no settings, no checks, no log. What it costs per session is what
 * exec, the kernel and a minimal SMTP exchange cost on this machine.
 * Built by bench.py: cc -O2 -static -o floor floor.c
 */
#include <string.h>
#include <strings.h>
#include <unistd.h>

static char in[65536], out[8192];
static size_t in_len, in_pos, out_len;

static void flush(void)
{
    size_t done = 0;
    while (done < out_len) {
        ssize_t n = write(1, out + done, out_len - done);
        if (n <= 0)
            _exit(1);
        done += (size_t)n;
    }
    out_len = 0;
}

static void reply(const char *s)
{
    size_t n = strlen(s);
    if (out_len + n > sizeof out)
        flush();
    memcpy(out + out_len, s, n);
    out_len += n;
}

/* The next line (without CRLF) into line; 0 at end of input. */
static int next_line(char *line, size_t cap)
{
    size_t n = 0;
    for (;;) {
        if (in_pos == in_len) {
            flush();
            ssize_t r = read(0, in, sizeof in);
            if (r <= 0)
                return 0;
            in_len = (size_t)r;
            in_pos = 0;
        }
        char c = in[in_pos++];
        if (c == '\n') {
            if (n > 0 && line[n - 1] == '\r')
                n--;
            line[n] = 0;
            return 1;
        }
        if (n + 1 < cap)
            line[n++] = c;
    }
}

static int is(const char *line, const char *verb)
{
    return strncasecmp(line, verb, strlen(verb)) == 0;
}

int main(void)
{
    static char line[4096];
    reply("220 floor ESMTP\r\n");
    while (next_line(line, sizeof line)) {
        if (is(line, "EHLO")) {
            reply("250-floor\r\n250-SIZE 0\r\n250-8BITMIME\r\n"
                  "250-ENHANCEDSTATUSCODES\r\n250 PIPELINING\r\n");
        } else if (is(line, "MAIL")) {
            reply("250 2.1.0 Sender accepted\r\n");
        } else if (is(line, "RCPT")) {
            reply("250 2.1.5 Recipient accepted\r\n");
        } else if (is(line, "DATA")) {
            reply("354 End your message with a line holding only a dot\r\n");
            while (next_line(line, sizeof line) && strcmp(line, ".") != 0)
                ;
            reply("250 2.0.0 Ok: message accepted\r\n");
        } else if (is(line, "QUIT")) {
            reply("221 2.0.0 Good bye\r\n");
            break;
        } else {
            reply("500 5.5.1 Command not recognized\r\n");
        }
    }
    flush();
    return 0;
}
