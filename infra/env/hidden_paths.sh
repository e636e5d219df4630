# Sourced by run.sh. hidden_paths ROOTFS VISIBLE ARG...: prints (once each) every path among a command's
# arguments (a whole argument, or what follows its first '=': NAME=DIR, --flag=DIR, key=DIR) that exists
# on the host but that the sandbox will not show: not under one of VISIBLE's colon-separated folders,
# and not in the Debian 13 tree at ROOTFS either. Inside, such a path reads as "not found".
hidden_paths() {
  local rootfs=$1 prefixes arg candidate path prefix shown
  IFS=: read -ra prefixes <<< "$2"
  shift 2
  for arg in "$@"; do
    for candidate in "$arg" "${arg#*=}"; do
      case "$candidate" in /*|./*|../*) ;; *) continue ;; esac
      path=$(realpath -m -- "$candidate" 2>/dev/null) || continue
      [ -e "$path" ] || continue
      shown=
      for prefix in "${prefixes[@]}"; do
        prefix=${prefix%/}
        if [ -n "$prefix" ] && { [ "$path" = "$prefix" ] || [[ $path == "$prefix"/* ]]; }; then shown=1; break; fi
      done
      [ -n "$shown" ] || [ -e "$rootfs$path" ] || printf '%s\n' "$path"
    done
  done | sort -u
}
