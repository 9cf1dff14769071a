#!/bin/sh
# One connection of the acknowledging line service (guest port 7001, client port `ack`): every line
# received is appended to /run/acks (RAM, so it is in the guest's memory and in every snapshot of it)
# before it is answered "OK N" (N: lines this connection stored). A line "?" is answered with every line
# stored so far, then "END". Appends of one short line are single O_APPEND writes: connections interleave
# whole lines.
n=0
while IFS= read -r line; do
  if [ "$line" = "?" ]; then
    cat /run/acks 2>/dev/null
    echo END
    continue
  fi
  echo "$line" >> /run/acks
  n=$((n + 1))
  echo "OK $n"
done
