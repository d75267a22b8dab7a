"""Side-by-side benchmarks: our smtpfront-echo against Debian's mailfront.

Run through bench/run, which builds our binaries first. Each benchmark is one
function registered in BENCHMARKS; it prepares its input files under a temp
dir, checks once per side that the output is sane (every message got its 250
after the data), then times both programs alternately and returns table rows.

Every measured process gets stdin from an open file (never a pipe from this
script, so the feeder is never the bottleneck), stdout to /dev/null, stderr to
/dev/null. It is started by a small C launcher (bench/spawn.c), which measures
wall time around vfork + wait4 and takes CPU (user + sys) and peak RSS from
wait4's rusage.
"""

import argparse
import base64
import os
import platform
import random
import shutil
import socket
import statistics
import subprocess
import sys
import tempfile
import time

PEER_ENV = {"PLUGINS": "add-received:counters:accept"}
BASE_ENV = {"PATH": "/usr/bin:/bin", "LANG": "C"}
MIB = 1024 * 1024
GIB = 1024 * MIB
LINE_LEN = 76  # characters before the CRLF, as in real mail (base64 bodies)


# ---------------------------------------------------------------- running

class Side:
    """One program under test: how to start it."""

    def __init__(self, label, argv, env):
        self.label = label
        self.argv = argv
        self.env = dict(BASE_ENV, **env)


class Run:
    def __init__(self, wall, cpu, maxrss_kib, status):
        self.wall = wall              # seconds
        self.cpu = cpu                # seconds, user + sys
        self.maxrss_kib = maxrss_kib  # KiB (Linux ru_maxrss unit)
        self.status = status          # exit status, or -signal


def build_launcher(tmp):
    """Compile bench/spawn.c (see there why it exists); None if no C compiler."""
    exe = os.path.join(tmp, "spawn")
    src = os.path.join(os.path.dirname(os.path.abspath(__file__)), "spawn.c")
    try:
        subprocess.run(["cc", "-O2", "-o", exe, src], check=True)
    except (OSError, subprocess.CalledProcessError):
        return None
    return exe


def run_once(ctx, side, stdin_path, stdout_path=os.devnull):
    """Run side with stdin_path as fd 0, through the launcher; return a Run."""
    fin = os.open(stdin_path, os.O_RDONLY)
    fout = os.open(stdout_path, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
    ferr = os.open(os.devnull, os.O_WRONLY)
    rfd, wfd = os.pipe()
    actions = [(os.POSIX_SPAWN_DUP2, fin, 0),
               (os.POSIX_SPAWN_DUP2, fout, 1),
               (os.POSIX_SPAWN_DUP2, ferr, 2),
               (os.POSIX_SPAWN_DUP2, wfd, 3)]
    argv = [ctx.launcher] + side.argv if ctx.launcher else side.argv
    try:
        t0 = time.perf_counter_ns()
        pid = os.posix_spawn(argv[0], argv, side.env, file_actions=actions)
        os.close(wfd)
        wfd = -1
        report = os.read(rfd, 200)
        _, wstatus, ru = os.wait4(pid, 0)
        t1 = time.perf_counter_ns()
    finally:
        for fd in (fin, fout, ferr, rfd, wfd):
            if fd >= 0:
                os.close(fd)
    if ctx.launcher:
        if not report:
            raise RuntimeError(f"launcher failed for {side.argv}, status {wstatus}")
        wall_ns, cpu_ns, maxrss, status = map(int, report.split())
        return Run(wall_ns / 1e9, cpu_ns / 1e9, maxrss, status)
    # No launcher: wall includes this interpreter's spawn, RSS its size.
    status = os.waitstatus_to_exitcode(wstatus)
    return Run((t1 - t0) / 1e9, ru.ru_utime + ru.ru_stime, ru.ru_maxrss, status)


def interleaved(ctx, inputs, rounds, sides=None):
    """Run the sides (default: ours and peer) alternately `rounds` times.

    inputs: {label: path}. The order is reversed every other round so no side
    always runs on caches warmed by the other. Returns {label: [Run]}.
    """
    sides = sides or [ctx.ours, ctx.peer]
    runs = {s.label: [] for s in sides}
    for i in range(rounds):
        order = sides if i % 2 == 0 else sides[::-1]
        for side in order:
            r = run_once(ctx, side, inputs[side.label])
            if r.status != 0:
                ctx.warn(f"{side.label} exited with status {r.status}")
            runs[side.label].append(r)
    return runs


def verify(ctx, name, side, stdin_path, expected):
    """Run once (untimed, doubles as warm-up); count 250 replies to the dot."""
    out = os.path.join(ctx.tmp, f"out-{name}-{side.label}")
    r = run_once(ctx, side, stdin_path, out)
    accepted = 0
    after_data = False
    with open(out, "rb") as f:
        for line in f:
            if line[3:4] == b"-":       # continuation line of a multi-line reply
                continue
            code = line[:3]
            if after_data:
                accepted += code == b"250"
                after_data = False
            elif code == b"354":
                after_data = True
    os.unlink(out)
    ok = accepted == expected and r.status == 0
    if not ok:
        ctx.warn(f"{name}: {side.label} accepted {accepted} of {expected} messages, "
                 f"exit status {r.status}: the comparison is not honest")
    ctx.checks.setdefault(name, []).append(f"{side.label} {accepted}/{expected}")
    return ok


def median(values):
    return statistics.median(values)


# ---------------------------------------------------------------- input files

def text_lines(n, seed):
    """n realistic base64 body lines (LINE_LEN chars, no CRLF)."""
    raw = random.Random(seed).randbytes(n * LINE_LEN * 3 // 4 + 3)
    b64 = base64.b64encode(raw)
    return [b64[i * LINE_LEN:(i + 1) * LINE_LEN] for i in range(n)]


def pad_line(rest):
    """A last line that brings a message to its exact size (off by one at worst)."""
    return b"x" * (rest - 2) + b"\r\n" if rest >= 2 else b""


def headers(i=0):
    return (b"From: Alice Example <alice@example.net>\r\n"
            b"To: Bob Example <bob@example.com>\r\n"
            b"Subject: benchmark message %d\r\n"
            b"Date: Sun, 22 Nov 2026 10:04:00 +0000\r\n"
            b"Message-ID: <bench.%d@example.net>\r\n"
            b"MIME-Version: 1.0\r\n"
            b"Content-Type: application/octet-stream\r\n"
            b"Content-Transfer-Encoding: base64\r\n"
            b"\r\n" % (i, i))


ENVELOPE = b"MAIL FROM:<alice@example.net>\r\nRCPT TO:<bob@example.com>\r\nDATA\r\n"


def write_session(path, body):
    with open(path, "wb") as f:
        f.write(b"EHLO client.example.net\r\n" + ENVELOPE + body + b".\r\nQUIT\r\n")


def message_of_size(size):
    """A message (headers + base64 lines) of `size` bytes, CRLF lines."""
    msg = headers()
    for line in text_lines(size // (LINE_LEN + 2) + 1, seed=size):
        if len(msg) + len(line) + 2 > size:
            break
        msg += line + b"\r\n"
    return msg + pad_line(size - len(msg))


def write_big_session(path, size):
    """One session whose message is `size` bytes, written in big blocks."""
    block = b"".join(line + b"\r\n" for line in text_lines(16384, seed=1))  # 1.2 MiB
    with open(path, "wb") as f:
        f.write(b"EHLO client.example.net\r\n" + ENVELOPE)
        head = headers()
        f.write(head)
        left = size - len(head)
        while left >= len(block):
            f.write(block)
            left -= len(block)
        whole = left // (LINE_LEN + 2) * (LINE_LEN + 2)
        f.write(block[:whole])
        f.write(pad_line(left - whole))
        f.write(b".\r\nQUIT\r\n")


# ---------------------------------------------------------------- benchmarks

def bench_session(ctx):
    """Cost of one short session: exec, greeting, EHLO, 1 KiB message, QUIT.

    /bin/true runs in the same rounds: the cost of starting any process on
    this machine, which neither program can go below.
    """
    path = os.path.join(ctx.tmp, "session.smtp")
    write_session(path, message_of_size(1024))
    sides = [ctx.ours, ctx.peer]
    floors = [(f, build_floor(ctx, f)) for f in FLOORS]
    floors = [(f, side) for f, side in floors if side]
    sides += [side for _, side in floors]
    for side in sides:
        verify(ctx, "session", side, path, 1)
    floor = Side("floor", ["/bin/true"], {})
    rounds = 100 if ctx.quick else 500
    runs = interleaved(ctx, {s.label: path for s in sides + [floor]}, rounds, sides + [floor])
    wall = {k: median([r.wall for r in v]) * 1e3 for k, v in runs.items()}
    cpu = {k: median([r.cpu for r in v]) * 1e3 for k, v in runs.items()}
    net = {k: wall[k] - wall["floor"] for k in (ctx.ours.label, ctx.peer.label)}
    rows = [
        ctx.row("session wall", wall, "ms", "<=", 0.7, f"median of {rounds}"),
        ctx.row("session cpu", cpu, "ms", "<=", 0.7, "user+sys"),
        ctx.row("session wall-floor", net, "ms", None, None,
                f"minus /bin/true {wall['floor']:.3g} ms"),
    ]
    for f, side in floors:
        # The peer column holds the floor here.
        vs = {ctx.ours.label: wall[ctx.ours.label], ctx.peer.label: wall[side.label]}
        rows.append(ctx.row(f.title, vs, "ms", "<=" if f.goal else None, f.goal,
                            f"peer column: {f.note}"))
    return rows


class Floor:
    """A program that answers the session as ours does and does nothing else."""

    def __init__(self, label, source, compile_argv, title, goal, note):
        self.label, self.source, self.compile_argv = label, source, compile_argv
        self.title, self.goal, self.note = title, goal, note


# The C floor of issue 12; the same C built as a static PIE, as the front ends are (their
# code is relocated at each exec, for ASLR); and the same program in Rust built as the
# front ends are (static-pie, std, #![no_main]): the floor of a session for a Rust program.
FLOORS = [
    Floor("c-floor", "floor.c", ["cc", "-O2", "-static"], "session vs C floor", 1.10,
          "bench/floor.c, gcc -O2 -static"),
    Floor("c-floor-pie", "floor.c", ["cc", "-O2", "-static-pie"], "session vs PIE floor",
          None, "bench/floor.c, gcc -O2 -static-pie"),
    Floor("rust-floor", "floor.rs",
          ["rustc", "--edition", "2021", "-C", "opt-level=3", "-C", "panic=abort",
           "-C", "target-feature=+crt-static", "--target", "x86_64-unknown-linux-gnu"],
          "session vs Rust floor", None, "bench/floor.rs, rustc, static-pie"),
]


def build_floor(ctx, floor):
    """Compiles `floor` into the temporary directory; None (and a warning) if it cannot."""
    exe = os.path.join(ctx.tmp, floor.label)
    src = os.path.join(os.path.dirname(os.path.abspath(__file__)), floor.source)
    try:
        subprocess.run(floor.compile_argv + ["-o", exe, src], check=True)
    except (OSError, subprocess.CalledProcessError):
        ctx.warn(f"cannot build bench/{floor.source} ({floor.compile_argv[0]}): "
                 f"no {floor.label} side")
        return None
    return Side(floor.label, [exe], {})


def write_pipeline(path, n, envelope):
    """One session: EHLO, n pipelined transactions of a small message, QUIT."""
    with open(path, "wb") as f:
        f.write(b"EHLO client.example.net\r\n")
        for i in range(n):
            f.write(envelope)
            f.write(b"Subject: pipelined %d\r\n\r\nHello, message %d.\r\n.\r\n" % (i, i))
        f.write(b"QUIT\r\n")


def bench_pipeline(ctx):
    """10,000 pipelined transactions in one session, all on stdin at once."""
    n = 10000
    path = os.path.join(ctx.tmp, "pipeline.smtp")
    write_pipeline(path, n, ENVELOPE)
    for side in (ctx.ours, ctx.peer):
        verify(ctx, "pipeline", side, path, n)
    rounds = 3 if ctx.quick else 5
    runs = interleaved(ctx, {ctx.ours.label: path, ctx.peer.label: path}, rounds)
    wall = {k: median([r.wall for r in v]) * 1e3 for k, v in runs.items()}
    cpu = {k: median([r.cpu for r in v]) * 1e3 for k, v in runs.items()}
    return [
        ctx.row("pipeline 10k wall", wall, "ms", "<=", 0.25, f"median of {rounds}"),
        ctx.row("pipeline 10k cpu", cpu, "ms", None, None, "user+sys"),
    ]


# SPEC 3.2: UTF-8 addresses (a U-label domain, a Cyrillic local part and domain).
UTF8_ENVELOPE = ("MAIL FROM:<j\u00f6rg@b\u00fccher.example> SMTPUTF8\r\n"
                 "RCPT TO:<\u0434\u043c\u0438\u0442\u0440\u0438\u0439@"
                 "\u043f\u0440\u0438\u043c\u0435\u0440.\u0440\u0444>\r\nDATA\r\n").encode()


def bench_utf8(ctx):
    """The pipeline benchmark with SMTPUTF8 and UTF-8 addresses against the same with
    ASCII addresses, both ours (mailfront has no SMTPUTF8): the cost of SMTPUTF8.
    In the table the peer column is ours with the ASCII envelope."""
    n = 10000
    paths = {}
    sides = [Side("ours-utf8", ctx.ours.argv, {}), Side("ours-ascii", ctx.ours.argv, {})]
    for side, envelope in zip(sides, (UTF8_ENVELOPE, ENVELOPE)):
        paths[side.label] = os.path.join(ctx.tmp, f"{side.label}.smtp")
        write_pipeline(paths[side.label], n, envelope)
        verify(ctx, "utf8", side, paths[side.label], n)
    rounds = 5 if ctx.quick else 11
    runs = interleaved(ctx, paths, rounds, sides)
    wall = [median([r.wall for r in runs[s.label]]) * 1e3 for s in sides]
    cpu = [median([r.cpu for r in runs[s.label]]) * 1e3 for s in sides]
    cols = lambda v: {ctx.ours.label: v[0], ctx.peer.label: v[1]}
    note = f"median of {rounds}; peer column: ours, ASCII addresses"
    return [
        ctx.row("utf8 pipeline 10k wall", cols(wall), "ms", "<=", 1.1, note),
        ctx.row("utf8 pipeline 10k cpu", cols(cpu), "ms", "<=", 1.1, "user+sys; same"),
    ]


def bench_bigmsg(ctx):
    """One 100 MiB message: throughput and peak RSS, and throughput against `cat` of
    the same file (the cost of reading it at all); ours alone on 1 GiB."""
    rows = []
    size = 100 * MIB
    path = os.path.join(ctx.tmp, "big100m.smtp")
    write_big_session(path, size)
    for side in (ctx.ours, ctx.peer):
        verify(ctx, "100MiB", side, path, 1)
    # cat next to ours in every round (the order reverses), for a paired ratio.
    cat = Side("cat", [shutil.which("cat") or "/bin/cat"], {})
    sides = [ctx.ours, cat, ctx.peer]
    # 11 rounds: ours and cat take tens of milliseconds, which a loaded machine's
    # scheduler can double; with 5 the median moved by a third between runs.
    rounds = 1 if ctx.quick else 11
    runs = interleaved(ctx, {s.label: path for s in sides}, rounds, sides)
    mbps = {k: size / 1e6 / median([r.wall for r in v]) for k, v in runs.items()}
    rss = {k: max(r.maxrss_kib for r in v) for k, v in runs.items()}
    rows.append(ctx.row("100MiB throughput", mbps, "MB/s", ">=", 10.0,
                        f"median of {rounds}"))
    vs_cat = {ctx.ours.label: mbps[ctx.ours.label], ctx.peer.label: mbps["cat"]}
    paired = paired_ratio(runs[ctx.ours.label], runs["cat"])
    rows.append(paired_row(ctx, "100MiB vs cat", vs_cat, "MB/s", 0.8, paired,
                           "peer column: cat < same file > /dev/null"))
    rows.append(ctx.row("100MiB peak RSS", rss, "KiB", "abs<=", 8192, "max"))
    os.unlink(path)

    free = shutil.disk_usage(ctx.tmp).free
    if free < 5 * GIB:
        ctx.warn(f"1GiB case skipped: only {free / GIB:.1f} GiB free in {ctx.tmp}")
        return rows
    size = GIB
    path = os.path.join(ctx.tmp, "big1g.smtp")
    write_big_session(path, size)
    verify(ctx, "1GiB", ctx.ours, path, 1)
    r = run_once(ctx, ctx.ours, path)
    if r.status != 0:
        ctx.warn(f"1GiB: ours exited with status {r.status}")
    os.unlink(path)
    rows.append(ctx.row("1GiB throughput", {ctx.ours.label: size / 1e6 / r.wall},
                        "MB/s", None, None, "ours only"))
    rows.append(ctx.row("1GiB peak RSS", {ctx.ours.label: r.maxrss_kib}, "KiB",
                        "abs<=", 8192, f"100MiB: {rss[ctx.ours.label]} KiB"))
    return rows


def bench_rules(ctx):
    """Extra cost of mail rules per session: the `session` session with 5 RCPTs,
    run (a) without MAILRULES, (b) with a 10,000-line rules file (exact addresses,
    *@domain rules, globs), (c) with rules naming a 100,000-key cdb list (built with
    cdbmake). No rule matches the session's addresses, so every rule that could
    apply is considered. mailfront runs the same files with the mailrules plugin;
    its (a) is its `session` configuration (no mailrules plugin). A variant a side
    does not handle correctly is reported and left out of the figures.
    """
    rcpts = [b"bob@example.com", b"carol@example.com", b"dave@example.org",
             b"erin@example.org", b"frank@example.net"]
    path = os.path.join(ctx.tmp, "rules.smtp")
    with open(path, "wb") as f:
        f.write(b"EHLO client.example.net\r\nMAIL FROM:<alice@example.net>\r\n")
        f.write(b"".join(b"RCPT TO:<%s>\r\n" % r for r in rcpts))
        f.write(b"DATA\r\n" + message_of_size(1024) + b".\r\nQUIT\r\n")
    # EHLO (its last line), MAIL, every RCPT and the dot: final 250 lines expected.
    expected_250 = 3 + len(rcpts)
    # A probe that each rules variant must refuse once: proof that its rules are in force.
    probe = os.path.join(ctx.tmp, "rules-probe.smtp")
    with open(probe, "wb") as f:
        f.write(b"MAIL FROM:<alice@example.net>\r\nRCPT TO:<former1@example.com>\r\n"
                b"RCPT TO:<user1@host1.example>\r\nQUIT\r\n")

    big = os.path.join(ctx.tmp, "big.rules")
    with open(big, "w") as f:
        f.write("# 10,000 rules: none matches the benchmark's addresses\n")
        for i in range(10000):
            f.write([
                f"dspammer{i}@spam{i % 500}.example:*:Go away\n",
                f"d*:former{i}@example.com:No such user\n",
                f"d*@bulk{i}.example:*\n",
                f"z*:*@lame{i}.example:Try later\n",
                f"dbounce-*@list{i}.example:*\n",
                f"d*:*%*@relay{i}.example:No source routes\n",
                f"d*:?{i}?@*.example.org\n",
                f"d*:*+[a-z]{i}*@*\n",
                f"n*:ops{i}@example.com::10000000\n",
                f"k*:vip{i}@example.com:Welcome\n",
            ][i % 10])

    # 100,000 keys, lower-case (mailfront's cdb lookups do not fold case):
    # 90,000 addresses and 10,000 domains.
    cdb = os.path.join(ctx.tmp, "list.cdb")
    keys = [f"user{i}@host{i % 9000}.example" for i in range(90000)]
    keys += [f"blocked{i}.example" for i in range(10000)]
    records = "".join(f"+{len(k)},1:{k}->1\n" for k in keys) + "\n"
    try:
        subprocess.run(["cdbmake", cdb, cdb + ".tmp"], input=records.encode(),
                       check=True)
    except (OSError, subprocess.CalledProcessError) as e:
        ctx.warn(f"rules: cdbmake failed ({e}); the cdb variant is skipped")
        cdb = None
    cdb_rules = os.path.join(ctx.tmp, "cdb.rules")
    with open(cdb_rules, "w") as f:
        f.write(f"d[[{cdb}]]:*:Listed sender\nd[[@{cdb}]]:*:Listed domain\n"
                f"d*:[[{cdb}]]:Listed recipient\nd*:[[@{cdb}]]:Listed domain\n")

    def count(side, stdin_path, code):
        """Final reply lines with `code` from one run of side on stdin_path."""
        out = os.path.join(ctx.tmp, f"out-rules-{side.label}")
        run_once(ctx, side, stdin_path, out)
        with open(out, "rb") as f:
            n = sum(1 for line in f if line.startswith(code + b" "))
        os.unlink(out)
        return n

    peer_plugins = "mailrules:" + PEER_ENV["PLUGINS"]
    variants = [("none", None, None), ("10k", big, "10,000 rules")]
    if cdb:
        variants.append(("cdb", cdb_rules, "100,000-key cdb"))
    sides = {}  # (variant, "ours"|"peer") -> Side, only those that answer correctly
    for name, rules, _ in variants:
        ours_env = {"MAILRULES": rules} if rules else {}
        peer_env = dict(PEER_ENV, **({"PLUGINS": peer_plugins, "MAILRULES": rules}
                                     if rules else {}))
        for who, base, env in (("ours", ctx.ours, ours_env), ("peer", ctx.peer, peer_env)):
            side = Side(f"{base.label}-{name}", base.argv, dict(base.env, **env))
            ok = verify(ctx, f"rules-{name}", side, path, 1)
            got = count(side, path, b"250")
            if got != expected_250:
                ctx.warn(f"rules-{name}: {side.label} gave {got} final 250 replies, "
                         f"expected {expected_250}")
                ok = False
            refused, want = count(side, probe, b"553"), 0 if rules is None else 1
            if refused != want:
                ctx.warn(f"rules-{name}: {side.label} refused {refused} probe "
                         f"recipients, expected {want}: are its rules in force?")
                ok = False
            if ok:
                sides[(name, who)] = side
            else:
                ctx.warn(f"rules-{name}: {side.label} left out of the figures")

    rounds = 80 if ctx.quick else 400
    order = list(sides.values())
    runs = interleaved(ctx, {s.label: path for s in order}, rounds, order)
    wall = {k: median([r.wall for r in v]) * 1e3 for k, v in runs.items()}
    cpu = {k: median([r.cpu for r in v]) * 1e3 for k, v in runs.items()}
    labels = {"ours": ctx.ours.label, "peer": ctx.peer.label}

    def per_side(name, figures):
        return {labels[who]: figures[sides[(name, who)].label]
                for who in labels if (name, who) in sides}

    rows = []
    for name, _, what in variants:
        rows.append(ctx.row(f"rules {name} wall", per_side(name, wall), "ms", None, None,
                            f"median of {rounds}, 5 RCPTs" if name == "none" else what))
    for name, _, what in variants[1:]:
        extra_wall, extra_cpu = {}, {}
        for who, label in labels.items():
            if (name, who) in sides and ("none", who) in sides:
                extra_wall[label] = (wall[sides[(name, who)].label]
                                     - wall[sides[("none", who)].label])
                extra_cpu[label] = (cpu[sides[(name, who)].label]
                                    - cpu[sides[("none", who)].label])
        cpu_note = ", ".join(f"{k} {v:+.3f}" for k, v in extra_cpu.items())
        judged = ctx.ours.label in extra_wall  # ours left out: no goal to judge
        rows.append(ctx.row(f"rules {name} extra", extra_wall, "ms",
                            "abs<=" if judged else None, 1.0,
                            f"{what} over none; cpu ms: {cpu_note}"))
    return rows


# ------------------------------------------------- durable spool and forward

def sibling(ctx, name):
    """Another of our programs, built beside our smtpfront-echo by bench/run. forward is
    not static (make build): it is taken from cargo's own target/release."""
    here = os.path.dirname(os.path.abspath(ctx.ours.argv[0]))
    path = os.path.join(here, name)
    if not os.access(path, os.X_OK):
        target = os.path.dirname(os.path.dirname(here))  # target/TRIPLE/release -> target
        path = os.path.join(target, "release", name)
    return path


def write_pipelined_2k(path, n):
    """One session: EHLO, n pipelined transactions of a 2 KiB message each, QUIT."""
    lines = b"".join(line + b"\r\n" for line in text_lines(40, seed=2048))
    with open(path, "wb") as f:
        f.write(b"EHLO client.example.net\r\n")
        for i in range(n):
            msg = headers(i)
            rest = 2048 - len(msg)
            whole = rest // (LINE_LEN + 2) * (LINE_LEN + 2)
            f.write(ENVELOPE + msg + lines[:whole] + pad_line(rest - whole) + b".\r\n")
        f.write(b"QUIT\r\n")


def files_in(path):
    """(number of files, total bytes) in directory path; (0, 0) if it is missing."""
    try:
        names = os.listdir(path)
    except FileNotFoundError:
        return 0, 0
    return len(names), sum(os.path.getsize(os.path.join(path, n)) for n in names)


def tally(ctx, name, label, ok):
    """Counts one checked run in ctx.checks[name] as `label OK/RUNS runs`."""
    lines = ctx.checks.setdefault(name, [])
    for i, line in enumerate(lines):
        who, ratio, _ = line.split(" ")
        if who == label:
            good, total = map(int, ratio.split("/"))
            lines[i] = f"{label} {good + ok}/{total + 1} runs"
            return
    lines.append(f"{label} {int(ok)}/1 runs")


def paired_ratio(a_runs, b_runs):
    """Median over rounds of b's wall / a's wall, each pair from one round: a's
    rate over b's. Robust against a machine whose speed drifts during the
    benchmark (on a virtual machine, fsync latency can change fivefold for tens
    of seconds), as both runs of a round see nearly the same disk and load."""
    return median([b.wall / a.wall for a, b in zip(a_runs, b_runs)])


def paired_row(ctx, name, values, unit, goal, paired, note):
    """A rate row (ratio >= goal) whose ratio column, and verdict, is `paired`
    (paired_ratio) rather than the ratio of the two medians shown, which the
    note gives instead."""
    row = list(ctx.row(name, values, unit, ">=", goal, note))
    medians = row[3]
    row[3] = f"{paired:.2f}"
    row[4] = f"ratio>={goal:.2f} {'met' if paired >= goal else 'MISSED'}"
    row[5] = f"ratio: median of per-round ratios (of medians: {medians}); {note}"
    return tuple(row)


def fresh_runs(ctx, sides, rounds, stdin_path, prepare, check):
    """`interleaved` for programs that leave state behind: before each run,
    prepare(side) makes its fresh directory and returns the environment that
    names it; everything is synced to disk (os.sync) before the clock starts, so
    no run pays for the writeback of the previous one; after the run,
    check(side, run) verifies and cleans up (untimed). Returns {label: [Run]}."""
    runs = {s.label: [] for s in sides}
    for i in range(rounds):
        for side in (sides if i % 2 == 0 else sides[::-1]):
            env = prepare(side)
            timed = Side(side.label, side.argv, dict(side.env, **env))
            os.sync()
            r = run_once(ctx, timed, stdin_path)
            if r.status != 0:
                ctx.warn(f"{side.label} exited with status {r.status}")
            check(side, r)
            runs[side.label].append(r)
    return runs


def bench_spool(ctx):
    """1,000 pipelined 2 KiB messages stored durably, in one session: our
    smtpfront-spool against `mailfront smtp queuedir`. Both write each message
    under tmp/, fsync it, move it into new/ and fsync new/ before the 250 (read
    from strace: mailfront links and unlinks where we rename). Each run gets a
    fresh, empty spool on the disk of $TMPDIR; after it, every message must be
    a file in new/, and tmp/ must be empty."""
    n = 1000
    path = os.path.join(ctx.tmp, "spool.smtp")
    write_pipelined_2k(path, n)
    ours = Side("ours", [sibling(ctx, "smtpfront-spool")], {"RELAYCLIENT": ""})
    peer = Side(ctx.peer.label, [ctx.peer.argv[0], "smtp", "queuedir"],
                {"PLUGINS": "relayclient:counters:add-received:accept", "RELAYCLIENT": ""})
    if not os.access(ours.argv[0], os.X_OK):
        ctx.warn(f"spool: {ours.argv[0]} is missing (cargo build --release --bins)")
        return []
    count = [0]

    def prepare(side):
        count[0] += 1
        d = os.path.join(ctx.tmp, f"spool-{side.label}-{count[0]}")
        if side is ours:
            os.mkdir(d, 0o700)                 # smtpfront-spool makes tmp/ and new/
            return {"SPOOLDIR": d}
        for sub in ("", "tmp", "new"):         # mailfront's queuedir needs all three
            os.mkdir(os.path.join(d, sub), 0o700)
        return {"QUEUEDIR": d}

    def check(side, _run):
        d = os.path.join(ctx.tmp, f"spool-{side.label}-{count[0]}")
        stored, size = files_in(os.path.join(d, "new"))
        left, _ = files_in(os.path.join(d, "tmp"))
        ok = stored == n and not left and size >= n * 2048
        if not ok:
            ctx.warn(f"spool: {side.label} left {stored} files ({size} bytes) in new/ "
                     f"and {left} in tmp/, expected {n} of 2 KiB or more in new/")
        tally(ctx, f"spool: {n} files in new/", side.label, ok)
        shutil.rmtree(d)

    for side in (ours, peer):
        env = prepare(side)
        verify(ctx, "spool", Side(side.label, side.argv, dict(side.env, **env)), path, n)
        check(side, None)
    rounds = 3 if ctx.quick else 9
    runs = fresh_runs(ctx, [ours, peer], rounds, path, prepare, check)
    rate = {k: n / median([r.wall for r in v]) for k, v in runs.items()}
    best = {k: n / min(r.wall for r in v) for k, v in runs.items()}
    cpu = {k: median([r.cpu for r in v]) * 1e3 for k, v in runs.items()}
    spread = ", ".join(f"{k} {min(r.wall for r in v):.2f}-{max(r.wall for r in v):.2f} s"
                       for k, v in runs.items())
    paired = paired_ratio(runs[ours.label], runs[peer.label])
    return [
        paired_row(ctx, "spool 1k rate", rate, "msg/s", 0.9, paired,
                   f"median rates of {rounds}; runs {spread}"),
        ctx.row("spool 1k best", best, "msg/s", None, None,
                "fastest run: the least disturbed by the disk"),
        ctx.row("spool 1k cpu", cpu, "ms", None, None,
                "user+sys; 2 KiB messages, fsync of the file and of new/ each"),
    ]


def bench_forward(ctx):
    """forward drains a spool of 2,000 messages of 2 KiB into Postfix's
    smtp-sink, in one connection, against Postfix's `smtp-source -d -s 1` sending
    2,000 messages of 2,048 bytes into the same sink. The spool is stored once by
    our smtpfront-spool (one pipelined session) and copied afresh for every run.
    forward must exit 0 and leave new/ empty; the sink's own counter must rise by
    2,000 per run of either side. Not the same work: forward removes each file
    after the remote's 250 and fsyncs new/ (SPEC 7, the durable part of its cost);
    smtp-source reads and deletes nothing."""
    n = 2000
    sink, source = "/usr/sbin/smtp-sink", "/usr/sbin/smtp-source"
    missing = [p for p in (sink, source, sibling(ctx, "forward"),
                           sibling(ctx, "smtpfront-spool")) if not os.access(p, os.X_OK)]
    if missing:
        ctx.warn(f"forward: skipped, missing {', '.join(missing)} "
                 f"(apt-get install postfix; cargo build --release --bins)")
        return []

    # The spool, stored once by the real smtpfront-spool.
    session = os.path.join(ctx.tmp, "forward.smtp")
    write_pipelined_2k(session, n)
    master = os.path.join(ctx.tmp, "forward-master")
    os.mkdir(master, 0o700)
    store = Side("ours", [sibling(ctx, "smtpfront-spool")],
                 {"RELAYCLIENT": "", "SPOOLDIR": master})
    verify(ctx, "forward-spool", store, session, n)
    os.unlink(session)
    stored, size = files_in(os.path.join(master, "new"))
    if stored != n:
        ctx.warn(f"forward: smtpfront-spool stored {stored} messages, expected {n}")

    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]
    target = f"127.0.0.1:{port}"
    counter = os.path.join(ctx.tmp, "sink-counter")
    argv = [sink, "-c"] + (["-u", "nobody"] if os.geteuid() == 0 else []) + [target, "1000"]
    with open(counter, "wb") as out:
        proc = subprocess.Popen(argv, stdin=subprocess.DEVNULL, stdout=out,
                                stderr=subprocess.DEVNULL)
    try:
        deadline = time.monotonic() + 10
        while True:
            try:
                socket.create_connection(("127.0.0.1", port), timeout=1).close()
                break
            except OSError:
                if time.monotonic() > deadline or proc.poll() is not None:
                    ctx.warn(f"forward: smtp-sink did not start ({' '.join(argv)})")
                    return []
                time.sleep(0.02)
        return forward_rounds(ctx, n, size, master, target, counter)
    finally:
        proc.kill()
        proc.wait()


def sink_messages(counter):
    """The sink's message count: the last `mesg=N` of its -c counter lines."""
    with open(counter, "rb") as f:
        text = f.read().replace(b"\r", b"\n").split(b"\n")
    for line in reversed(text):
        for field in line.split():
            if field.startswith(b"mesg="):
                return int(field[5:])
    return 0


def forward_rounds(ctx, n, size, master, target, counter):
    ours = Side("forward", [sibling(ctx, "forward"), "-h", "bench.example", target],
                {"SENDMAIL": "/bin/false"})
    peer = Side("smtp-source", ["/usr/sbin/smtp-source", "-d", "-s", "1", "-m", str(n),
                                "-l", "2048", "-f", "a@example.net", "-t", "b@example.com",
                                target], {})
    sides = [ours, peer]
    # Diagnostics, not competitors: forward with fsync() and fdatasync() made no-ops
    # (LD_PRELOAD), then also unlink(), to show what the durable removal costs: what is
    # left is the SMTP exchange and reading the files.
    shims = {
        "forward-nosync": "int fsync(int fd) { (void)fd; return 0; }\n"
                          "int fdatasync(int fd) { (void)fd; return 0; }\n",
        "forward-noremove": "int unlink(const char *p) { (void)p; return 0; }\n"
                            "int unlinkat(int d, const char *p, int f)"
                            " { (void)d; (void)p; (void)f; return 0; }\n",
    }
    diagnostics = []
    code = ""
    for label, text in shims.items():
        code += text
        shim = os.path.join(ctx.tmp, f"{label}.so")
        with open(shim + ".c", "w") as f:
            f.write(code)
        try:
            subprocess.run(["cc", "-O2", "-shared", "-fPIC", "-o", shim, shim + ".c"],
                           check=True)
        except (OSError, subprocess.CalledProcessError):
            ctx.warn(f"forward: cannot build {shim}; the {label} diagnostic is skipped")
            continue
        diagnostics.append(Side(label, ours.argv, dict(ours.env, LD_PRELOAD=shim)))
    sides += diagnostics
    keeps_files = {"forward-noremove"}
    count = [0]
    seen = [sink_messages(counter)]

    def prepare(side):
        count[0] += 1
        if side is peer:
            return {}
        d = os.path.join(ctx.tmp, f"forward-{count[0]}")
        shutil.copytree(master, d)
        return {"SPOOLDIR": d}

    def check(side, r):
        deadline = time.monotonic() + 2
        while True:  # the sink updates its counter at the dot; give it a moment
            got = sink_messages(counter) - seen[0]
            if got >= n or time.monotonic() > deadline:
                break
            time.sleep(0.005)
        seen[0] += got
        ok = got == n and r.status == 0
        if not ok:
            ctx.warn(f"forward: the sink counted {got} messages from {side.label}, "
                     f"expected {n}; exit status {r.status}: the comparison is not honest")
        if side is not peer:
            d = os.path.join(ctx.tmp, f"forward-{count[0]}")
            left, _ = files_in(os.path.join(d, "new"))
            expected = n if side.label in keeps_files else 0
            if left != expected:
                ctx.warn(f"forward: {side.label} left {left} messages in the spool, "
                         f"expected {expected}")
            ok = ok and left == expected
            shutil.rmtree(d)
        tally(ctx, f"forward: exit 0, {n} at the sink, spool empty (but noremove)",
              side.label, ok)

    for side in sides:                  # untimed warm-up, checked like every run
        env = prepare(side)
        r = run_once(ctx, Side(side.label, side.argv, dict(side.env, **env)), os.devnull)
        check(side, r)
    rounds = 3 if ctx.quick else 7
    runs = fresh_runs(ctx, sides, rounds, os.devnull, prepare, check)
    wall = {k: median([r.wall for r in v]) for k, v in runs.items()}
    cpu = {k: median([r.cpu for r in v]) * 1e3 for k, v in runs.items()}

    def cols(figures, mine):
        return {ctx.ours.label: figures[mine], ctx.peer.label: figures[peer.label]}

    rate = {k: n / v for k, v in wall.items()}
    paired = paired_ratio(runs[ours.label], runs[peer.label])
    rows = [
        paired_row(ctx, "forward 2k rate", cols(rate, ours.label), "msg/s", 0.8, paired,
                   f"median rates of {rounds}; peer column: smtp-source -d -s 1; "
                   f"{size // n} B/file, each unlinked + fsync new/"),
        ctx.row("forward 2k cpu", cols(cpu, ours.label), "ms", None, None, "user+sys"),
    ]
    notes = {"forward-nosync": "fsync() a no-op (LD_PRELOAD); the unlinks remain",
             "forward-noremove": "fsync() and unlink() no-ops: SMTP and file reads only"}
    for side in diagnostics:
        rows.append(ctx.row(f"forward 2k {side.label[len('forward-'):]}",
                            cols(rate, side.label), "msg/s", None, None,
                            f"diagnostic, NOT durable: {notes[side.label]}"))
    return rows


BENCHMARKS = {
    "session": bench_session,
    "pipeline": bench_pipeline,
    "utf8": bench_utf8,
    "bigmsg": bench_bigmsg,
    "rules": bench_rules,
    "spool": bench_spool,
    "forward": bench_forward,
}


# ---------------------------------------------------------------- report

class Context:
    def __init__(self, args, tmp):
        self.quick = args.quick
        self.tmp = tmp
        self.ours = Side("ours", [args.ours], {})
        self.peer = Side("mailfront", [args.peer, "smtp", "echo"], PEER_ENV)
        self.warnings = []
        self.checks = {}  # benchmark -> ['ours 1/1', ...]
        self.launcher = build_launcher(tmp)
        if not self.launcher:
            self.warn("no C compiler: spawning directly, so peak RSS includes "
                      "this Python's own (~10-20 MiB) and wall times its spawn")

    def warn(self, text):
        self.warnings.append(text)
        print(f"WARNING: {text}", file=sys.stderr, flush=True)

    def row(self, name, values, unit, op, goal, note):
        """One table line. op: '<=' / '>=' on the ratio ours/peer, 'abs<=' on
        our own figure, None for no goal."""
        ours = values.get(self.ours.label)
        peer = values.get(self.peer.label)
        ratio = ours / peer if ours is not None and peer else None
        if op is None:
            verdict = "-"
        elif op == "abs<=":
            verdict = f"ours<={goal} {unit} {'met' if ours <= goal else 'MISSED'}"
        else:
            met = ratio is not None and (ratio <= goal if op == "<=" else ratio >= goal)
            verdict = f"ratio{op}{goal:.2f} {'met' if met else 'MISSED'}"
        return (name, fmt(ours, unit), fmt(peer, unit),
                "-" if ratio is None else f"{ratio:.2f}", verdict, note)


def fmt(value, unit):
    if value is None:
        return "-"
    digits = 3 if abs(value) < 10 else 2 if abs(value) < 100 else 1 if abs(value) < 1000 else 0
    if unit in ("KiB", "MB/s"):
        digits = 0
    return f"{value:.{digits}f} {unit}"


def describe(ctx):
    def cmd(argv):
        try:
            return subprocess.run(argv, capture_output=True, text=True,
                                  check=False).stdout.strip()
        except OSError:
            return "?"
    cpu = "?"
    with open("/proc/cpuinfo") as f:
        for line in f:
            if line.startswith("model name"):
                cpu = line.split(":", 1)[1].strip()
                break
    commit = cmd(["git", "-C", os.path.dirname(os.path.abspath(__file__)),
                  "rev-parse", "--short", "HEAD"]) or "?"
    peer_version = cmd(["dpkg-query", "-W", "-f", "${Version}", "mailfront"]) or "?"
    return (f"# {time.strftime('%Y-%m-%d %H:%M')}  {platform.machine()} {cpu}, "
            f"{os.cpu_count()} cpus, Linux {platform.release()}\n"
            f"# ours: {ctx.ours.argv[0]} (git {commit}, tree may be dirty)\n"
            f"# peer: {' '.join(ctx.peer.argv)} (mailfront {peer_version}), "
            f"PLUGINS={PEER_ENV['PLUGINS']}\n"
            f"# mode: {'quick' if ctx.quick else 'full'}; ratio = ours/mailfront")


def print_table(rows):
    header = ("benchmark", "ours", "mailfront", "ratio", "goal", "note")
    widths = [max(len(r[i]) for r in rows + [header]) for i in range(len(header))]
    for r in [header] + rows:
        print("  ".join(c.ljust(w) for c, w in zip(r, widths)).rstrip())


def main():
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--quick", action="store_true", help="fewer rounds")
    p.add_argument("--only", action="append", default=[], metavar="NAME",
                   help="run only this benchmark (repeatable, or comma-separated): "
                        + ", ".join(BENCHMARKS))
    p.add_argument("--ours", required=True, help="our smtpfront-echo")
    p.add_argument("--peer", default="/usr/sbin/mailfront", help="mailfront binary")
    args = p.parse_args()

    names = [n for arg in args.only for n in arg.split(",") if n] or list(BENCHMARKS)
    unknown = [n for n in names if n not in BENCHMARKS]
    if unknown:
        p.error(f"unknown benchmark {', '.join(unknown)}; known: {', '.join(BENCHMARKS)}")
    for prog in (args.ours, args.peer):
        if not os.access(prog, os.X_OK):
            p.error(f"{prog} is not executable")

    tmp = tempfile.mkdtemp(prefix="smtpfront-bench-")
    try:
        ctx = Context(args, tmp)
        rows = []
        for name in names:
            t0 = time.monotonic()
            print(f"running {name} ...", file=sys.stderr, flush=True)
            rows += BENCHMARKS[name](ctx)
            print(f"  {name} took {time.monotonic() - t0:.1f} s", file=sys.stderr,
                  flush=True)
    finally:
        shutil.rmtree(tmp, ignore_errors=True)

    print(describe(ctx))
    print_table(rows)
    print("# messages accepted (250 after the dot) / sent: "
          + "; ".join(f"{k} {' '.join(v)}" for k, v in ctx.checks.items()))
    for w in ctx.warnings:
        print(f"# WARNING: {w}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
