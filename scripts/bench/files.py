#!/usr/bin/env python3
"""The measurements of scripts/bench-files.sh (which installs the peers,
builds, starts moto and the lab, and runs this with the emulator venv's
Python, for boto3). Settings come from the environment (see that script).

Every tool talks to S3 through the lab when there is one (so requests can
be counted and slowed); the bench's own setup and checks talk to moto
directly and are not counted.
"""

import json
import os
import re
import shutil
import signal
import socket
import struct
import subprocess
import sys
import threading
import time
import urllib.request
from concurrent.futures import ThreadPoolExecutor

import boto3
from botocore.config import Config

from procstat import cpu_secs  # noqa: E402 (beside this script)

ENV = os.environ
WORK = ENV["BENCH_WORK"]
MOTO = ENV["BENCH_MOTO_URL"]
MOTO_LOG = ENV.get("BENCH_MOTO_LOG", "")
LAB = ENV.get("BENCH_LAB_URL", "")
SNAP = ENV["BENCH_SNAPTASTIC"]
AWS = ENV["BENCH_AWS"]
PEERS = ENV.get("BENCH_PEERS", "").split()
PY27 = ENV.get("BENCH_PY27", "")
PY27_DIR = ENV.get("BENCH_PY27_DIR", "")

ROWS = [int(r) for r in ENV.get("ROWS", "1 2 3 4 5 6 7 8").split()]
LATENCIES = [int(x) for x in ENV.get("LATENCIES", "0 20").split()] if LAB else [0]
SCALE = float(ENV.get("SCALE", "1"))
SMALL = int(ENV.get("SMALL", "1000"))
TREE_DIRS = max(1, round(int(ENV.get("TREE_DIRS", "100")) * SCALE))
TREE_FILES = int(ENV.get("TREE_FILES", "100"))
CHOP_OBJECTS = max(10, round(int(ENV.get("CHOP_OBJECTS", "10000")) * SCALE))
CHOP_INDEXES = max(1, round(int(ENV.get("CHOP_INDEXES", "1000")) * SCALE))
BIG = int(ENV.get("BIG", "4"))
BIG_MIB = int(ENV.get("BIG_MIB", "256"))
BATCH = int(ENV.get("BATCH", "50"))
# Transfers at once: each tool's own default unless THREADS is set (ours
# 10, tablesnap 1.2.1 4, aws-cli 10): defaults are what users run.
THREADS = ENV.get("THREADS", "")
TFLAG = ["-t", THREADS] if THREADS else []
THREADS_N = int(THREADS) if THREADS else 10
TIMEOUT = float(ENV.get("TIMEOUT", "900"))
# Each cell also says the tool's CPU time and the emulator's CPU share.
SHOW_CPU = ENV.get("SHOW_CPU", "1") != "0"

HAS_PY = "1.2.1" in PEERS
HAS_CLI = "aws-cli" in PEERS
NAME = "bench"  # the host name in the keys (-n), the same for every tool
COMPONENTS = ["Data.db", "Index.db", "Filter.db", "Statistics.db", "Summary.db",
              "CompressionInfo.db", "Digest.crc32", "TOC.txt"]

# boto 2 signs S3 requests with SigV2 ("AWS key:signature"). moto picks the
# service from the Authorization header by splitting it at '/', and a
# signature with exactly four '/' in it sends the request nowhere (HTTP
# 500; 1.2.1 gives up on any error, ~1 request in 500). With five '/' in
# the access key that split never has five parts, and moto takes S3.
PY27_KEY = "bench/sigv2/key/for/moto/"
CREDS = {"AWS_ACCESS_KEY_ID": "testing", "AWS_SECRET_ACCESS_KEY": "testing",
         "AWS_REGION": "us-east-1", "AWS_DEFAULT_REGION": "us-east-1"}
s3 = boto3.client("s3", endpoint_url=MOTO, region_name="us-east-1",
                  aws_access_key_id="testing", aws_secret_access_key="testing",
                  config=Config(max_pool_connections=16, retries={"max_attempts": 3}))

running = []  # processes started here, stopped on the way out

# The bench's own requests to moto, per bucket and operation, taken off
# moto's log when a run's requests are counted from it (bare moto).
own_calls = {}
OWN_NAMES = {"ListObjectsV2": "ListObjects", "ListObjects": "ListObjects"}


def _count_own(params, model, **_):
    key = (params.get("Bucket"), OWN_NAMES.get(model.name, model.name))
    own_calls[key] = own_calls.get(key, 0) + 1


s3.meta.events.register("before-parameter-build.s3.*", _count_own)


def log(msg):
    print(msg, flush=True)


def fmt_n(n):
    return f"{n:,}"


# ---- the emulator and the lab -------------------------------------------

def http(method, url, data=None):
    req = urllib.request.Request(url, data=data, method=method)
    with urllib.request.urlopen(req, timeout=30) as r:
        return r.read()


def set_rules(text):
    """Replace the lab's rules (which also resets its call counts)."""
    if LAB:
        http("PUT", f"{LAB}/_lab/rules", text.encode())


def latency_rules(ms):
    if ms == 0:
        return ""
    return f'[[faults]]\naction = "*"\nreply = "latency"\nlatency = "{ms}ms"\n'


HANG = '[[faults]]\naction = "*"\nreply = "hang"\nlatency = "600s"\n'


def lab_calls():
    if not LAB:
        return None
    return json.loads(http("GET", f"{LAB}/_lab/state"))["calls"]


def reset_moto():
    """Forget every bucket (between rows: keeps moto's listings short)."""
    http("POST", f"{MOTO}/moto-api/reset", b"")


def moto_log_offset():
    try:
        return os.path.getsize(MOTO_LOG)
    except OSError:
        return 0


LOG_LINE = re.compile(r'"(GET|PUT|POST|HEAD|DELETE) (\S+) HTTP/1\.[01]" \d{3}')


def moto_log_calls(offset, bucket, own_before):
    """Requests moto logged since `offset` for `bucket`, by S3 operation
    (the lab's names), less the bench's own, for runs that bypass the lab."""
    time.sleep(0.3)
    calls = {}
    for (b, op), n in own_calls.items():
        if b == bucket:
            calls[op] = calls.get(op, 0) - (n - own_before.get((b, op), 0))
    try:
        with open(MOTO_LOG, "rb") as f:
            f.seek(offset)
            text = f.read().decode("utf-8", "replace")
    except OSError:
        return None
    for m in LOG_LINE.finditer(text):
        method, target = m.group(1), m.group(2)
        path, _, query = target.partition("?")
        parts = path.strip("/").split("/", 1)
        if parts[0] != bucket:
            continue
        has_key = len(parts) > 1 and parts[1] != ""
        q = query.split("&")
        qk = {p.split("=")[0] for p in q if p}
        if method == "PUT":
            op = "UploadPart" if "partNumber" in qk else ("PutObject" if has_key else "CreateBucket")
        elif method == "POST":
            op = "CreateMultipartUpload" if "uploads" in qk else (
                "CompleteMultipartUpload" if "uploadId" in qk else "DeleteObjects")
        elif method == "HEAD":
            op = "HeadObject" if has_key else "HeadBucket"
        elif method == "GET":
            op = "GetObject" if has_key else "ListObjects"
        else:
            op = "DeleteObject"
        calls[op] = calls.get(op, 0) + 1
    return {k: v for k, v in sorted(calls.items()) if v}


def diff_calls(before, after):
    if before is None or after is None:
        return None
    out = {k: after.get(k, 0) - before.get(k, 0) for k in after}
    return {k: v for k, v in sorted(out.items()) if v}


def make_bucket(name):
    s3.create_bucket(Bucket=name)


def list_keys(bucket, prefix=""):
    keys = []
    for page in s3.get_paginator("list_objects_v2").paginate(Bucket=bucket, Prefix=prefix):
        keys += [o["Key"] for o in page.get("Contents", [])]
    return keys


# ---- files ---------------------------------------------------------------

def sstable_names(n, first_gen=0):
    """n file names as SSTable components, 8 per generation."""
    return [f"ks-tbl-ka-{first_gen + i // len(COMPONENTS)}-{COMPONENTS[i % len(COMPONENTS)]}"
            for i in range(n)]


def make_files(d, n, size, first_gen=0):
    os.makedirs(d, exist_ok=True)
    for name in sstable_names(n, first_gen):
        with open(os.path.join(d, name), "wb") as f:
            left = size
            while left:
                chunk = min(left, 8 << 20)
                f.write(os.urandom(chunk))
                left -= chunk


def tree_files(root):
    out = {}
    for dirpath, _, files in os.walk(root):
        for name in files:
            p = os.path.join(dirpath, name)
            out[os.path.relpath(p, root)] = p
    return out


def same_tree(src, dst, ignore_index=False):
    """None when dst holds src's files with the same bytes, else why not."""
    a, b = tree_files(src), tree_files(dst)
    if ignore_index:
        b = {k: v for k, v in b.items() if not k.endswith("-listdir.json")}
    if set(a) != set(b):
        return f"{len(set(a) - set(b))} missing, {len(set(b) - set(a))} extra"
    for rel, p in a.items():
        with open(p, "rb") as x, open(b[rel], "rb") as y:
            if x.read() != y.read():
                return f"{rel} differs"
    return None


def data_count(d):
    return sum(1 for n in os.listdir(d) if os.path.isfile(os.path.join(d, n)))


# ---- processes -------------------------------------------------------------

class Run:
    """One process: wall time, exit, peak RSS, lines of its stderr."""

    def __init__(self, cmd, env, on_line=None, stdout=subprocess.DEVNULL):
        self.cmd = cmd
        self.lines = []
        self.done_at = None
        self.event = threading.Event()
        self.on_line = on_line
        if cmd[0] == PY27:
            env = dict(env, AWS_ACCESS_KEY_ID=PY27_KEY)
        self.t0 = time.monotonic()
        self.emu0 = cpu_secs(MOTO_PID)
        self.cpu = 0.0
        self.cpu_done = self.emu_done = None
        self.p = subprocess.Popen(cmd, env=env, stdout=stdout, stderr=subprocess.PIPE,
                                  stdin=subprocess.DEVNULL)
        running.append(self.p)
        self.reader = threading.Thread(target=self._read, daemon=True)
        self.reader.start()
        self.rc = None
        self.maxrss_kib = None
        self.exited_at = None
        # Peak RSS: VmHWM, polled (the rusage of a child counts the forked
        # copy of this Python before exec, ~50 MiB, for every command).
        self.hwm_kib = 0
        threading.Thread(target=self._watch_mem, daemon=True).start()

    def _read_hwm(self):
        self.cpu = cpu_secs(self.p.pid) or self.cpu
        try:
            with open(f"/proc/{self.p.pid}/status") as f:
                for line in f:
                    if line.startswith("VmHWM:"):
                        self.hwm_kib = max(self.hwm_kib, int(line.split()[1]))
        except (OSError, ValueError):
            pass

    def _watch_mem(self):
        while self.p.returncode is None and self.exited_at is None:
            self._read_hwm()
            time.sleep(0.02)

    def _read(self):
        for raw in self.p.stderr:
            line = raw.decode("utf-8", "replace").rstrip("\n")
            now = time.monotonic()
            self.lines.append((now, line))
            if self.on_line and self.done_at is None and self.on_line(line):
                self.done_at = now
                self.event.set()

    def wait_done(self, timeout=TIMEOUT, tick=None):
        """Until on_line (or tick()) says done, or the process exits."""
        deadline = time.monotonic() + timeout
        while not self.event.wait(0.05):
            if tick and tick():
                self.done_at = time.monotonic()
                break
            if self.p.poll() is not None:
                self.reader.join(2)
                break
            if time.monotonic() > deadline:
                break
        if self.done_at is not None:
            self._mark_done()
        return None if self.done_at is None else self.done_at - self.t0

    def _mark_done(self):
        """The tool's CPU and the emulator's busy share up to this point."""
        self._read_hwm()
        wall = time.monotonic() - self.t0
        self.cpu_done = self.cpu
        if self.emu0 is not None and wall > 0:
            self.emu_done = (cpu_secs(MOTO_PID) - self.emu0) / wall

    def finish(self, sig=None, timeout=TIMEOUT):
        """Signal (if asked) and reap; returns seconds from signal to exit."""
        self._read_hwm()
        sent = time.monotonic()
        if sig is not None and self.p.poll() is None:
            self.p.send_signal(sig)
        deadline = time.monotonic() + timeout
        while True:
            self._read_hwm()
            if self.p.poll() is not None:
                break
            if time.monotonic() > deadline:
                self.p.kill()
                self.p.wait()
                break
            time.sleep(0.005)
        self.exited_at = time.monotonic()
        if self.cpu_done is None:
            self._mark_done()
        self.rc = self.p.returncode
        self.maxrss_kib = self.hwm_kib or None
        self.reader.join(5)
        if self.p.args:
            self.save(f"{os.path.basename(self.cmd[1] if self.cmd[0] == PY27 else self.cmd[0])}-{id(self)}")
        if self.p in running:
            running.remove(self.p)
        return self.exited_at - sent

    def save(self, tag):
        """Keep the run's stderr in WORK/logs (kept with KEEP=1)."""
        os.makedirs(os.path.join(WORK, "logs"), exist_ok=True)
        with open(os.path.join(WORK, "logs", f"{tag}.log"), "w") as f:
            f.write(" ".join(self.cmd) + "\n")
            for t, l in self.lines:
                f.write(f"{t - self.t0:9.3f} {l}\n")

    def tail(self, n=5):
        return "\n".join("    " + l for _, l in self.lines[-n:])


# The emulator's process (its CPU share says when it, not the tool, sets
# the pace); scripts/emulator.sh wrote it beside the URL.
MOTO_PID = int(ENV["BENCH_MOTO_PID"]) if ENV.get("BENCH_MOTO_PID", "").isdigit() else None


def stop_all():
    for p in list(running):
        if p.poll() is None:
            p.kill()
            p.wait()


def env_for(endpoint, tag):
    """Environment for one run: credentials, endpoint, fresh state dirs."""
    e = dict(ENV)
    e.update(CREDS)
    e["AWS_ENDPOINT_URL"] = endpoint
    d = os.path.join(WORK, "state", tag)
    shutil.rmtree(d, ignore_errors=True)
    os.makedirs(os.path.join(d, "state"))
    os.makedirs(os.path.join(d, "run"))
    e["SNAPTASTIC_STATE_DIR"] = os.path.join(d, "state")
    e["SNAPTASTIC_RUNTIME_DIR"] = os.path.join(d, "run")
    e["HOME"] = d  # no ~/.boto, ~/.aws of the machine
    e["USER"] = "root" if os.geteuid() == 0 else e.get("USER", "nobody")
    # boto 2 (1.2.1): the endpoint from a config file.
    host, port = endpoint.split("://")[1].split(":")
    cfg = os.path.join(d, "boto.cfg")
    with open(cfg, "w") as f:
        f.write(f"[Credentials]\ns3_host = {host}\ns3_port = {port}\n"
                "[Boto]\nis_secure = False\n"
                "[s3]\ncalling_format = boto.s3.connection.OrdinaryCallingFormat\n")
    e["BOTO_CONFIG"] = cfg
    e["PYTHONPATH"] = PY27_DIR
    e.pop("PYTHONHOME", None)
    # aws-cli: no aws-chunked upload bodies (moto decodes them slowly, which
    # real S3 does not; ours sends Content-MD5 instead, see moto-notes).
    e["AWS_REQUEST_CHECKSUM_CALCULATION"] = "when_required"
    e["AWS_CONFIG_FILE"] = os.path.join(d, "aws-config")
    return e


def ours(*args):
    return [SNAP, "--loglevel=INFO", *args]


def py(tool, *args):
    return [PY27, os.path.join(PY27_DIR, "bin", tool), *args]


def aws(endpoint, *args):
    return [AWS, "--endpoint-url", endpoint, *args]


# ---- results ---------------------------------------------------------------

class Result:
    def __init__(self, secs=None, calls=None, rss_kib=None, note="", failed=None, run=None):
        self.secs, self.calls, self.rss_kib, self.note, self.failed = secs, calls, rss_kib, note, failed
        self.extra = ""  # shown in the table cell
        # The tool's own CPU seconds, and the emulator's CPU share of the
        # wall time (near 100 %: the emulator, one Python core, set the pace).
        self.cpu = run.cpu_done if run else None
        self.emu = run.emu_done if run else None

    def cell(self, unit="s"):
        if self.failed:
            return f"failed ({self.failed})"
        if self.secs is None:
            return "n/a"
        if unit == "ms":
            v = f"{self.secs * 1000:,.0f} ms"
        else:
            v = f"{self.secs:,.2f} s"
        if self.calls is not None:
            v += f", {fmt_n(sum(self.calls.values()))} req"
        if self.cpu is not None and SHOW_CPU:
            v += f", CPU {self.cpu:.1f} s"
            if self.emu is not None:
                v += f", moto {self.emu * 100:.0f}%"
        if self.extra:
            v += f" ({self.extra})"
        return v


rows = []  # (order, label, condition, {tool: Result}, unit, note)


def cond_of(lat):
    """How S3 answered in a run, for the table."""
    if lat is None:
        return "unreachable"
    if isinstance(lat, str):
        return lat
    return f"+{lat} ms" if LAB else "0 ms (no lab)"


def record(order, label, lat, results, unit="s", note=""):
    rows.append((order, label, cond_of(lat), results, unit, note))
    for tool, r in results.items():
        extra = ""
        if r.calls:
            extra = "  [" + ", ".join(f"{k} {v}" for k, v in r.calls.items()) + "]"
        if r.rss_kib:
            extra += f"  peak RSS {r.rss_kib / 1024:,.0f} MiB"
        if r.note:
            extra += f"  ({r.note})"
        log(f"    {tool:<8} {r.cell(unit)}{extra}")


def ratio(a, b):
    if not a or not b or a.secs is None or b.secs is None or a.failed or b.failed or a.secs <= 0:
        return "n/a"
    return f"{b.secs / a.secs:.2f}x"


# ---- the tools' runs -----------------------------------------------------

INDEXED = re.compile(r"indexed (\d+) files of (.+) in (\S+)\s*$")


def ours_backup(bucket, root, dirs, endpoint, tag, recursive=False, extra=()):
    """tablesnap -B until every directory's index lists all its files."""
    want = {d: data_count(d) for d in dirs}
    seen = {}

    def on_line(line):
        m = INDEXED.search(line)
        if m and m.group(2) in want:
            seen[m.group(2)] = max(seen.get(m.group(2), 0), int(m.group(1)))
        return all(seen.get(d, 0) >= n for d, n in want.items())

    args = ["tablesnap", bucket, root, "-B", "-n", NAME, *TFLAG, *extra]
    if recursive:
        args.append("-r")
    return daemon_backup(ours(*args), endpoint, tag, bucket, on_line)


FINISHED = re.compile(r"Finished uploading (.+)$")


def py_backup(bucket, root, n_files, endpoint, tag, recursive=False):
    """tablesnap 1.2.1 -B until every file is uploaded (it writes each
    Data.db file's index before the file)."""
    up = []

    def on_line(line):
        m = FINISHED.search(line)
        if m and m.group(1) not in up:
            up.append(m.group(1))
        return len(up) >= n_files

    # "Finished uploading" is logged once the body is sent, before S3's
    # reply: done is when the last files logged (those whose requests may
    # still be in flight) are in S3 (HEAD on moto, not counted).
    def confirm():
        for path in up[-2 * THREADS_N:]:
            keys = [f"{NAME}:{path}"] + ([f"{NAME}:{path}-listdir.json"] if "Data.db" in path else [])
            for k in keys:
                try:
                    s3.head_object(Bucket=bucket, Key=k)
                except s3.exceptions.ClientError:
                    return False
        return True

    args = ["-B", "-n", NAME, *TFLAG]
    if recursive:
        args.append("-r")
    return daemon_backup(py("tablesnap", *args, bucket, root), endpoint, tag, bucket, on_line, confirm)


def py_backup_twice(bucket, root, dirs, n_files, endpoint, recursive):
    """1.2.1 aborts on the first error S3 (moto) returns; a failed run is
    run once more into a fresh bucket, and the table says so."""
    first = None
    for attempt in (1, 2):
        b = bucket if attempt == 1 else f"{bucket}-2"
        make_bucket(b)
        r, _ = py_backup(b, root, n_files, endpoint, b, recursive)
        if not r.failed:
            r.failed = check_backup(b, dirs, "1.2.1")
        if not r.failed:
            if first:
                r.extra = "2nd run"
                r.note = f"1st run failed: {first}"
            return r
        first = f"{r.failed}: " + (r.note.strip().splitlines() or [""])[-1].strip()
        log(f"    1.2.1    run {attempt} failed ({first})")
    return r


def daemon_backup(cmd, endpoint, tag, bucket, on_line, confirm=None):
    e = env_for(endpoint, tag)
    via_lab = LAB and endpoint == LAB
    before = lab_calls() if via_lab else None
    off, own = moto_log_offset(), dict(own_calls)
    r = Run(cmd, e, on_line=on_line)
    secs = r.wait_done()
    if secs is not None and confirm is not None:
        deadline = time.monotonic() + 120
        while not confirm():
            if time.monotonic() > deadline or r.p.poll() is not None:
                secs = None
                break
            time.sleep(0.05)
        else:
            secs = time.monotonic() - r.t0
    r.finish(signal.SIGTERM, timeout=60)
    calls = diff_calls(before, lab_calls()) if via_lab else moto_log_calls(off, bucket, own)
    if secs is None:
        return Result(failed="did not finish", note=r.tail()), r
    return Result(secs, calls, r.maxrss_kib, run=r), r


def cli_upload(bucket, root, endpoint, tag):
    e = env_for(endpoint, tag)
    via_lab = LAB and endpoint == LAB
    before = lab_calls() if via_lab else None
    off, own = moto_log_offset(), dict(own_calls)
    r = Run(aws(endpoint, "s3", "cp", "--recursive", "--only-show-errors", root,
                f"s3://{bucket}/{NAME}:{root}/"), e)
    r.finish()
    calls = diff_calls(before, lab_calls()) if via_lab else moto_log_calls(off, bucket, own)
    if r.rc != 0:
        return Result(failed=f"exit {r.rc}", note=r.tail())
    return Result(r.exited_at - r.t0, calls, r.maxrss_kib, run=r)


def timed(cmd, endpoint, tag, stdout=subprocess.DEVNULL):
    e = env_for(endpoint, tag)
    before = lab_calls() if LAB and endpoint == LAB else None
    r = Run(cmd, e, stdout=stdout)
    r.finish()
    calls = diff_calls(before, lab_calls())
    if r.rc != 0:
        return Result(failed=f"exit {r.rc}", note=r.tail(3)), r
    return Result(r.exited_at - r.t0, calls, r.maxrss_kib, run=r), r


def check_backup(bucket, dirs, tool):
    """After a backup run (not timed): every file is in S3, and an index."""
    keys = set(list_keys(bucket))
    missing, noindex = 0, 0
    for d in dirs:
        names = [n for n in os.listdir(d)]
        prefix = f"{NAME}:{d}/"
        missing += sum(1 for n in names if prefix + n not in keys)
        if tool != "aws-cli" and not any(k.startswith(prefix) and k.endswith("-listdir.json") for k in keys):
            noindex += 1
    if missing or noindex:
        return f"{missing} files missing, {noindex} directories without index"
    return None


# ---- the rows -------------------------------------------------------------

def endpoint_for(lat):
    return LAB if LAB else MOTO


def backup_row(order, label, root, dirs, n_files, recursive):
    made = {}
    for lat in LATENCIES:
        set_rules(latency_rules(lat))
        ep = endpoint_for(lat)
        log(f"  +{lat} ms")
        res = {}
        b = f"r{order}-{lat}ms-ours"
        make_bucket(b)
        res["ours"], _ = ours_backup(b, root, dirs, ep, b, recursive)
        made[lat] = b
        if not res["ours"].failed:
            res["ours"].failed = check_backup(b, dirs, "ours")
        if HAS_PY:
            res["1.2.1"] = py_backup_twice(f"r{order}-{lat}ms-py", root, dirs, n_files, ep, recursive)
        if HAS_CLI:
            b = f"r{order}-{lat}ms-cli"
            make_bucket(b)
            res["aws-cli"] = cli_upload(b, root, ep, b)
            if not res["aws-cli"].failed:
                res["aws-cli"].failed = check_backup(b, dirs, "aws-cli")
        record(order, label, lat, res)
    set_rules("")
    return made


def restore_row(order, label, bucket, root, recursive):
    for lat in LATENCIES:
        set_rules(latency_rules(lat))
        ep = endpoint_for(lat)
        log(f"  +{lat} ms")
        res = {}
        tgt = os.path.join(WORK, "restore")
        shutil.rmtree(tgt, ignore_errors=True)
        args = ["tableslurp", bucket, root, tgt, "-n", NAME, *TFLAG]
        if recursive:
            args.append("-r")
        res["ours"], _ = timed([SNAP, "--loglevel=WARNING", *args], ep, f"slurp-{lat}")
        if not res["ours"].failed:
            res["ours"].failed = same_tree(root, tgt)
        shutil.rmtree(tgt, ignore_errors=True)
        if HAS_PY and not recursive:
            res["1.2.1"], _ = timed(py("tableslurp", "-n", NAME, *TFLAG, bucket, root, tgt),
                                    ep, f"pyslurp-{lat}")
            if not res["1.2.1"].failed:
                res["1.2.1"].failed = same_tree(root, tgt)
            shutil.rmtree(tgt, ignore_errors=True)
        if HAS_CLI:
            res["aws-cli"], _ = timed(aws(ep, "s3", "cp", "--recursive", "--only-show-errors",
                                          f"s3://{bucket}/{NAME}:{root}/", tgt + "/"), ep, f"clislurp-{lat}")
            if not res["aws-cli"].failed:
                res["aws-cli"].failed = same_tree(root, tgt, ignore_index=True)
            shutil.rmtree(tgt, ignore_errors=True)
        record(order, label, lat, res,
               note="1.2.1 has no -r" if recursive and HAS_PY else "")
    set_rules("")


def seed(bucket, root, dirs, recursive):
    """A backup made by ours at 0 ms (not measured), for a restore row run
    without its backup row."""
    set_rules("")
    make_bucket(bucket)
    r, _ = ours_backup(bucket, root, dirs, endpoint_for(0), f"seed-{bucket}", recursive)
    if r.failed:
        raise SystemExit(f"bench: seeding {bucket} failed: {r.failed}\n{r.note}")


def row_small(do_backup, do_restore):
    root = os.path.join(WORK, "src", "small")
    if not os.path.isdir(root):
        make_files(root, SMALL, 4096)
    label1 = f"backup {fmt_n(SMALL)} x 4 KiB, one directory (tablesnap -B / aws s3 cp -r)"
    label4 = f"restore {fmt_n(SMALL)} x 4 KiB (tableslurp / aws s3 cp -r)"
    bucket = None
    if do_backup:
        log(f"== 1. {label1}")
        made = backup_row(1, label1, root, [root], SMALL, False)
        bucket = made.get(0) or next(iter(made.values()))
    if do_restore:
        log(f"== 4. {label4}")
        if bucket is None:
            bucket = "r4-seed"
            seed(bucket, root, [root], False)
        restore_row(4, label4, bucket, root, False)
    reset_moto()


def row_tree(do_backup, do_restore):
    root = os.path.join(WORK, "src", "tree")
    dirs = [os.path.join(root, f"d{i:03d}") for i in range(TREE_DIRS)]
    if not os.path.isdir(root):
        for i, d in enumerate(dirs):
            make_files(d, TREE_FILES, 4096)
    n = TREE_DIRS * TREE_FILES
    label2 = f"backup {fmt_n(n)} x 4 KiB in {TREE_DIRS} directories (-B -r / aws s3 cp -r)"
    label5 = f"restore {TREE_DIRS} directories x {TREE_FILES} files (tableslurp -r / aws s3 cp -r)"
    bucket = None
    if do_backup:
        log(f"== 2. {label2}")
        made = backup_row(2, label2, root, dirs, n, True)
        bucket = made.get(0) or next(iter(made.values()))
    if do_restore:
        log(f"== 5. {label5}")
        if bucket is None:
            bucket = "r5-seed"
            seed(bucket, root, dirs, True)
        restore_row(5, label5, bucket, root, True)
    reset_moto()


def row_big():
    root = os.path.join(WORK, "src", "big")
    label = f"upload {BIG} x {BIG_MIB} MiB (tablesnap -B / aws s3 cp -r; bare moto)"
    log(f"== 3. {label}")
    if not os.path.isdir(root):
        os.makedirs(root)
        for i in range(BIG):
            with open(os.path.join(root, f"ks-tbl-ka-{i}-Data.db"), "wb") as f:
                for _ in range(BIG_MIB // 8 or 1):
                    f.write(os.urandom(min(BIG_MIB, 8) << 20))
    mib = BIG * BIG_MIB
    res = {}
    b = "r3-ours"
    make_bucket(b)
    res["ours"], _ = ours_backup(b, root, [root], MOTO, b)
    if HAS_PY:
        res["1.2.1"] = py_backup_twice("r3-py", root, [root], BIG, MOTO, False)
    if HAS_CLI:
        b = "r3-cli"
        make_bucket(b)
        res["aws-cli"] = cli_upload(b, root, MOTO, b)
    for tool, r in res.items():
        if r.secs and not r.failed:
            r.extra = f"{mib / r.secs:,.0f} MiB/s"
    record(3, label, "0 ms (bare moto)", res)
    rss = {t: Result(secs=(r.rss_kib / 1024 if r.rss_kib else None), failed=r.failed)
           for t, r in res.items()}
    rows.append((3.5, f"peak RSS during row 3's upload", "0 ms (bare moto)", rss, "MiB", ""))
    shutil.rmtree(root, ignore_errors=True)
    reset_moto()


def row_chop():
    dirs = max(1, CHOP_INDEXES // 10)
    per_dir = max(1, CHOP_OBJECTS // dirs)
    idx_per_dir = max(1, CHOP_INDEXES // dirs)
    n_obj, n_idx = dirs * per_dir, dirs * idx_per_dir
    label = f"tablechop dry run, {fmt_n(n_obj)} objects / {fmt_n(n_idx)} indexes in {dirs} directories"
    log(f"== 6. {label}")
    bucket = "r6-chop"
    make_bucket(bucket)
    root = "/bench-chop"
    jobs = []
    for d in range(dirs):
        dpath = f"{root}/d{d:03d}"
        names = sstable_names(per_dir)
        for n in names:
            jobs.append((f"{NAME}:{dpath}/{n}", b"x", {}))
        # indexes: each lists a growing share of the directory, anchored
        # at a Data.db file of that share (as tablesnap writes them)
        anchors = [n for n in names if "Data.db" in n] or names
        for j in range(idx_per_dir):
            share = names[: max(1, (j + 1) * len(names) // idx_per_dir)]
            a = anchors[min(len(anchors) - 1, (j + 1) * len(anchors) // idx_per_dir - 1)]
            body = json.dumps({dpath: share}).encode()
            jobs.append((f"{NAME}:{dpath}/{a}-listdir.json", body, {"ContentType": "application/json"}))
    log(f"  loading {fmt_n(len(jobs))} objects into moto (not timed)")

    def put(job):
        s3.put_object(Bucket=bucket, Key=job[0], Body=job[1], **job[2])

    with ThreadPoolExecutor(8) as ex:
        list(ex.map(put, jobs))
    keys = list_keys(bucket)
    n_idx = sum(1 for k in keys if k.endswith("-listdir.json"))
    log(f"  in S3: {fmt_n(len(keys) - n_idx)} data objects, {fmt_n(n_idx)} indexes")
    for lat in LATENCIES:
        set_rules(latency_rules(lat))
        ep = endpoint_for(lat)
        log(f"  +{lat} ms")
        res = {}
        res["ours"], _ = timed([SNAP, "--loglevel=WARNING", "tablechop", bucket, root, "1",
                                "-n", NAME, "--dry-run"], ep, f"chop-{lat}")
        if HAS_PY:
            # -d: 1.2.1's dry run ("debug mode, will not delete keys")
            res["1.2.1"], _ = timed(py("tablechop", "-d", "-n", NAME, bucket, root, "1"), ep, f"pychop-{lat}")
        record(6, label, lat, res)
    set_rules("")
    left = len(list_keys(bucket))
    if left != len(keys):
        log(f"  WARNING: {len(keys) - left} objects were deleted by a dry run")
    reset_moto()


class Relay:
    """A TCP relay to S3 that can be shut: afterwards its port refuses
    connections and the open ones are reset (S3 gone unreachable)."""

    def __init__(self, upstream):
        host, port = upstream.split("://")[1].split(":")
        self.upstream = (host, int(port))
        self.lsock = socket.socket()
        self.lsock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        self.lsock.bind(("127.0.0.1", 0))
        self.lsock.listen(128)
        self.url = f"http://127.0.0.1:{self.lsock.getsockname()[1]}"
        self.socks = []
        self.closed = False
        threading.Thread(target=self._accept, daemon=True).start()

    def _accept(self):
        while not self.closed:
            try:
                c, _ = self.lsock.accept()
            except OSError:
                return
            try:
                u = socket.create_connection(self.upstream)
            except OSError:
                c.close()
                continue
            self.socks += [c, u]
            for a, b in ((c, u), (u, c)):
                threading.Thread(target=self._pipe, args=(a, b), daemon=True).start()

    @staticmethod
    def _pipe(a, b):
        try:
            while True:
                data = a.recv(65536)
                if not data:
                    break
                b.sendall(data)
        except OSError:
            pass
        finally:
            try:
                b.shutdown(socket.SHUT_WR)
            except OSError:
                pass

    def shut(self):
        self.closed = True
        self.lsock.close()
        for s_ in self.socks:
            try:
                s_.setsockopt(socket.SOL_SOCKET, socket.SO_LINGER, struct.pack("ii", 1, 0))
                s_.close()
            except OSError:
                pass


def row_sigterm():
    root = os.path.join(WORK, "src", "small")
    if not os.path.isdir(root):
        make_files(root, SMALL, 4096)
    lat = 20 if LAB else 0
    label_h = f"SIGTERM -> exit, S3 hanging mid-backup ({fmt_n(SMALL)} files, -B)"
    label_r = f"SIGTERM -> exit, S3 refusing connections mid-backup ({fmt_n(SMALL)} files, -B)"
    log("== 7. time from SIGTERM to exit of tablesnap while S3 is unreachable, uploads owed")

    def once(tool, mode):
        """A -B backup (at +20 ms with the lab) through a relay; after 20
        uploads S3 hangs (lab rule) or goes away (relay shut: refused);
        one second later SIGTERM."""
        bucket = f"r7-{mode}-{'ours' if tool == 'ours' else 'py'}"
        make_bucket(bucket)
        set_rules(latency_rules(lat))
        relay = Relay(LAB or MOTO)
        if tool == "ours":
            cmd = ours("tablesnap", bucket, root, "-B", "-n", NAME, *TFLAG)
            up = re.compile(r"uploaded \S+ \(")
        else:
            cmd = py("tablesnap", "-B", "-n", NAME, *TFLAG, bucket, root)
            up = FINISHED
        n = [0]

        def on_line(line):
            if up.search(line):
                n[0] += 1
            return n[0] >= 20

        r = Run(cmd, env_for(relay.url, bucket), on_line=on_line)
        r.wait_done(timeout=60)
        if mode == "hang":
            set_rules(HANG)
        else:
            relay.shut()
        time.sleep(1.0)
        alive = r.p.poll() is None
        secs = r.finish(signal.SIGTERM, timeout=120)
        relay.shut()
        set_rules("")
        landed = sum(1 for k in list_keys(bucket) if not k.endswith("-listdir.json"))
        if not alive:
            return Result(failed=f"exited before SIGTERM, rc {r.rc}", note=r.tail(2))
        how = "killed by SIGTERM" if r.rc == -signal.SIGTERM else f"exit {r.rc}"
        note = f"{how}; {landed} of {SMALL} files in S3"
        stopped = [l for _, l in r.lines if "stopped:" in l]
        if stopped:
            note += "; " + stopped[-1].split("stopped:", 1)[1].strip()
        res = Result(secs, note=note)
        res.extra = how
        return res

    for mode, label in (("hang", label_h), ("refused", label_r)):
        if mode == "hang" and not LAB:
            continue
        res = {"ours": once("ours", mode)}
        if HAS_PY:
            res["1.2.1"] = once("1.2.1", mode)
        o = res["ours"]
        said = o.note.split("; ", 2)[-1] if o.note and not o.failed else ""
        record(7 if mode == "hang" else 7.5, label,
               ("hanging (lab rule)" if mode == "hang" else "refused (relay shut)"), res,
               note=f"{'hanging' if mode == 'hang' else 'refused'}: ours said \"stopped: {said}\""
               if said else "")
    reset_moto()


def row_batch():
    label = f"last data file of a {BATCH}-file batch in S3 -> its index in S3 (daemon watching)"
    log(f"== 8. {label}")
    for lat in LATENCIES:
        set_rules(latency_rules(lat))
        ep = endpoint_for(lat)
        log(f"  +{lat} ms")
        res = {}
        tools = [("ours", None)] + ([("1.2.1", None)] if HAS_PY else [])
        for tool, _ in tools:
            b = f"r8-{lat}ms-{'ours' if tool == 'ours' else 'py'}"
            make_bucket(b)
            d = os.path.join(WORK, "src", f"batch-{b}")
            os.makedirs(d)
            ready = re.compile(r"watching " + re.escape(d)) if tool == "ours" else re.compile(r"Starting up")
            if tool == "ours":
                cmd = ours("tablesnap", b, d, "-n", NAME, *TFLAG)
            else:
                cmd = py("tablesnap", "-n", NAME, *TFLAG, b, d)
            r = Run(cmd, env_for(ep, b), on_line=lambda l, ready=ready: bool(ready.search(l)))
            r.wait_done(timeout=60)
            time.sleep(1.0)  # 1.2.1 says nothing once its watches are set
            names = sstable_names(BATCH)
            prefix = f"{NAME}:{d}/"
            stop = threading.Event()
            found = {}

            def poll():
                idx_seen = {}
                while not stop.is_set():
                    objs = []
                    for page in s3.get_paginator("list_objects_v2").paginate(Bucket=b, Prefix=prefix):
                        objs += page.get("Contents", [])
                    now = time.monotonic()
                    keys = {o["Key"]: o["ETag"] for o in objs}
                    if "data" not in found and all(prefix + n in keys for n in names):
                        found["data"] = now
                    for k, etag in keys.items():
                        if k.endswith("-listdir.json") and idx_seen.get(k) != etag:
                            idx_seen[k] = etag
                            body = json.loads(s3.get_object(Bucket=b, Key=k)["Body"].read())
                            if "index" not in found and set(names) <= set(body.get(d, [])):
                                found["index"] = now
                    if "data" in found and "index" in found:
                        return
                    time.sleep(0.01)

            poller = threading.Thread(target=poll, daemon=True)
            poller.start()
            written = time.monotonic()
            for name in names:
                tmp = os.path.join(d, name)
                with open(tmp, "wb") as f:
                    f.write(os.urandom(4096))
            written_end = time.monotonic()
            poller.join(TIMEOUT)
            stop.set()
            r.finish(signal.SIGTERM, timeout=60)
            if "data" in found and "index" in found:
                lag = found["index"] - found["data"]
                res[tool] = Result(lag, note=f"files written in {(written_end - written) * 1000:.0f} ms; "
                                             f"last written -> index {(found['index'] - written_end) * 1000:,.0f} ms")
            else:
                res[tool] = Result(failed="index listing the batch not seen", note=r.tail(3))
        record(8, label, lat, res, unit="ms",
               note="1.2.1 writes each Data.db file's index before the file: negative")
    set_rules("")
    reset_moto()


# ---- the table ---------------------------------------------------------------

def table():
    log("")
    log("| # | measurement | S3 latency | ours | tablesnap 1.2.1 | aws-cli | 1.2.1 / ours | aws-cli / ours |")
    log("|---|---|---|---|---|---|---|---|")
    for order, label, cond, res, unit, note in sorted(rows, key=lambda r: r[0]):
        num = {3.5: "3", 7.5: "7"}.get(order, str(int(order)))
        o, p, c = res.get("ours"), res.get("1.2.1"), res.get("aws-cli")

        def cell(r):
            if r is None:
                return "-"
            if unit == "MiB":
                return "n/a" if r.secs is None else f"{r.secs:,.0f} MiB"
            return r.cell(unit)

        rp = ratio(o, p) if p else "-"
        rc = ratio(o, c) if c else "-"
        if order in (7, 7.5, 8):
            rp, rc = ("-", "-")
        log(f"| {num} | {label} | {cond} | {cell(o)} | {cell(p)} | {cell(c)} | {rp} | {rc} |")
    log("")
    said = set()
    for order, label, cond, res, unit, note in sorted(rows, key=lambda r: r[0]):
        if note and note not in said:
            said.add(note)
            log(f"Row {int(order)}: {note}.")
        for tool, r in res.items():
            if r.extra == "2nd run":
                log(f"Row {int(order)} ({cond}): {tool}'s first run failed, {r.note}.")
    log("Ratios are the peer's wall time over ours (above 1: ours is faster; for RSS: the peer's over ours).")
    if SHOW_CPU:
        log("CPU: the tool's own CPU time until done; moto N%: the emulator's CPU time over the run's wall time "
            "(moto runs Python code one thread at a time, and stock moto_server closes every connection: near 100 % it, "
            "not the tool, sets the pace).")


def main():
    log(f"bench-files: {os.cpu_count()} CPUs; moto {MOTO}; "
        + (f"lab {LAB}" if LAB else "no lab (not root?): 0 ms only, no request counts"))
    if LAB:
        log("  latency: snaptastic-lab (lab/) proxies moto; for the +N ms runs its rule "
            "[[faults]] action = \"*\", reply = \"latency\", latency = \"Nms\" holds every S3 "
            "request N ms before forwarding it. 'req' = requests the lab counted for that run.")
    ver = subprocess.run([SNAP, "--version"], capture_output=True, text=True).stdout.strip()
    log(f"  ours: {ver}, -t {THREADS or 'default (10)'}")
    log("  moto: " + ("its app served by waitress (keeps connections alive; MOTO_SERVER=keepalive)"
                      if ENV.get("MOTO_SERVER") == "keepalive"
                      else "stock moto_server (werkzeug; Connection: close on every reply)"))
    log(f"  peers run: {', '.join(PEERS) or 'none'}"
        + ("" if HAS_PY else "  (tablesnap 1.2.1 not available)")
        + ("" if HAS_CLI else "  (aws-cli not available)"))
    if HAS_PY:
        log(f"  tablesnap 1.2.1: {PY27} (boto 2), -t {THREADS or 'default (4)'}")
    if HAS_CLI:
        v = subprocess.run([AWS, "--version"], capture_output=True, text=True)
        log(f"  aws-cli: {(v.stdout or v.stderr).strip()} (default 10 requests at once, "
            "AWS_REQUEST_CHECKSUM_CALCULATION=when_required)")
    log(f"  rows {' '.join(map(str, ROWS))}; latencies {' '.join(f'+{x} ms' for x in LATENCIES)}; "
        f"SMALL={SMALL} TREE={TREE_DIRS}x{TREE_FILES} CHOP={CHOP_OBJECTS}/{CHOP_INDEXES} "
        f"BIG={BIG}x{BIG_MIB}MiB BATCH={BATCH}")
    t0 = time.monotonic()
    try:
        if 1 in ROWS or 4 in ROWS:
            row_small(1 in ROWS, 4 in ROWS)
        if 2 in ROWS or 5 in ROWS:
            row_tree(2 in ROWS, 5 in ROWS)
        if 3 in ROWS:
            row_big()
        if 6 in ROWS:
            row_chop()
        if 7 in ROWS:
            row_sigterm()
        if 8 in ROWS:
            row_batch()
    finally:
        stop_all()
    table()
    log(f"(bench took {(time.monotonic() - t0) / 60:.1f} min)")


if __name__ == "__main__":
    main()
