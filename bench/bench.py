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
    for side in (ctx.ours, ctx.peer):
        verify(ctx, "session", side, path, 1)
    floor = Side("floor", ["/bin/true"], {})
    rounds = 100 if ctx.quick else 500
    runs = interleaved(ctx, {s.label: path for s in (ctx.ours, ctx.peer, floor)},
                       rounds, [ctx.ours, ctx.peer, floor])
    wall = {k: median([r.wall for r in v]) * 1e3 for k, v in runs.items()}
    cpu = {k: median([r.cpu for r in v]) * 1e3 for k, v in runs.items()}
    net = {k: wall[k] - wall["floor"] for k in (ctx.ours.label, ctx.peer.label)}
    return [
        ctx.row("session wall", wall, "ms", "<=", 0.6, f"median of {rounds}"),
        ctx.row("session cpu", cpu, "ms", "<=", 0.6, "user+sys"),
        ctx.row("session wall-floor", net, "ms", None, None,
                f"minus /bin/true {wall['floor']:.3g} ms"),
    ]


def bench_pipeline(ctx):
    """10,000 pipelined transactions in one session, all on stdin at once."""
    n = 10000
    path = os.path.join(ctx.tmp, "pipeline.smtp")
    with open(path, "wb") as f:
        f.write(b"EHLO client.example.net\r\n")
        for i in range(n):
            f.write(ENVELOPE)
            f.write(b"Subject: pipelined %d\r\n\r\nHello, message %d.\r\n.\r\n" % (i, i))
        f.write(b"QUIT\r\n")
    for side in (ctx.ours, ctx.peer):
        verify(ctx, "pipeline", side, path, n)
    rounds = 3 if ctx.quick else 5
    runs = interleaved(ctx, {ctx.ours.label: path, ctx.peer.label: path}, rounds)
    wall = {k: median([r.wall for r in v]) * 1e3 for k, v in runs.items()}
    cpu = {k: median([r.cpu for r in v]) * 1e3 for k, v in runs.items()}
    return [
        ctx.row("pipeline 10k wall", wall, "ms", "<=", 0.5, f"median of {rounds}"),
        ctx.row("pipeline 10k cpu", cpu, "ms", None, None, "user+sys"),
    ]


def bench_bigmsg(ctx):
    """One 100 MiB message: throughput and peak RSS; ours alone on 1 GiB."""
    rows = []
    size = 100 * MIB
    path = os.path.join(ctx.tmp, "big100m.smtp")
    write_big_session(path, size)
    for side in (ctx.ours, ctx.peer):
        verify(ctx, "100MiB", side, path, 1)
    rounds = 1 if ctx.quick else 5
    runs = interleaved(ctx, {ctx.ours.label: path, ctx.peer.label: path}, rounds)
    mbps = {k: size / 1e6 / median([r.wall for r in v]) for k, v in runs.items()}
    rss = {k: max(r.maxrss_kib for r in v) for k, v in runs.items()}
    rows.append(ctx.row("100MiB throughput", mbps, "MB/s", ">=", 10.0,
                        f"median of {rounds}"))
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


BENCHMARKS = {
    "session": bench_session,
    "pipeline": bench_pipeline,
    "bigmsg": bench_bigmsg,
    "rules": bench_rules,
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
