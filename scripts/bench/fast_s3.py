#!/usr/bin/env python3
"""The fast-S3 rows of scripts/bench-files.sh (F1-F4): ours, s5cmd and
aws-cli against s3s-fs, a Rust S3 server on the local disk, at +0 ms
(straight to s3s-fs) and at +20 ms per request (through snaptastic-lab
started with --s3-url, its latency rule on every request). The script
installs the tools, starts s3s-fs and the lab, and runs this with the
emulator venv's Python (boto3, for the bench's own checks, which go to
s3s-fs directly). Settings come from the environment (see that script).

Every figure is the median of REPEAT runs. Wall time is from start to
done (for tablesnap, a daemon: until it logs the index listing every
file; it is then stopped with SIGTERM); CPU is user + sys of the child
from wait4 (the whole process, its stop included); peak RSS is the
process's VmHWM, read every 10 ms until it exits (wait4's ru_maxrss also
counts the Python that forked it, ~50 MiB, for every command).
"""

import json
import os
import re
import resource
import shutil
import signal
import statistics
import subprocess
import threading
import time
import urllib.request

import boto3
from botocore.config import Config

from procstat import cpu_secs  # noqa: E402 (beside this script)

ENV = os.environ
WORK = ENV["BENCH_WORK"]
S3 = ENV["BENCH_S3_URL"]
S3_PID = int(ENV["BENCH_S3_PID"])
S3_LOG = ENV.get("BENCH_S3_LOG", "")
LAB = ENV.get("BENCH_FAST_LAB_URL", "")
LAB_PID = int(ENV["BENCH_FAST_LAB_PID"]) if ENV.get("BENCH_FAST_LAB_PID", "").isdigit() else None
SNAP = ENV["BENCH_SNAPTASTIC"]
AWS = ENV.get("BENCH_AWS", "")
S5CMD = ENV.get("BENCH_S5CMD", "")
PEERS = ENV.get("BENCH_FAST_PEERS", "").split()
KEY = ENV["BENCH_S3_KEY"]
SECRET = ENV["BENCH_S3_SECRET"]

FAST_ROWS = {r.upper() if r.upper().startswith("F") else f"F{r}"
             for r in ENV.get("FAST_ROWS", "F1 F2 F3 F4 F5").split()}
WANT_LAT = [int(x) for x in ENV.get("LATENCIES", "0 20").split()]
# F5: F4 again through the lab with each connection's reply body capped at
# CAP MiB/s (S3 carries tens of MiB/s per connection); empty or 0: no F5.
CAP = float(ENV.get("CAP", "50") or 0)
LATENCIES = [x for x in WANT_LAT if x == 0 or LAB]
SMALL = int(ENV.get("SMALL", "1000"))
BIG = int(ENV.get("BIG", "4"))
BIG_MIB = int(ENV.get("BIG_MIB", "256"))
REPEAT = max(1, int(ENV.get("REPEAT", "3")))
THREADS = ENV.get("THREADS", "")
TFLAG = ["-t", THREADS] if THREADS else []
TIMEOUT = float(ENV.get("TIMEOUT", "900"))

BUCKET = "bench-fast"
NAME = "bench"  # the host name in ours' keys (-n)
TOOLS = ["ours"] + [t for t in ("s5cmd", "aws-cli") if t in PEERS]
COMPONENTS = ["Data.db", "Index.db", "Filter.db", "Statistics.db", "Summary.db",
              "CompressionInfo.db", "Digest.crc32", "TOC.txt"]
GIB = 1 << 30

s3 = boto3.client("s3", endpoint_url=S3, region_name="us-east-1",
                  aws_access_key_id=KEY, aws_secret_access_key=SECRET,
                  config=Config(max_pool_connections=16, retries={"max_attempts": 3},
                                s3={"addressing_style": "path"}))


def log(msg=""):
    print(msg, flush=True)


def http(method, url, data=None):
    req = urllib.request.Request(url, data=data, method=method)
    with urllib.request.urlopen(req, timeout=30) as r:
        return r.read()


def set_latency(ms, cap=0.0):
    """The lab's rules: ms added to every request, and with cap, every
    reply body sent at cap MiB/s (which also resets its call counts)."""
    if LAB:
        rules = "" if ms == 0 and not cap else f'[[faults]]\naction = "*"\nreply = "latency"\nlatency = "{ms}ms"\n'
        if cap:
            rules += f"mib_per_s = {cap}\n"
        http("PUT", f"{LAB}/_lab/rules", rules.encode())


def lab_calls():
    return json.loads(http("GET", f"{LAB}/_lab/state"))["calls"] if LAB else {}


def s3_log_offset():
    try:
        return os.path.getsize(S3_LOG)
    except OSError:
        return 0


ERR_CODE = re.compile(rb"<Code>([A-Za-z]+)</Code>")


def s3_errors(offset):
    """Error replies s3s-fs logged since offset, by code."""
    try:
        with open(S3_LOG, "rb") as f:
            f.seek(offset)
            text = f.read()
    except OSError:
        return {}
    out = {}
    for line in text.splitlines():
        if b" ERROR " in line:
            m = ERR_CODE.search(line)
            code = m.group(1).decode() if m else "error"
            out[code] = out.get(code, 0) + 1
    return out


# ---- files ---------------------------------------------------------------

def make_small(d, n):
    os.makedirs(d, exist_ok=True)
    for i in range(n):
        name = f"ks-tbl-ka-{i // len(COMPONENTS)}-{COMPONENTS[i % len(COMPONENTS)]}"
        with open(os.path.join(d, name), "wb") as f:
            f.write(os.urandom(4096))


def make_big(d, n, mib):
    os.makedirs(d, exist_ok=True)
    for i in range(n):
        with open(os.path.join(d, f"ks-tbl-ka-{i}-Data.db"), "wb") as f:
            left = mib << 20
            while left:
                chunk = min(left, 8 << 20)
                f.write(os.urandom(chunk))
                left -= chunk


def listing(d):
    return {n: os.path.getsize(os.path.join(d, n)) for n in os.listdir(d)}


def same_tree(src, dst):
    """None when dst holds src's files with the same bytes (indexes
    aside: s5cmd and aws-cli restore the -listdir.json too), else why."""
    a = set(os.listdir(src))
    b = {n for n in os.listdir(dst) if not n.endswith("-listdir.json")}
    if a != b:
        return f"{len(a - b)} missing, {len(b - a)} extra"
    for n in a:
        with open(os.path.join(src, n), "rb") as x, open(os.path.join(dst, n), "rb") as y:
            while True:
                p, q = x.read(8 << 20), y.read(8 << 20)
                if p != q:
                    return f"{n} differs"
                if not p:
                    break
    return None


def objects(prefix):
    out = {}
    for page in s3.get_paginator("list_objects_v2").paginate(Bucket=BUCKET, Prefix=prefix):
        for o in page.get("Contents", []):
            out[o["Key"][len(prefix):]] = o["Size"]
    return out


def delete_prefix(prefix):
    """Not timed: an upload run's objects, so the disk holds one at a time."""
    keys = list(objects(prefix))
    for i in range(0, len(keys), 1000):
        s3.delete_objects(Bucket=BUCKET, Delete={
            "Objects": [{"Key": prefix + k} for k in keys[i:i + 1000]], "Quiet": True})


# ---- one run ---------------------------------------------------------------

class Run:
    """One child: wall time (to exit, or to done for a daemon), user+sys
    CPU from wait4, peak RSS (VmHWM), the servers' CPU meanwhile."""

    def __init__(self, cmd, env, tag, on_line=None, watch_rss=False):
        self.cmd, self.on_line = cmd, on_line
        self.done = threading.Event()
        self.done_at = None
        self.hwm_kib = 0
        self.exited = False
        os.makedirs(os.path.join(WORK, "logs"), exist_ok=True)
        self.log_path = os.path.join(WORK, "logs", f"{tag}.log")
        self.s3_cpu0, self.lab_cpu0 = cpu_secs(S3_PID), cpu_secs(LAB_PID)
        self.s3_log0 = s3_log_offset()
        self.lab0 = lab_calls() if env.get("AWS_ENDPOINT_URL") == LAB and LAB else None
        self.t0 = time.monotonic()
        self.p = subprocess.Popen(cmd, env=env, stdin=subprocess.DEVNULL,
                                  stdout=subprocess.DEVNULL, stderr=subprocess.PIPE)
        self.lines = []
        self.reader = threading.Thread(target=self._read, daemon=True)
        self.reader.start()
        if watch_rss:
            threading.Thread(target=self._watch, daemon=True).start()

    def _read(self):
        for raw in self.p.stderr:
            line = raw.decode("utf-8", "replace").rstrip("\n")
            self.lines.append(line)
            if self.on_line and self.done_at is None and self.on_line(line):
                self.done_at = time.monotonic()
                self.done.set()

    def _hwm(self):
        try:
            with open(f"/proc/{self.p.pid}/status") as f:
                for line in f:
                    if line.startswith("VmHWM:"):
                        self.hwm_kib = max(self.hwm_kib, int(line.split()[1]))
        except (OSError, ValueError):
            pass

    def _watch(self):
        while not self.exited:
            self._hwm()
            time.sleep(0.01)

    def _reap(self, block):
        """wait4 on the child (os.wait4 only: Popen's poll would reap it
        and lose its rusage); True once it is reaped."""
        if self.status is None:
            pid, status, ru = os.wait4(self.p.pid, 0 if block else os.WNOHANG)
            if pid:
                self.status, self.ru = status, ru
                self.exited = True
        return self.status is not None

    def wait(self, daemon=False):
        """Reap the child (a daemon: once done, by SIGTERM); the result."""
        self.status = self.ru = None
        timer = threading.Timer(TIMEOUT, self._kill)
        timer.start()
        end = None
        if daemon:
            while not self.done.wait(0.05):
                if self._reap(False) or time.monotonic() - self.t0 > TIMEOUT:
                    break
            end = self.done_at
            self._hwm()
            if self.status is None:
                os.kill(self.p.pid, signal.SIGTERM)
        self._reap(True)
        if not daemon:
            end = time.monotonic()
        timer.cancel()
        ru = self.ru
        self.p.returncode = os.waitstatus_to_exitcode(self.status)
        self.reader.join(5)
        with open(self.log_path, "w") as f:
            f.write(" ".join(self.cmd) + "\n" + "\n".join(self.lines) + "\n")
        r = {
            "wall": None if end is None else end - self.t0,
            "cpu": ru.ru_utime + ru.ru_stime,
            "rss_mib": self.hwm_kib / 1024 if self.hwm_kib else None,
            "s3_cpu": (cpu_secs(S3_PID) or 0) - (self.s3_cpu0 or 0),
            "lab_cpu": ((cpu_secs(LAB_PID) or 0) - (self.lab_cpu0 or 0)) if self.lab0 is not None else None,
            "errors": s3_errors(self.s3_log0),
            "rc": self.p.returncode,
            "failed": None,
        }
        if self.lab0 is not None:
            now = lab_calls()
            r["calls"] = {k: v - self.lab0.get(k, 0) for k, v in now.items() if v - self.lab0.get(k, 0)}
        if daemon and end is None:
            r["failed"] = "did not finish: " + " | ".join(self.lines[-2:])
        elif not daemon and self.p.returncode != 0:
            r["failed"] = f"exit {self.p.returncode}: " + " | ".join(self.lines[-2:])
        return r

    def _kill(self):
        if self.status is None:
            try:
                os.kill(self.p.pid, signal.SIGKILL)
            except OSError:
                pass


def env_for(endpoint, tag):
    """Credentials, endpoint, fresh HOME and state (no digest record: ours
    reads every file for its MD5, as on a first run)."""
    d = os.path.join(WORK, "state", tag)
    shutil.rmtree(d, ignore_errors=True)
    os.makedirs(os.path.join(d, "state"))
    os.makedirs(os.path.join(d, "run"))
    for name in ("aws-config", "aws-credentials"):  # empty: nothing of the machine's
        open(os.path.join(d, name), "w").close()
    e = {k: v for k, v in ENV.items() if not k.startswith(("AWS_", "BENCH_"))}
    e.update({"AWS_ACCESS_KEY_ID": KEY, "AWS_SECRET_ACCESS_KEY": SECRET,
              "AWS_REGION": "us-east-1", "AWS_DEFAULT_REGION": "us-east-1",
              "AWS_ENDPOINT_URL": endpoint, "HOME": d,
              "AWS_CONFIG_FILE": os.path.join(d, "aws-config"),
              "AWS_SHARED_CREDENTIALS_FILE": os.path.join(d, "aws-credentials"),
              "SNAPTASTIC_STATE_DIR": os.path.join(d, "state"),
              "SNAPTASTIC_RUNTIME_DIR": os.path.join(d, "run")})
    return e


INDEXED = re.compile(r"indexed (\d+) files of (.+) in (\S+)\s*$")


def upload(tool, root, prefix, endpoint, tag, watch_rss):
    """One full upload of root's files under prefix."""
    n = len(os.listdir(root))
    e = env_for(endpoint, tag)
    if tool == "ours":
        def on_line(line):
            m = INDEXED.search(line)
            return bool(m and m.group(2) == root and int(m.group(1)) >= n)
        cmd = [SNAP, "--loglevel=INFO", "tablesnap", BUCKET, root, "-B", "-n", NAME,
               "-p", prefix, *TFLAG]
        r = Run(cmd, e, tag, on_line=on_line, watch_rss=watch_rss).wait(daemon=True)
        base = f"{prefix}{NAME}:{root}/"
    elif tool == "s5cmd":
        cmd = [S5CMD, "--endpoint-url", endpoint, "cp", f"{root}/*", f"s3://{BUCKET}/{prefix}"]
        r = Run(cmd, e, tag, watch_rss=watch_rss).wait()
        base = prefix
    else:
        cmd = [AWS, "--endpoint-url", endpoint, "s3", "cp", "--recursive", "--only-show-errors",
               root, f"s3://{BUCKET}/{prefix}"]
        r = Run(cmd, e, tag, watch_rss=watch_rss).wait()
        base = prefix
    if not r["failed"]:
        have = objects(base)
        want = listing(root)
        bad = [k for k, size in want.items() if have.get(k) != size]
        if bad:
            r["failed"] = f"{len(bad)} of {len(want)} files missing or of another size in S3"
        elif tool == "ours" and not any(k.endswith("-listdir.json") for k in have):
            r["failed"] = "no index in S3"
    return r


def restore(tool, root, prefix, endpoint, tag, watch_rss):
    """One restore of ours' backup of root (under prefix) into a fresh
    empty directory."""
    tgt = os.path.join(WORK, "restore", tag)
    shutil.rmtree(tgt, ignore_errors=True)
    os.makedirs(tgt)
    e = env_for(endpoint, tag)
    src = f"{prefix}{NAME}:{root}/"
    if tool == "ours":
        cmd = [SNAP, "--loglevel=WARNING", "tableslurp", BUCKET, root, tgt, "-n", NAME,
               "--prefix", prefix, *TFLAG]
    elif tool == "s5cmd":
        cmd = [S5CMD, "--endpoint-url", endpoint, "cp", f"s3://{BUCKET}/{src}*", tgt + "/"]
    else:
        cmd = [AWS, "--endpoint-url", endpoint, "s3", "cp", "--recursive", "--only-show-errors",
               f"s3://{BUCKET}/{src}", tgt + "/"]
    r = Run(cmd, e, tag, watch_rss=watch_rss).wait()
    if not r["failed"]:
        r["failed"] = same_tree(root, tgt)
    shutil.rmtree(tgt, ignore_errors=True)
    return r


# ---- the workloads -----------------------------------------------------------

results = {}  # (workload, latency) -> {tool: [run results]}
notes = []


def say(w, lat, rep, tool, r):
    if r["failed"]:
        log(f"    {w} +{lat} ms #{rep} {tool:<7} FAILED: {r['failed']}")
        return
    s = f"    {w} +{lat} ms #{rep} {tool:<7} {r['wall']:7.2f} s  CPU {r['cpu']:6.2f} s  s3s-fs CPU {r['s3_cpu']:5.2f} s"
    if r.get("lab_cpu") is not None:
        s += f"  lab CPU {r['lab_cpu']:5.2f} s"
    if r["rss_mib"]:
        s += f"  peak RSS {r['rss_mib']:,.0f} MiB"
    if r.get("calls"):
        s += "  [" + ", ".join(f"{k} {v}" for k, v in sorted(r["calls"].items())) + "]"
    if r["errors"]:
        s += "  s3s-fs errors: " + ", ".join(f"{k} x{v}" for k, v in sorted(r["errors"].items()))
    log(s)


def run_uploads(w, root, big):
    """Each latency x REPEAT x tool (tools interleaved), a fresh prefix
    per run; ours' first good +0 ms run is kept for the restores."""
    kept = None
    for lat in LATENCIES:
        set_latency(lat)
        ep = LAB if lat else S3
        cell = results.setdefault((w, lat), {})
        for rep in range(1, REPEAT + 1):
            for tool in TOOLS:
                prefix = f"{w.lower()}-{lat}ms-{tool}-{rep}/"
                os.sync()
                r = upload(tool, root, prefix, ep, f"{w}-{lat}ms-{tool}-{rep}", big)
                cell.setdefault(tool, []).append(r)
                say(w, lat, rep, tool, r)
                if tool == "ours" and lat == 0 and kept is None and not r["failed"]:
                    kept = prefix
                else:
                    delete_prefix(prefix)
    set_latency(0)
    return kept


def run_restores(w, root, prefix, big, cap=0.0):
    """Each latency (or with cap, +0 ms through the lab at cap MiB/s per
    connection) x REPEAT x tool."""
    for lat in ([0] if cap else LATENCIES):
        set_latency(lat, cap)
        ep = LAB if lat or cap else S3
        cell = results.setdefault((w, lat), {})
        for rep in range(1, REPEAT + 1):
            for tool in TOOLS:
                os.sync()
                r = restore(tool, root, prefix, ep, f"{w}-{lat}ms-{tool}-{rep}", big)
                cell.setdefault(tool, []).append(r)
                say(w, lat, rep, tool, r)
    set_latency(0)


def seed(root, prefix, tag):
    """A backup by ours at +0 ms, not measured, for a restore row run
    without its upload row."""
    r = upload("ours", root, prefix, S3, tag, False)
    if r["failed"]:
        raise SystemExit(f"bench: seeding {prefix} failed: {r['failed']}")


def md5_cost(files):
    """CPU seconds per GiB to MD5 the files from the page cache, with
    `openssl md5` and with `md5sum` (the lower of REPEAT runs each)."""
    total = sum(os.path.getsize(f) for f in files)
    for f in files:  # into the page cache
        with open(f, "rb") as fh:
            while fh.read(8 << 20):
                pass
    out = {}
    for name, cmd in (("openssl md5", ["openssl", "md5", *files]), ("md5sum", ["md5sum", *files])):
        best = None
        for _ in range(max(2, REPEAT)):
            try:
                p = subprocess.Popen(cmd, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
            except OSError:
                break
            _, status, ru = os.wait4(p.pid, 0)
            p.returncode = os.waitstatus_to_exitcode(status)
            if p.returncode != 0:
                break
            cpu = ru.ru_utime + ru.ru_stime
            best = cpu if best is None else min(best, cpu)
        if best is not None:
            out[name] = best / (total / GIB)
    return out, total


# ---- the table -----------------------------------------------------------------

def med(runs, key):
    vals = [r[key] for r in runs if not r["failed"] and r.get(key) is not None]
    return statistics.median(vals) if vals else None


LABELS = {
    "F1": f"F1 upload {SMALL:,} x 4 KiB, one directory",
    "F2": f"F2 upload {BIG} x {BIG_MIB} MiB",
    "F3": f"F3 restore F1's backup ({SMALL:,} files)",
    "F4": f"F4 restore F2's backup ({BIG} x {BIG_MIB} MiB)",
    "F5": f"F5 restore F2's backup, each connection at {CAP:g} MiB/s (through the lab)",
}


def cell(runs):
    if not runs:
        return "-"
    bad = [r for r in runs if r["failed"]]
    wall, cpu = med(runs, "wall"), med(runs, "cpu")
    if wall is None:
        return f"failed ({bad[0]['failed'][:60]})"
    s = f"{wall:.2f} ({cpu:.2f})"
    if bad:
        s += f" [{len(bad)} of {len(runs)} failed]"
    return s


def ratio(runs, ours):
    a, b = med(ours or [], "wall"), med(runs or [], "wall")
    return f"{b / a:.2f}" if a and b else "-"


def table(md5, md5_bytes):
    log("")
    log("Wall seconds, median of %d (CPU seconds, user+sys of the tool, in parentheses); "
        "ratio = peer / ours (above 1: ours is faster)." % REPEAT)
    log("")
    log("| workload | latency | ours | s5cmd | aws-cli | s5cmd/ours | aws/ours |")
    log("|---|---|---|---|---|---|---|")
    for (w, lat), res in sorted(results.items()):
        o = res.get("ours")
        log(f"| {LABELS[w]} | +{lat} ms | {cell(o)} | {cell(res.get('s5cmd'))} | {cell(res.get('aws-cli'))} "
            f"| {ratio(res.get('s5cmd'), o) if 's5cmd' in res else '-'} "
            f"| {ratio(res.get('aws-cli'), o) if 'aws-cli' in res else '-'} |")
    log("")
    log("Server CPU seconds per run (median): s3s-fs, and the lab's at +20 ms; "
        "both share the machine's cores with the tool.")
    log("")
    log("| workload | latency | ours | s5cmd | aws-cli |")
    log("|---|---|---|---|---|")
    for (w, lat), res in sorted(results.items()):
        cells = []
        for t in ("ours", "s5cmd", "aws-cli"):
            runs = res.get(t)
            sc, lc = (med(runs, "s3_cpu"), med(runs, "lab_cpu")) if runs else (None, None)
            if sc is None:
                cells.append("-")
            else:
                cells.append(f"s3s-fs {sc:.2f}" + (f", lab {lc:.2f}" if lc is not None else ""))
        log(f"| {w} | +{lat} ms | " + " | ".join(cells) + " |")
    log("")
    if md5:
        for name, v in md5.items():
            log(f"MD5 from the page cache, {name}: {v:.2f} CPU s/GiB (over {md5_bytes / GIB:.2f} GiB, "
                f"the F2 files, lowest of {max(2, REPEAT)})")
        low = min(md5.values())
        log(f"The machine's MD5 cost (the lower): {low:.2f} s/GiB")
    else:
        low = None
    for w in ("F2", "F4"):
        for lat in LATENCIES:
            res = results.get((w, lat))
            if not res or not res.get("ours"):
                continue
            cpu, rss = med(res["ours"], "cpu"), med(res["ours"], "rss_mib")
            if cpu is None:
                continue
            per = cpu / (BIG * BIG_MIB / 1024)
            s = f"ours {w} +{lat} ms: {per:.2f} CPU s/GiB"
            if low:
                s += f" = {per / low:.2f}x the MD5 cost"
            if rss:
                s += f"; peak RSS {rss:,.0f} MiB"
            peers = [f"{t} {med(res[t], 'rss_mib'):,.0f} MiB" for t in ("s5cmd", "aws-cli")
                     if res.get(t) and med(res[t], "rss_mib")]
            if peers:
                s += " (peers' peak RSS: " + ", ".join(peers) + ")"
            log(s)
    errs = {}
    for (w, lat), res in results.items():
        for t, runs in res.items():
            for r in runs:
                for code, n in r["errors"].items():
                    k = (t, code)
                    errs[k] = errs.get(k, 0) + n
    if errs:
        log("Error replies s3s-fs logged, all runs: "
            + "; ".join(f"{t}: {code} x{n}" for (t, code), n in sorted(errs.items())))
    for n in notes:
        log(n)


def main():
    ver = subprocess.run([SNAP, "--version"], capture_output=True, text=True).stdout.strip()
    log(f"bench-files fast rows: {os.cpu_count()} CPUs; s3s-fs {S3} (pid {S3_PID}); "
        + (f"lab {LAB} in front of it" if LAB else "no lab: +0 ms only"))
    log(f"  ours: {ver}, -t {THREADS or 'default (64)'}")
    if "s5cmd" in TOOLS:
        v = subprocess.run([S5CMD, "version"], capture_output=True, text=True).stdout.strip()
        log(f"  s5cmd: {v} (defaults: 256 workers, 5 parts of 50 MiB in flight per file)")
    if "aws-cli" in TOOLS:
        v = subprocess.run([AWS, "--version"], capture_output=True, text=True)
        log(f"  aws-cli: {(v.stdout or v.stderr).strip()} (defaults: 10 requests at once, 8 MiB parts)")
    missing = [t for t in ("s5cmd", "aws-cli") if t not in TOOLS]
    if missing:
        log(f"  not run: {', '.join(missing)} (not installed)")
    if set(WANT_LAT) - set(LATENCIES):
        log("  +N ms rows skipped: no lab")
    log(f"  rows {' '.join(sorted(FAST_ROWS))}; latencies {' '.join(f'+{x} ms' for x in LATENCIES)}; "
        f"SMALL={SMALL} BIG={BIG}x{BIG_MIB}MiB REPEAT={REPEAT}")
    t0 = time.monotonic()
    s3.create_bucket(Bucket=BUCKET)
    small = os.path.join(WORK, "fast-src", "small")
    big = os.path.join(WORK, "fast-src", "big")
    if FAST_ROWS & {"F1", "F3"}:
        make_small(small, SMALL)
    if FAST_ROWS & {"F2", "F4", "F5"}:
        make_big(big, BIG, BIG_MIB)
    kept_small = kept_big = None
    if "F1" in FAST_ROWS:
        log(f"== {LABELS['F1']}")
        kept_small = run_uploads("F1", small, False)
    if "F2" in FAST_ROWS:
        log(f"== {LABELS['F2']}")
        kept_big = run_uploads("F2", big, True)
    if "F3" in FAST_ROWS:
        log(f"== {LABELS['F3']}")
        if kept_small is None:
            kept_small = "seed-small/"
            seed(small, kept_small, "seed-small")
        run_restores("F3", small, kept_small, False)
    if "F4" in FAST_ROWS:
        log(f"== {LABELS['F4']}")
        if kept_big is None:
            kept_big = "seed-big/"
            seed(big, kept_big, "seed-big")
        run_restores("F4", big, kept_big, True)
    if "F5" in FAST_ROWS and CAP and LAB:
        log(f"== {LABELS['F5']}")
        if kept_big is None:
            kept_big = "seed-big/"
            seed(big, kept_big, "seed-big")
        run_restores("F5", big, kept_big, True, CAP)
    md5, md5_bytes = ({}, 0)
    if os.path.isdir(big):
        md5, md5_bytes = md5_cost(sorted(os.path.join(big, n) for n in os.listdir(big)))
    table(md5, md5_bytes)
    log(f"(fast rows took {(time.monotonic() - t0) / 60:.1f} min)")


if __name__ == "__main__":
    # s5cmd's 256 workers: room for their connections and files.
    soft, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
    if soft != resource.RLIM_INFINITY and soft < 8192:
        resource.setrlimit(resource.RLIMIT_NOFILE, (min(8192, hard) if hard != resource.RLIM_INFINITY else 8192, hard))
    main()
