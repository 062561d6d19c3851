#!/usr/bin/env bash
# Totals of the fault matrix from the lines its tests wrote
# ("fault-matrix CMD × FAULT: N cases, V violations, T"): cases of
# commands × actions × faults, kill points, violations.
set -euo pipefail
log="${1:?usage: fault-matrix-summary.sh LOG}"
[ -s "$log" ] || exit 0
awk '
/^fault-matrix / {
    kill = ($0 ~ / × kill -9:/)
    match($0, /: [0-9]+ cases/); n = substr($0, RSTART + 2, RLENGTH - 8) + 0
    match($0, /, [0-9]+ violations/); v = substr($0, RSTART + 2, RLENGTH - 13) + 0
    if (kill) { kills += n } else { faults += n }
    violations += v; tests += 1
    split($0, parts, ":"); sub(/^fault-matrix /, "", parts[1]); split(parts[1], cf, " × ")
    if (!kill) commands[cf[1]] = 1
}
END {
    nc = 0; for (c in commands) nc++
    printf "fault matrix: %d commands, %d fault cases (action x fault), %d kill points, %d violations (%d tests)\n", nc, faults, kills, violations, tests
}' "$log"
