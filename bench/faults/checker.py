#!/usr/bin/env python3
"""The fault lab's client and judge (smtplib and mailbox only; it shares no code with Sustain).

send:  one client thread per front door sends unique mails in a loop (a client whose door fails moves to
       the next door, as a client with several MX records would) and appends every attempt to a JSON-lines
       file: acknowledged (250 after DATA) or not. Stops when the stop file appears or after --max-s.
check: sends one marker mail through any door, finds the one mailbox holding it (the live server's,
       whatever the nodes say), and reports acknowledged, lost, duplicated and client outage for one
       prefix of ids as one JSON line.
"""
import argparse
import json
import mailbox
import os
import smtplib
import sys
import threading
import time
from email.message import EmailMessage

RECIPIENT = "lab@example.org"
SENDER = "checker@lab.test"
HEADER = "X-Lab-Id"


def message(lab_id):
    msg = EmailMessage()
    msg["From"] = SENDER
    msg["To"] = RECIPIENT
    msg["Subject"] = lab_id
    msg["Message-ID"] = "<%s@lab.test>" % lab_id
    msg[HEADER] = lab_id
    msg.set_content("fault lab mail %s\n" % lab_id)
    return msg


def send_one(door, lab_id, timeout_s):
    host, port = door.rsplit(":", 1)
    with smtplib.SMTP(host, int(port), timeout=timeout_s) as smtp:
        smtp.send_message(message(lab_id))


def send(args):
    doors = args.doors.split(",")
    lock = threading.Lock()
    out = open(args.out, "a", buffering=1)
    deadline = time.time() + args.max_s

    def stopped():
        return time.time() >= deadline or os.path.exists(args.stop_file)

    def client(index):
        door_index = index % len(doors)
        for seq in range(args.max_mails):
            if stopped():
                return
            door = doors[door_index]
            lab_id = "%s-c%d-%d" % (args.prefix, index, seq)
            sent_t = time.time()
            record = {"id": lab_id, "client": index, "door": door, "sent_t": sent_t}
            try:
                send_one(door, lab_id, args.timeout_s)
                record["ack_t"] = time.time()
            except (OSError, smtplib.SMTPException) as error:
                record["error"] = "%s: %s" % (type(error).__name__, error)
                door_index = (door_index + 1) % len(doors)
            with lock:
                out.write(json.dumps(record) + "\n")
            time.sleep(args.pause_s if "ack_t" in record else args.retry_s)

    threads = [threading.Thread(target=client, args=(i,), daemon=True) for i in range(len(doors))]
    for t in threads:
        t.start()
    # The runner waits for this line before it starts the fault's clock: at load 40 this process took 27 s
    # to get here once (delay seed 2000), and its first mails went out after the heal.
    print("sending", flush=True)
    for t in threads:
        t.join(args.max_s + args.timeout_s * 2)
    out.close()


def read_ids(path):
    """Every lab id in an mbox file, with repeats (a missing or empty file holds none)."""
    if not os.path.exists(path):
        return []
    box = mailbox.mbox(path, create=False)
    try:
        return [m[HEADER] for m in box if m[HEADER] is not None]
    finally:
        box.close()


def outage_ms(records, start_t, end_t):
    """The longest time any client went without an acknowledgement between start_t and end_t."""
    worst = 0.0
    clients = sorted({r["client"] for r in records})
    for c in clients:
        times = sorted(r["ack_t"] for r in records if r["client"] == c and "ack_t" in r)
        times = [t for t in times if start_t <= t <= end_t]
        edges = [start_t] + times + [end_t]
        worst = max([worst] + [b - a for a, b in zip(edges, edges[1:])])
    return round(worst * 1000)


def check(args):
    records = []
    with open(args.acks) as f:
        for line in f:
            line = line.strip()
            if line:
                records.append(json.loads(line))
    records = [r for r in records if r["id"].startswith(args.prefix + "-")]
    acked = {r["id"]: r for r in records if "ack_t" in r}
    attempted = {r["id"] for r in records}

    marker = "%s-marker" % args.prefix
    doors = args.doors.split(",")
    marker_acked = False
    deadline = time.time() + args.marker_s
    for attempt in range(60):
        if time.time() >= deadline:
            break
        try:
            send_one(doors[attempt % len(doors)], marker, 15)
            marker_acked = True
            break
        except (OSError, smtplib.SMTPException):
            time.sleep(1)

    boxes = {}
    for pair in args.mailboxes.split(","):
        name, path = pair.split("=", 1)
        boxes[name] = read_ids(path)
    live = [name for name, ids in boxes.items() if marker in ids]
    result = {
        "prefix": args.prefix,
        "attempted": len(attempted),
        "acknowledged": len(acked),
        "marker_acknowledged": marker_acked,
        "live_mailbox": live[0] if len(live) == 1 else None,
        "mailboxes_with_marker": live,
        "mailbox_counts": {
            name: sum(1 for i in ids if i.startswith(args.prefix + "-")) for name, ids in boxes.items()
        },
    }
    if len(live) == 1:
        ids = [i for i in boxes[live[0]] if i.startswith(args.prefix + "-") and i != marker]
        counts = {}
        for i in ids:
            counts[i] = counts.get(i, 0) + 1
        lost = sorted(i for i in acked if i not in counts)
        result["lost"] = len(lost)
        result["lost_ids"] = lost[:20]
        result["duplicated"] = sum(n - 1 for n in counts.values() if n > 1)
        result["duplicated_ids"] = sorted(i for i, n in counts.items() if n > 1)[:20]
        result["delivered_unacknowledged"] = sum(1 for i in counts if i not in acked)
        result["unknown_ids"] = sum(1 for i in counts if i not in attempted)
        if lost and args.fault_t is not None:
            # How long before the fault the oldest lost mail was acknowledged (a loss window, not a verdict).
            result["lost_acked_before_fault_ms"] = round((args.fault_t - min(acked[i]["ack_t"] for i in lost)) * 1000)
    else:
        result["lost"] = None
        result["duplicated"] = None
    result["outage_ms"] = outage_ms(records, args.start_t, args.end_t)
    print(json.dumps(result))


def main():
    parser = argparse.ArgumentParser(description=__doc__)
    sub = parser.add_subparsers(dest="command", required=True)
    s = sub.add_parser("send")
    s.add_argument("--doors", required=True, help="host:port,... of the front doors")
    s.add_argument("--prefix", required=True)
    s.add_argument("--out", required=True)
    s.add_argument("--stop-file", required=True)
    s.add_argument("--max-s", type=float, default=300)
    s.add_argument("--max-mails", type=int, default=100000)
    s.add_argument("--timeout-s", type=float, default=15)
    s.add_argument("--pause-s", type=float, default=0.2)
    s.add_argument("--retry-s", type=float, default=0.3)
    c = sub.add_parser("check")
    c.add_argument("--acks", required=True)
    c.add_argument("--prefix", required=True)
    c.add_argument("--doors", required=True)
    c.add_argument("--mailboxes", required=True, help="name=path,... of every node's mailbox")
    c.add_argument("--start-t", type=float, required=True)
    c.add_argument("--end-t", type=float, required=True)
    c.add_argument("--fault-t", type=float)
    c.add_argument("--marker-s", type=float, default=60)
    args = parser.parse_args()
    if args.command == "send":
        send(args)
    else:
        check(args)


if __name__ == "__main__":
    sys.exit(main())
