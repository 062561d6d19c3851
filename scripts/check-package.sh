#!/usr/bin/env bash
# Build the .deb (scripts/package.sh) and check it as a user would meet it:
# its contents (dpkg-deb -c); then, as root: install it, run the commands,
# read a man page, see the system user tablesnap made, verify every
# systemd unit, upgrade it with an edited conffile (the edit stays),
# remove it (nothing left but the edited conffile and the user) and purge
# it (the user and /var/lib/snaptastic go too). Exits non-zero at the
# first thing wrong.
set -euo pipefail
cd "$(dirname "$0")/.."
export SNAPTASTIC_CACHE="${SNAPTASTIC_CACHE:-/var/tmp/snaptastic-cache}"
export CARGO_TARGET_DIR="${CARGO_TARGET_DIR:-$SNAPTASTIC_CACHE/target}"
fail() { echo "check-package: $*" >&2; exit 1; }

deb="$(scripts/package.sh)"
echo "check-package: $deb ($(du -h "$deb" | cut -f1))"
contents="$(dpkg-deb -c "$deb")"
for want in \
    ' ./usr/bin/snaptastic$' \
    ' ./usr/bin/tablesnap -> snaptastic$' \
    ' ./usr/bin/tableslurp -> snaptastic$' \
    ' ./usr/bin/tablechop -> snaptastic$' \
    ' ./etc/snaptastic/snaptastic.toml$' \
    ' ./etc/default/tablesnap$' \
    ' ./usr/share/man/man1/snaptastic.1.gz$' \
    ' ./usr/share/man/man1/tablesnap.1.gz$' \
    ' ./usr/share/bash-completion/completions/snaptastic$' \
    ' ./usr/share/bash-completion/completions/tablesnap$' \
    ' ./usr/share/zsh/vendor-completions/_snaptastic$' \
    ' ./usr/share/fish/vendor_completions.d/snaptastic.fish$' \
    ' ./usr/lib/systemd/system/snaptastic-mount@.service$' \
    ' ./usr/lib/systemd/system/snaptastic-prewarm@.service$' \
    ' ./usr/lib/systemd/system/snaptastic-snapshot@.timer$' \
    ' ./usr/lib/systemd/system/snaptastic-check@.timer$' \
    ' ./usr/lib/systemd/system/snaptastic-clean@.timer$' \
    ' ./usr/lib/systemd/system/snaptastic-copy@.timer$' \
    ' ./usr/lib/systemd/system/snaptastic-fast-restore-expire@.timer$' \
    ' ./usr/lib/systemd/system/tablesnap.service$' \
    ' ./usr/share/doc/snaptastic/README.md$' \
    ' ./usr/share/doc/snaptastic/SECURITY.md$' \
    ' ./usr/share/doc/snaptastic/docs/security.md$' \
    ' ./usr/share/doc/snaptastic/copyright$'; do
    grep -qE -- "$want" <<<"$contents" || fail "the package lacks${want%$}"
done
conffiles="$(dpkg-deb --ctrl-tarfile "$deb" | tar -xO ./conffiles)"
grep -qx /etc/snaptastic/snaptastic.toml <<<"$conffiles" || fail "snaptastic.toml is not a conffile"
echo "check-package: contents OK"
# lintian: no error and no warning (overrides: packaging/debian/lintian-overrides).
lint="$(lintian --allow-root --fail-on error,warning "$deb" 2>&1)" || fail "lintian:
$lint"
echo "check-package: lintian clean"

if [ "$(id -u)" -ne 0 ]; then
    [ -z "${CI:-}" ] || fail "installing the package needs root in CI"
    echo "check-package: SKIPPED install/remove (needs root)"
    exit 0
fi
if dpkg -s snaptastic >/dev/null 2>&1; then
    fail "a snaptastic package is installed already; not touching it"
fi
trap 'dpkg --purge snaptastic >/dev/null 2>&1 || true' EXIT
dpkg -i "$deb" >/dev/null
/usr/bin/snaptastic --version
tablesnap --help | grep -q -- '--backup' || fail "tablesnap --help"
tableslurp --version >/dev/null
man -l /usr/share/man/man1/snaptastic.1.gz 2>/dev/null | grep -q 'make-snapshots' || fail "man page"
# The system user tablesnap.service runs as (postinst): no login shell.
ts_user="$(getent passwd tablesnap)" || fail "postinst did not make the user tablesnap"
[ "${ts_user##*:}" = /usr/sbin/nologin ] || fail "tablesnap has a login shell: $ts_user"
[ "$(id -gn tablesnap)" = tablesnap ] || fail "tablesnap's group is $(id -gn tablesnap)"

# Every unit, templates as an instance, with no warning at all.
units="$(mktemp -d)"
for u in /usr/lib/systemd/system/snaptastic-*@.* /usr/lib/systemd/system/tablesnap.service; do
    name="$(basename "$u")"
    cp "$u" "$units/${name/@./@solr.}"
done
out="$(cd "$units" && systemd-analyze verify --man=no ./* 2>&1)" || fail "systemd-analyze verify: $out"
[ -z "$out" ] || fail "systemd-analyze verify warned: $out"
rm -rf "$units"
echo "check-package: installed; commands, man page and units OK"

# Upgrade with an edited conffile: the edit stays (no prompt: the package's
# own copy did not change).
echo "# edited by the operator" >> /etc/snaptastic/snaptastic.toml
next="$(dirname "$deb")/next.deb"
"$SNAPTASTIC_CACHE/tools/bin/cargo-deb" --no-build --locked --deb-revision 2 --output "$next" >/dev/null 2>&1
dpkg -i "$next" </dev/null >/dev/null
grep -q 'edited by the operator' /etc/snaptastic/snaptastic.toml || fail "the upgrade lost the edited conffile"
[ "$(getent passwd tablesnap)" = "$ts_user" ] || fail "the upgrade changed the user tablesnap"
rm -f "$next"

dpkg -r snaptastic >/dev/null
for gone in /usr/bin/snaptastic /usr/bin/tablesnap /usr/share/man/man1/snaptastic.1.gz \
    /usr/lib/systemd/system/tablesnap.service /usr/share/doc/snaptastic; do
    [ ! -e "$gone" ] && [ ! -L "$gone" ] || fail "$gone left after dpkg -r"
done
grep -q 'edited by the operator' /etc/snaptastic/snaptastic.toml || fail "dpkg -r removed the edited conffile"
getent passwd tablesnap >/dev/null || fail "dpkg -r removed the user tablesnap"
mkdir -p /var/lib/snaptastic && touch /var/lib/snaptastic/tablesnap-test.digests
dpkg --purge snaptastic >/dev/null
[ ! -e /etc/snaptastic/snaptastic.toml ] || fail "purge left the conffile"
[ ! -e /var/lib/snaptastic ] || fail "purge left the daemon's state in /var/lib/snaptastic"
! getent passwd tablesnap >/dev/null || fail "purge left the user tablesnap"
! getent group tablesnap >/dev/null || fail "purge left the group tablesnap"
trap - EXIT
echo "check-package: upgrade kept the edited conffile and the user; remove left only them; purge removed them and the state"
