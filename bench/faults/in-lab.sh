#!/usr/bin/env bash
# Runs a command as PID 1 of fresh network, mount and PID namespaces (the fault lab's outer namespace):
# the network has only `lo` until the lab builds its bridge, so nothing inside reaches this machine's
# network or is reached from it; when the command ends, or unshare is killed (--kill-child), the kernel
# ends every process left in the namespace, so no lab process outlives the run.
set -euo pipefail
if [ "$(id -u)" != "0" ]; then
  echo "in-lab.sh: the fault lab needs root (network namespaces, iptables)" >&2
  exit 1
fi
for tool in unshare ip iptables; do
  command -v "$tool" >/dev/null || { echo "in-lab.sh: missing $tool (apt-get install -y iproute2 iptables util-linux)" >&2; exit 1; }
done
exec unshare --net --mount --pid --fork --kill-child --mount-proc --propagation private \
  env SUSTAIN_FAULT_LAB=1 "$@"
