# Sourced by run.sh. hidden_paths ROOTFS VISIBLE ARG...: prints (once each) every path among a command's
# arguments (a whole argument, or what follows its first or last '=': NAME=DIR, --flag=DIR,
# --flag=NAME=DIR) that exists on the host but that the sandbox will not show. The sandbox shows the
# folders in VISIBLE (colon-separated) at their host paths and the Debian 13 tree at ROOTFS for the
# system folders; anything else (/tmp and /dev/shm are its own, empty) reads as "not found" inside.
hidden_paths() {
  local rootfs=$1 prefixes=() prefix arg candidate logical resolved form shown
  IFS=: read -ra given <<< "$2"
  shift 2
  for prefix in "${given[@]}"; do  # as given and with links resolved: the checkout may sit behind a link
    [ -n "$prefix" ] && [ "$prefix" != / ] && prefixes+=("${prefix%/}" "$(realpath -m -- "$prefix")")
  done
  for arg in "$@"; do
    for candidate in "$arg" "${arg#*=}" "${arg##*=}"; do
      case "$candidate" in /*|./*|../*) ;; *) continue ;; esac
      logical=$(realpath -ms -- "$candidate" 2>/dev/null) || continue
      resolved=$(realpath -m -- "$candidate" 2>/dev/null) || continue
      [ -e "$resolved" ] || continue
      shown=
      for form in "$logical" "$resolved"; do
        for prefix in "${prefixes[@]}"; do
          if [ "$form" = "$prefix" ] || [[ $form == "$prefix"/* ]]; then shown=1; fi
        done
        case "$form" in
          /dev/shm|/dev/shm/*) ;;
          /usr/*|/bin/*|/sbin/*|/lib/*|/lib64/*|/etc/*|/proc/*|/dev/*|/sys/*) [ -e "$rootfs$form" ] && shown=1 ;;
        esac
      done
      [ -n "$shown" ] || printf '%s\n' "$logical"
    done
  done | sort -u
}
