#!/bin/sh
# The counter: +1 every 0.5 s of guest time. It lives in this process's memory (and /run/counter, in RAM);
# every tick also goes to the first bytes of /dev/vda, so a fresh boot on the same disk continues from it.
n=$(dd if=/dev/vda bs=32 count=1 2>/dev/null | tr -dc 0-9)
n=${n:-0}
echo "counter: starting at $n"
while :; do
  n=$((n + 1))
  echo "$n" > /run/counter.tmp && mv /run/counter.tmp /run/counter
  printf '%-32s' "$n" | dd of=/dev/vda bs=32 count=1 conv=notrunc,fsync 2>/dev/null
  sleep 0.5
done
