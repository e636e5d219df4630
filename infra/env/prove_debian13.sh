#!/usr/bin/env bash
# Proves the venv branch of infra/env/setup.sh (hosts with glibc >= 2.39, such as Debian 13) from a
# Debian 12 machine: a bare Debian 13 root made as setup makes its userland (mmdebstrap, with only
# python3), entered with bwrap as root; setup must stop naming the packages it lacks; then with those
# packages installed, `make test` in the venv branch. Needs root, mmdebstrap, bwrap and the network
# (PyPI, Debian, npm); about 15 minutes, most of it `make test`.
#   make prove-debian13            (the work folder: $BLOODCELL_PROOF_DIR, default /var/tmp/bloodcell-proof)
set -uo pipefail
repo=$(cd "$(dirname "${BASH_SOURCE[0]}")/../.." && pwd)
work=${BLOODCELL_PROOF_DIR:-/var/tmp/bloodcell-proof}
root=$work/rootfs
cache=${BLOODCELL_CACHE:-${XDG_CACHE_HOME:-$HOME/.cache}/bloodcell}
rm -rf "$work"; mkdir -p "$work" "$cache/uv-cache"
t0=$SECONDS
mmdebstrap --quiet --variant=minbase --include=python3,ca-certificates,make trixie "$root" || exit 1
echo "[proof] bare Debian 13 in $((SECONDS - t0)) s"
mkdir -p "$root$repo" "$root/root/.cache/bloodcell/uv-cache"  # the host's package cache, to save downloads
inside() {
  # The host's CA bundle and pip settings: where a TLS proxy stands between the machine and PyPI, a
  # Debian 13 machine of this kind would trust it the same way.
  bwrap --bind "$root" / --proc /proc --dev /dev --tmpfs /dev/shm --ro-bind /etc/resolv.conf /etc/resolv.conf \
    --ro-bind /etc/ssl/certs/ca-certificates.crt /etc/ssl/certs/ca-certificates.crt $( [ -f /etc/pip.conf ] && echo --ro-bind /etc/pip.conf /etc/pip.conf ) \
    --bind "$repo" "$repo" --bind "$cache/uv-cache" /root/.cache/bloodcell/uv-cache \
    --chdir "$repo" env -i PATH=/usr/local/bin:/usr/bin:/bin:/usr/sbin:/sbin HOME=/root LANG=C.UTF-8 \
    SSL_CERT_FILE=/etc/ssl/certs/ca-certificates.crt PIP_CERT=/etc/ssl/certs/ca-certificates.crt \
    REQUESTS_CA_BUNDLE=/etc/ssl/certs/ca-certificates.crt NODE_EXTRA_CA_CERTS=/etc/ssl/certs/ca-certificates.crt "$@"
}
echo "[proof] step 1: setup.sh on the bare host"
inside bash infra/env/setup.sh; echo "[proof] exit $?"
pkgs=$(inside bash infra/env/setup.sh 2>&1 | sed -n 's/.*apt-get install -y \(.*\) (or BLOODCELL.*/\1/p')
echo "[proof] step 2: installing what it named: $pkgs"
t1=$SECONDS
inside bash -c "apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq $pkgs >/dev/null" || exit 1
echo "[proof] packages in $((SECONDS - t1)) s"
echo "[proof] step 3: make test"
t2=$SECONDS
inside make test; code=$?
echo "[proof] make test exit $code in $((SECONDS - t2)) s (setup included); total $((SECONDS - t0)) s"
exit $code
