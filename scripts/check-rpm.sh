#!/usr/bin/env bash
# Build the .rpm (scripts/package.sh rpm) and check it: its contents and
# config files (rpm -qlp, --configfiles), the symlinks, its requirements
# (glibc >= 2.34 found by rpmbuild; shadow-utils for the user), rpmlint
# with no error, then an install into a scratch root (no scripts: the root
# has no shell) whose binary runs. Exits non-zero at the first thing wrong.
set -euo pipefail
cd "$(dirname "$0")/.."
export SNAPTASTIC_CACHE="${SNAPTASTIC_CACHE:-/var/tmp/snaptastic-cache}"
export CARGO_TARGET_DIR="${CARGO_TARGET_DIR:-$SNAPTASTIC_CACHE/target}"
fail() { echo "check-rpm: $*" >&2; exit 1; }

rpm_file="$(scripts/package.sh rpm)"
echo "check-rpm: $rpm_file ($(du -h "$rpm_file" | cut -f1))"
files="$(rpm -qlp "$rpm_file" 2>/dev/null)"
for want in \
    /usr/bin/snaptastic /usr/bin/tablesnap /usr/bin/tableslurp /usr/bin/tablechop \
    /etc/snaptastic/snaptastic.toml /etc/default/tablesnap \
    /usr/share/man/man1/snaptastic.1.gz /usr/share/man/man1/tablesnap.1.gz \
    /usr/share/bash-completion/completions/snaptastic \
    /usr/share/zsh/site-functions/_snaptastic \
    /usr/share/fish/vendor_completions.d/snaptastic.fish \
    /usr/lib/systemd/system/snaptastic-mount@.service \
    /usr/lib/systemd/system/snaptastic-prewarm@.service \
    /usr/lib/systemd/system/snaptastic-snapshot@.timer \
    /usr/lib/systemd/system/snaptastic-check@.timer \
    /usr/lib/systemd/system/snaptastic-clean@.timer \
    /usr/lib/systemd/system/snaptastic-copy@.timer \
    /usr/lib/systemd/system/snaptastic-fast-restore-expire@.timer \
    /usr/lib/systemd/system/tablesnap.service \
    /usr/share/doc/snaptastic/README.md /usr/share/doc/snaptastic/SECURITY.md \
    /usr/share/doc/snaptastic/docs/security.md \
    /usr/share/doc/snaptastic/LICENSE; do
    grep -qx -- "$want" <<<"$files" || fail "the package lacks $want"
done
config="$(rpm -qp --configfiles "$rpm_file" 2>/dev/null)"
for want in /etc/snaptastic/snaptastic.toml /etc/default/tablesnap; do
    grep -qx -- "$want" <<<"$config" || fail "$want is not a config file"
done
# %config(noreplace): an edited file is kept on upgrade.
rpm -qp --qf '[%{FILEFLAGS:fflags} %{FILENAMES}\n]' "$rpm_file" 2>/dev/null |
    grep -qx 'cn /etc/snaptastic/snaptastic.toml' || fail "snaptastic.toml is not %config(noreplace)"
links="$(rpm -qp --qf '[%{FILENAMES} -> %{FILELINKTOS}\n]' "$rpm_file" 2>/dev/null)"
for name in tablesnap tableslurp tablechop; do
    grep -qx "/usr/bin/$name -> snaptastic" <<<"$links" || fail "/usr/bin/$name is not a link to snaptastic"
done
requires="$(rpm -qp --requires "$rpm_file" 2>/dev/null)"
grep -q 'GLIBC_2\.34' <<<"$requires" || fail "no glibc >= 2.34 requirement found: $requires"
grep -qx 'shadow-utils' <<<"$requires" || fail "no shadow-utils requirement: $requires"
echo "check-rpm: contents, config files, links and requirements OK"

# rpmlint: no error (its settings: packaging/rpm/rpmlint.toml). Its
# warnings are printed; an error fails the check.
lint="$(rpmlint -c packaging/rpm/rpmlint.toml "$rpm_file" 2>&1 || true)"
echo "$lint" | tail -1
grep -qE ' [1-9][0-9]* errors?,' <<<"$lint" && fail "rpmlint found errors:
$lint"
grep -qE '^ *[0-9]+ packages and [0-9]+ specfiles checked; 0 errors' <<<"$lint" ||
    fail "rpmlint did not say 0 errors:
$lint"

# An install into a scratch root, as rpm lays it out.
root="$(mktemp -d)"
trap 'rm -rf "$root"' EXIT
rpm --root "$root" --initdb
rpm --root "$root" -i --nodeps --noscripts --nosignature "$rpm_file"
rpm --root "$root" -q snaptastic >/dev/null || fail "rpm -q in the scratch root"
"$root/usr/bin/snaptastic" --version >/dev/null || fail "the installed binary does not run"
[ "$(readlink "$root/usr/bin/tablesnap")" = snaptastic ] || fail "tablesnap link in the scratch root"
cmp -s snaptastic.example.toml "$root/etc/snaptastic/snaptastic.toml" || fail "snaptastic.toml differs"
[ "$(stat -c %a "$root/usr/bin/snaptastic")" = 755 ] || fail "snaptastic's mode"
echo "check-rpm: installed into a scratch root; the binary runs"
