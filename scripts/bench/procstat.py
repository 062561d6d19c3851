"""What /proc says of a process, for the benches (files.py, fast_s3.py)."""

import os

CLK_TCK = os.sysconf("SC_CLK_TCK")


def cpu_secs(pid):
    """utime + stime of a process, in seconds (None if it is gone)."""
    if pid is None:
        return None
    try:
        with open(f"/proc/{pid}/stat") as f:
            fields = f.read().rsplit(")", 1)[1].split()
        return (int(fields[11]) + int(fields[12])) / CLK_TCK
    except (OSError, ValueError, IndexError):
        return None
