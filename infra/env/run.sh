#!/usr/bin/env bash
# Runs a command inside the project environment (built first if needed by setup.sh).
#   infra/env/run.sh python -m pipeline.local_runner
# In userland mode the command runs under bubblewrap with the Debian 13 tree as /, the repo (read-write)
# and its parent folder (read-only: ../shared) at their host paths. More host paths:
# BLOODCELL_BIND="/data/a:/data/b" (read-only), BLOODCELL_BIND_RW="/var/lib/x" (read-write; each must
# exist). bwrap's mounts vanish when the command ends.
# The sandbox is a boundary for the packages it runs: an unprivileged user (no capabilities) in its
# own user and PID namespaces, a private /tmp and $HOME (the host's home, with its keys and cloud
# credentials, is not there; only the project's npm cache is), and only allowlisted environment
# variables (ALLOWED_ENV below).
set -euo pipefail
repo=$(cd "$(dirname "${BASH_SOURCE[0]}")/../.." && pwd)
# Exit 2, as the runner's failures before any step: a timer's journal must not read it as a failed step.
env_dir=$("$repo/infra/env/setup.sh") || { echo "run.sh: the environment could not be built (setup's lines above)" >&2; exit 2; }

export PYTHONPATH="$repo${PYTHONPATH:+:$PYTHONPATH}"
export TF_USE_LEGACY_KERAS=1 TF_CPP_MIN_LOG_LEVEL=${TF_CPP_MIN_LOG_LEVEL:-2} PYTHONUNBUFFERED=1
# What may cross into the sandbox (names, or prefixes ending in *): the project's own settings and
# what Python, TF, pytest, the locale and a terminal need. Kaggle credentials only as variables.
# Besides the locale and the GPU: what the product reads (tests/unit/test_infra.py checks the list).
ALLOWED_ENV=(BLOODCELL_* TF_* PYTHON* PYTEST_* LANG LC_* TERM TZ NO_COLOR COLUMNS CUDA_VISIBLE_DEVICES
             NVIDIA_* KAGGLE_USERNAME KAGGLE_KEY KFP_TOKEN GOOGLE_APPLICATION_CREDENTIALS VITE_*)

# shellcheck source=infra/env/web_deps.sh
source "$repo/infra/env/web_deps.sh"

if [ -d "$env_dir/venv" ]; then
  export PATH="$env_dir/venv/bin:$PATH:/usr/sbin"  # nginx lives in /usr/sbin
  export BLOODCELL_TFJS_CONVERTER=${BLOODCELL_TFJS_CONVERTER:-$env_dir/converter-venv/bin/tensorflowjs_converter}
  export BLOODCELL_CHROMIUM=${BLOODCELL_CHROMIUM:-$(command -v chromium || command -v chromium-browser || true)}
  install_web_deps env -C "$repo/web" npm ci --no-audit --no-fund
  exec "$@"
fi
export BLOODCELL_TFJS_CONVERTER=${BLOODCELL_TFJS_CONVERTER:-/opt/converter-venv/bin/tensorflowjs_converter}
export BLOODCELL_CHROMIUM=${BLOODCELL_CHROMIUM:-/usr/bin/chromium}

host_ca=${SSL_CERT_FILE:-/etc/ssl/certs/ca-certificates.crt}
cache=${BLOODCELL_CACHE:-${XDG_CACHE_HOME:-$HOME/.cache}/bloodcell}
npm_cache="$cache/npm"
mkdir -p "$npm_cache"
args=(--ro-bind "$env_dir/rootfs" / --proc /proc --dev /dev --tmpfs /dev/shm --tmpfs /tmp
      --ro-bind /etc/resolv.conf /etc/resolv.conf
      --ro-bind "$host_ca" /etc/ssl/certs/ca-certificates.crt
      --unshare-user --uid 1000 --gid 1000 --unshare-pid --unshare-ipc --unshare-uts --cap-drop ALL
      --die-with-parent)
# Later mounts cover earlier ones: read-only parent first, then the writable paths.
parent=$(dirname "$repo")
[ "$parent" != / ] && args+=(--ro-bind "$parent" "$parent")
args+=(--bind "$npm_cache" /var/cache/npm --bind "$repo" "$repo")
# A git worktree's .git is a file naming its git directory elsewhere: mount that too (read-only), so
# the commit can be read inside (benchmark reports record it).
if [ -f "$repo/.git" ]; then
    gitdir=$(sed -n 's/^gitdir: //p' "$repo/.git")
    common=$(cd "$gitdir/../.." 2>/dev/null && pwd)
    [ -n "$common" ] && args+=(--ro-bind "$common" "$common")
fi
IFS=: read -ra extra <<< "${BLOODCELL_BIND:-}"
for p in "${extra[@]}"; do [ -n "$p" ] && args+=(--ro-bind "$p" "$p"); done
IFS=: read -ra writable <<< "${BLOODCELL_BIND_RW:-}"
for p in "${writable[@]}"; do [ -n "$p" ] && args+=(--bind "$p" "$p"); done
# Device nodes for a GPU, when the host has one.
for d in /dev/nvidia*; do [ -e "$d" ] && args+=(--dev-bind "$d" "$d"); done

# The tree is mounted read-only, so mount points are made beforehand on the host side.
for ((i = 0; i < ${#args[@]}; i++)); do
  case "${args[i]}" in
    --bind|--ro-bind|--dev-bind)
      dest=${args[i+2]}; [ "$dest" = / ] || [ -e "$env_dir/rootfs$dest" ] || {
        if [ -d "${args[i+1]}" ]; then mkdir -p "$env_dir/rootfs$dest"
        else mkdir -p "$(dirname "$env_dir/rootfs$dest")"; touch "$env_dir/rootfs$dest"; fi; }
      i=$((i + 2));;
  esac
done

# bwrap itself starts from this environment (env -i), not only the command: bwrap stays in the
# sandbox as PID 1, and its /proc/1/environ is readable from inside.
envs=(PATH=/opt/venv/bin:/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin HOME=/tmp/home
      USER=bloodcell npm_config_cache=/var/cache/npm SSL_CERT_FILE=/etc/ssl/certs/ca-certificates.crt)
for name in $(compgen -e); do
  for pattern in "${ALLOWED_ENV[@]}"; do
    # shellcheck disable=SC2053  # the pattern is a glob on purpose
    if [[ $name == $pattern ]]; then envs+=("$name=${!name}"); break; fi
  done
done
envs+=(BLOODCELL_SANDBOX=1 "BLOODCELL_HOST_HOME=$HOME")
# A folder named on the command line that the sandbox will not show reads as "not found" inside: say why.
# shellcheck source=infra/env/hidden_paths.sh
source "$repo/infra/env/hidden_paths.sh"
while IFS= read -r p; do
  echo "run.sh: $p is not visible in the sandbox (it shows the checkout, its parent folder and the folders in" \
       "BLOODCELL_BIND and BLOODCELL_BIND_RW): run with BLOODCELL_BIND=$p" >&2
done < <(hidden_paths "$env_dir/rootfs" "$repo:$parent:${common:-}:${BLOODCELL_BIND:-}:${BLOODCELL_BIND_RW:-}" "$@" \
           ${GOOGLE_APPLICATION_CREDENTIALS:+"$GOOGLE_APPLICATION_CREDENTIALS"})  # a key file is a path too
bw=(env -i "${envs[@]}" bwrap "${args[@]}")
install_web_deps "${bw[@]}" --chdir "$repo/web" npm ci --no-audit --no-fund
# Ctrl-C signals the whole foreground group: bwrap, dying of it, would take the command down with it
# (--die-with-parent) before the command's own interrupt handling ends. bwrap ignores it; the command
# gets the default back (a process started with SIGINT ignored keeps it ignored: Python too). So a
# SIGINT sent to run.sh's process alone (kill -INT) stops nothing: stop it with SIGTERM.
trap '' INT
exec "${bw[@]}" --chdir "$PWD" bash -c 'mkdir -p "$HOME" && exec env --default-signal=INT "$@"' bash "$@"
