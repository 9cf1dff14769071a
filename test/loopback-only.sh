#!/usr/bin/env bash
# Run a command inside a fresh network namespace that has only `lo`, so no test can reach
# (or be reached from) anything but this host, whatever address a socket binds. Needs root, unshare
# (util-linux) and ip (iproute2: a new namespace's lo is down); without them it runs on the host network.
# The namespace is a PID namespace too, so nothing the command starts outlives it: when the command
# ends, or unshare is killed (a hard timeout: --kill-child), the kernel ends every process left inside,
# nodes in process groups of their own included. PID 1 there is this bash: it passes SIGTERM and
# SIGINT on to the command (an init ignores signals it has no handler for) and exits with its status.
set -euo pipefail
if [ "${SUSTAIN_IN_NETNS:-}" != "1" ] && [ "$(id -u)" = "0" ] && command -v unshare >/dev/null \
  && command -v ip >/dev/null && unshare -n true 2>/dev/null; then
  # shellcheck disable=SC2016 # expanded by the inner bash
  exec unshare --net --pid --fork --kill-child --mount-proc env SUSTAIN_IN_NETNS=1 bash -c '
    ip link set lo up || exit 1
    ( trap - INT QUIT; exec "$@" ) &
    child=$!
    trap "kill -TERM $child 2>/dev/null" TERM
    trap "kill -INT $child 2>/dev/null" INT
    for _ in $(seq 1 1000); do
      status=0
      wait "$child" || status=$?
      kill -0 "$child" 2>/dev/null || exit "$status"
    done
    exit 1' bash "$@"
fi
if [ "${SUSTAIN_IN_NETNS:-}" != "1" ]; then
  echo "loopback-only.sh: no network namespace (needs root, unshare and ip); running on the host network" >&2
fi
exec "$@"
