#!/bin/sh
# One connection: the banner the driver probes for, with the counter, uptime and boot id (a reboot
# changes the boot id, a restore by incoming migration keeps it).
read -r up _ < /proc/uptime
echo "sustain-counter $(cat /run/counter 2>/dev/null || echo 0) uptime $up boot $(cat /proc/sys/kernel/random/boot_id)"
