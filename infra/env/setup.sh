#!/usr/bin/env bash
# Builds, once per lock hash, the environment every project command runs in, and prints its path.
#   - glibc >= 2.39 on the host (the locks' wheels are manylinux_2_39): a plain virtualenv of CPython
#     3.13 (the locks are resolved for it), after checking the host has what it needs.
#   - otherwise (Debian 12 and older): a Debian 13 userland (mmdebstrap) with the virtualenv inside,
#     entered through bubblewrap by infra/env/run.sh.
# Environments live under $BLOODCELL_CACHE (default ~/.cache/bloodcell), keyed by a hash of the
# lock files, so a second run takes seconds and a lock change rebuilds. Only a build that finished
# gets its .complete marker; an unfinished one is deleted and redone.
set -euo pipefail
# --prune: afterwards delete every other cached environment (safe: no bwrap mount outlives its command).
prune=0; [ "${1:-}" = --prune ] && prune=1

repo=$(cd "$(dirname "${BASH_SOURCE[0]}")/../.." && pwd)
cache=${BLOODCELL_CACHE:-${XDG_CACHE_HOME:-$HOME/.cache}/bloodcell}
log() { printf '[setup] %s\n' "$*" >&2; }

glibc_ok() {
  local v; v=$(getconf GNU_LIBC_VERSION 2>/dev/null | awk '{print $2}')
  [ -n "$v" ] && [ "$(printf '%s\n2.39\n' "$v" | sort -V | head -n1)" = "2.39" ]
}

# What a host needs for the plain virtualenv, as Debian package names: the userland's list
# (apt-packages.txt) checked on the host instead of installed.
venv_missing() {
  local missing=() include
  if ! command -v python3.13 >/dev/null; then
    missing+=(python3)  # Python 3.13 exactly: the locks are resolved for it
  else
    python3.13 -c 'import ensurepip, venv' 2>/dev/null || missing+=(python3-venv)
    include=$(python3.13 -c 'import sysconfig; print(sysconfig.get_paths()["include"])' 2>/dev/null)
    [ -f "$include/Python.h" ] || missing+=(python3-dev)  # three locked packages build from source
  fi
  { command -v cc && command -v make; } >/dev/null || missing+=(build-essential)
  command -v node >/dev/null || missing+=(nodejs)
  command -v npm >/dev/null || missing+=(npm)
  { command -v chromium || command -v chromium-browser; } >/dev/null || missing+=(chromium)
  { { command -v nginx || [ -x /usr/sbin/nginx ]; } && [ -f /etc/nginx/mime.types ]; } >/dev/null || missing+=(nginx-light)
  [ -f /etc/ssl/certs/ca-certificates.crt ] || missing+=(ca-certificates)
  echo "${missing[@]}"
}

mode=${BLOODCELL_ENV_MODE:-}
if [ -z "$mode" ]; then if glibc_ok; then mode=venv; else mode=userland; fi; fi
case "$mode" in venv|userland) ;; *) log "BLOODCELL_ENV_MODE must be venv or userland, not '$mode'"; exit 2;; esac
if [ "$mode" = venv ]; then
  missing=$(venv_missing)
  if [ -n "$missing" ]; then
    log "this host lacks what the environment needs: apt-get install -y $missing (or BLOODCELL_ENV_MODE=userland)"
    exit 1
  fi
fi

key_files=("$repo/locks/pipeline.lock" "$repo/locks/converter.lock" "$repo/infra/env/tools.lock"
           "$repo/infra/env/setup.sh" "$repo/infra/env/converter_shims/tensorflow_decision_forests/__init__.py")
[ "$mode" = userland ] && key_files+=("$repo/infra/env/apt-packages.txt")
key=$( { echo "$mode"; cat "${key_files[@]}"; } | sha256sum | cut -c1-16)
target="$cache/env-$mode-$key"

finish() {
  if [ "$prune" = 1 ]; then
    for old in "$cache"/env-*; do
      [ "$old" != "$target" ] && [ -d "$old" ] && { log "removing $old"; rm -rf "$old"; }
    done
  fi
  echo "$target"; exit 0
}

if [ -f "$target/.complete" ]; then finish; fi

mkdir -p "$cache"
exec 9>"$cache/.setup.lock"
log "waiting for the setup lock ($cache/.setup.lock)"
flock 9
if [ -f "$target/.complete" ]; then finish; fi

build="$target"
# A leftover from an interrupted build: safe to delete, no mount outlives a bwrap call.
rm -rf "$build"
mkdir -p "$build" "$cache/uv-cache"
start=$SECONDS
host_ca=${SSL_CERT_FILE:-/etc/ssl/certs/ca-certificates.crt}

if [ "$mode" = userland ]; then
  for tool in mmdebstrap bwrap; do
    if ! command -v "$tool" >/dev/null; then
      log "installing mmdebstrap and bubblewrap from Debian"
      if [ "$(id -u)" = 0 ]; then apt-get update -qq && apt-get install -y -qq mmdebstrap bubblewrap >&2
      else log "need root (or: sudo apt-get install mmdebstrap bubblewrap)"; exit 1; fi
      break
    fi
  done
  pkgs=$(grep -v '^#' "$repo/infra/env/apt-packages.txt" | xargs | tr ' ' ',')
  log "building the Debian 13 userland (mmdebstrap, ~30 s): $pkgs"
  mmdebstrap --quiet --variant=minbase --include="$pkgs" trixie "$build/rootfs" >&2
  py=/usr/bin/python3
  run_in() {
    bwrap --bind "$build/rootfs" / --proc /proc --dev /dev \
      --ro-bind /etc/resolv.conf /etc/resolv.conf \
      --ro-bind "$host_ca" /etc/ssl/certs/ca-certificates.crt \
      --bind "$cache/uv-cache" /var/cache/uv --ro-bind "$repo" /src \
      --setenv SSL_CERT_FILE /etc/ssl/certs/ca-certificates.crt \
      --setenv UV_CACHE_DIR /var/cache/uv --setenv UV_LINK_MODE copy "$@"
  }
  venv=/opt/venv; converter_venv=/opt/converter-venv; src=/src
else
  py=$(command -v python3.13)
  run_in() { UV_CACHE_DIR="$cache/uv-cache" "$@"; }
  venv="$build/venv"; converter_venv="$build/converter-venv"; src="$repo"
fi
lock=$src/locks/pipeline.lock; tools=$src/infra/env/tools.lock

log "creating the virtualenv and installing uv"
run_in "$py" -m venv "$venv"
run_in "$venv/bin/pip" install --quiet --disable-pip-version-check --no-cache-dir --require-hashes -r "$tools" >&2
log "installing the locked packages with uv (first time: ~4 GB download)"
run_in "$venv/bin/uv" pip sync --python "$venv/bin/python" --require-hashes "$lock" >&2
run_in "$venv/bin/python" -c "import tfx, tensorflow, apache_beam, kfp; print('[setup] tfx', tfx.__version__, 'tensorflow', tensorflow.__version__)" >&2

# The tfjs converter cannot live in the TFX environment (requirements/converter.in says why).
log "creating the tfjs converter's virtualenv"
run_in "$py" -m venv "$converter_venv"
run_in "$venv/bin/uv" pip sync --python "$converter_venv/bin/python" --require-hashes "$src/locks/converter.lock" >&2
site=$(run_in "$converter_venv/bin/python" -c "import sysconfig; print(sysconfig.get_paths()['purelib'])")
run_in cp -r "$src/infra/env/converter_shims/tensorflow_decision_forests" "$site/"
run_in "$converter_venv/bin/python" -c "import tensorflowjs; print('[setup] tensorflowjs', tensorflowjs.__version__)" >&2

touch "$target/.complete"
log "environment ready in $((SECONDS - start)) s: $target"
finish
