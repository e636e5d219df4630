# Sourced by run.sh. The web client's npm packages (web/package-lock.json) live in the checkout:
# installed on first use and again whenever the lock is newer than the install. npm's cache under
# $HOME keeps it quick.
web_deps_stale() {
  [ -f "$repo/web/package-lock.json" ] || return 1
  [ ! -f "$repo/web/node_modules/.package-lock.json" ] || \
    [ "$repo/web/package-lock.json" -nt "$repo/web/node_modules/.package-lock.json" ]
}

# Runs "$@" (npm ci, as the caller runs it) when the packages are stale. A failure does not stop the
# command: a scheduled pipeline run uses no node, and must not fail because the npm registry is out of
# reach after a pull that touched the web lock.
install_web_deps() {
  web_deps_stale || return 0
  "$@" >&2 || echo "run.sh: the web client's packages (web/package-lock.json) could not be installed (is the npm" \
    "registry reachable?); going on: what needs node or the browser will fail" >&2
}
