#!/bin/sh
# A write load for the large guest (bench/qemu.ts, issue 21), started by init when the kernel command
# line has sustain.load=MEM_KIB,DISK_KIB,MEM_MIB: every second it rewrites MEM_KIB of a MEM_MIB file in
# RAM (/run is the initramfs: guest memory) and DISK_KIB of /dev/vdb, each at the next offset round a ring,
# so a snapshot interval of S seconds changes S*MEM_KIB of memory and S*DISK_KIB of the disk.
spec=$(tr ' ' '\n' </proc/cmdline | sed -n 's/^sustain.load=//p')
mem_kib=${spec%%,*}; rest=${spec#*,}
disk_kib=${rest%%,*}; ring_mib=${rest#*,}
[ -n "$mem_kib" ] && [ -n "$disk_kib" ] && [ -n "$ring_mib" ] || exit 0
disk_kib_total=$(( $(cat /sys/block/vdb/size 2>/dev/null || echo 0) / 2 ))
echo "load: ${mem_kib} KiB/s of a ${ring_mib} MiB memory ring, ${disk_kib} KiB/s of vdb (${disk_kib_total} KiB)"
# The memory ring is filled once (the guest's resident data), then rewritten piece by piece.
dd if=/dev/urandom of=/run/churn bs=1M count="$ring_mib" 2>/dev/null
mem_at=0; disk_at=0
while :; do
  dd if=/dev/urandom of=/run/churn bs=1k count="$mem_kib" seek="$mem_at" conv=notrunc 2>/dev/null
  mem_at=$(( (mem_at + mem_kib) % (ring_mib * 1024 - mem_kib) ))
  if [ "$disk_kib_total" -gt "$disk_kib" ]; then
    dd if=/dev/urandom of=/dev/vdb bs=1k count="$disk_kib" seek="$disk_at" conv=notrunc,fsync 2>/dev/null
    disk_at=$(( (disk_at + disk_kib) % (disk_kib_total - disk_kib) ))
  fi
  sleep 1
done
