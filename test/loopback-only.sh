#!/usr/bin/env bash
# Run a command inside a fresh network namespace that has only `lo`, so no test can reach
# (or be reached from) anything but this host, whatever address a socket binds. Needs root, unshare
# (util-linux) and ip (iproute2: a new namespace's lo is down); without them it runs on the host network.
set -euo pipefail
if [ "${SUSTAIN_IN_NETNS:-}" != "1" ] && [ "$(id -u)" = "0" ] && command -v unshare >/dev/null \
  && command -v ip >/dev/null && unshare -n true 2>/dev/null; then
  exec unshare -n env SUSTAIN_IN_NETNS=1 bash -c 'ip link set lo up && exec "$@"' bash "$@"
fi
if [ "${SUSTAIN_IN_NETNS:-}" != "1" ]; then
  echo "loopback-only.sh: no network namespace (needs root, unshare and ip); running on the host network" >&2
fi
exec "$@"
