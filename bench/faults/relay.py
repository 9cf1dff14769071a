#!/usr/bin/env python3
"""The fault lab's link relay (issue 20): delay with jitter, duplication and reordering of the packets
between the lab's nodes, from user space (this kernel has no netem: ../shared/notes/netns.md).

One TUN device per node, created here (in the lab's outer namespace) and moved into the node's
namespace; the node routes every other node's address (/32) through it. The packet node i sends to node
j is read here from i's device and, after its drawn delay, written to j's device, where j's kernel
receives it as coming from i. Everything between nodes goes through: hyperswarm and the DHT (UDX over
UDP) and the data lanes (TCP). The client's traffic to the front doors does not (no route for it).

The heal is this process's end, on every path (SIGTERM, --max-s, a crash, the lab's end): the devices
belong to its file descriptors, so they vanish with it, the routes through them with them, and the
nodes talk directly again. Standard library only; shares no code with Sustain.

stdout: "ready" once every route is in place; on exit one JSON line of counts.
"""
import argparse
import fcntl
import heapq
import json
import os
import random
import select
import signal
import struct
import subprocess
import sys
import threading
import time

TUNSETIFF = 0x400454CA
IFF_TUN = 0x0001
IFF_NO_PI = 0x1000


def parse():
    p = argparse.ArgumentParser(description=__doc__.split('\n')[0])
    p.add_argument('--nodes', required=True, help='ns=address,... (every node of the lab)')
    p.add_argument('--seed', type=int, required=True)
    p.add_argument('--delay-ms', type=float, default=0.0, help='mean one-way delay added to every packet')
    p.add_argument('--jitter-ms', type=float, default=0.0, help='each delay uniform in mean +- jitter')
    p.add_argument('--in-order', action='store_true', help='jitter never reorders a link (FIFO per link)')
    p.add_argument('--duplicate', type=float, default=0.0, help='share of packets delivered twice')
    p.add_argument('--reorder', type=float, default=0.0, help='share of packets sent at once, ahead of the delayed')
    p.add_argument('--max-s', type=float, required=True, help='the relay ends itself after this long')
    p.add_argument('--max-queue', type=int, default=50_000, help='packets held at most (beyond: dropped, counted)')
    a = p.parse_args()
    for name in ('duplicate', 'reorder'):
        if not 0 <= getattr(a, name) <= 1:
            p.error(f'--{name} wants a probability in [0, 1]')
    if a.delay_ms < 0 or a.jitter_ms < 0 or a.jitter_ms > a.delay_ms + 1e-9 and a.delay_ms > 0:
        p.error('--delay-ms and --jitter-ms want 0 <= jitter <= delay')
    if not 0 < a.max_s <= 3600:
        p.error('--max-s wants (0, 3600]')
    nodes = []
    for item in a.nodes.split(','):
        ns, _, address = item.partition('=')
        if not ns or len(address.split('.')) != 4:
            p.error(f'--nodes: bad entry {item!r} (ns=address)')
        nodes.append((ns, address))
    if len(nodes) < 2:
        p.error('--nodes wants at least 2 nodes')
    return a, nodes


STARTED = time.monotonic()


def log(what):
    # stderr: the lab shows it when the relay fails to start (each step's time tells a slow machine apart)
    print(f'relay +{time.monotonic() - STARTED:.1f} s: {what}', file=sys.stderr, flush=True)


def sh(argv, stdin=None):
    subprocess.run(argv, input=stdin, check=True, timeout=30, text=True, capture_output=True)


def open_tun(name):
    fd = os.open('/dev/net/tun', os.O_RDWR | os.O_NONBLOCK)
    fcntl.ioctl(fd, TUNSETIFF, struct.pack('16sH', name.encode(), IFF_TUN | IFF_NO_PI))
    return fd


def main():
    a, nodes = parse()
    log(f'started, {len(nodes)} nodes')
    # A link in the kernel does not wait for a CPU; this one does. Ahead of the nodes it carries, its
    # packets are late by their drawn delay, not by the machine's load as well (it sleeps in select).
    try:
        os.setpriority(os.PRIO_PROCESS, 0, -10)
    except OSError as error:
        log(f'priority unchanged: {error}')
    rng = random.Random(a.seed)
    counts = {'relayed': 0, 'duplicated': 0, 'reordered': 0, 'dropped_full': 0, 'unroutable': 0, 'write_errors': 0}
    stopping = []
    signal.signal(signal.SIGTERM, lambda *_: stopping.append('SIGTERM'))
    signal.signal(signal.SIGINT, lambda *_: stopping.append('SIGINT'))
    deadline = time.monotonic() + a.max_s
    fds = {}  # fd -> node index
    by_address = {}  # 4-byte IPv4 address -> fd of that node's device
    # First every device in its namespace, up, with no route yet: nothing goes through the relay.
    # Few processes (one `ip` here, one per namespace): each costs up to a second at a load of 40.
    moves = []
    for i, (ns, address) in enumerate(nodes):
        fd = open_tun(f'flr{i}')
        fds[fd] = i
        by_address[bytes(int(x) for x in address.split('.'))] = fd
        moves.append(f'link set flr{i} netns {ns}')
    sh(['ip', '-batch', '-'], '\n'.join(moves) + '\n')
    # Up before any route: a packet routed to a device still down fails to be written (lost at setup).
    for i, (ns, _) in enumerate(nodes):
        sh(['ip', '-n', ns, 'link', 'set', f'flr{i}', 'up'])
    log('devices in place')
    # Then the routes, from a thread while the loop below already relays: a route in place before the
    # loop runs would hold its packets unread (and stall the links) for as long as the rest takes.
    routed = []

    def route():
        try:
            for i, (ns, address) in enumerate(nodes):
                routes = [f'route add {other}/32 dev flr{i} src {address}' for _, other in nodes if other != address]
                sh(['ip', '-n', ns, '-batch', '-'], '\n'.join(routes) + '\n')
            log('routes in place')
            routed.append(True)
        except Exception as error:  # the loop sees no 'ready' and ends; the lab reports stderr
            log(f'routing failed: {error}')
            routed.append(False)

    threading.Thread(target=route, daemon=True).start()

    held = []  # heap of (due, seq, fd, packet)
    last_due = {}  # (src fd, dst fd) -> due of the link's last packet (--in-order)
    seq = 0

    def hold(due, fd, packet):
        nonlocal seq
        if len(held) >= a.max_queue:
            counts['dropped_full'] += 1
            return
        seq += 1
        heapq.heappush(held, (due, seq, fd, packet))

    def send(fd, packet):
        try:
            os.write(fd, packet)
        except OSError:
            counts['write_errors'] += 1

    announced = False
    while not stopping and time.monotonic() < deadline:
        if routed and not announced:
            if not routed[0]:
                return 1
            print('ready', flush=True)
            announced = True
            counts['ready_s'] = round(time.monotonic() - STARTED, 2)
        now = time.monotonic()
        while held and held[0][0] <= now:
            _, _, fd, packet = heapq.heappop(held)
            send(fd, packet)
        wait = min(deadline - now, 0.05 if not announced else 0.5, (held[0][0] - now) if held else 0.5)
        try:
            ready, _, _ = select.select(list(fds), [], [], max(wait, 0))
        except InterruptedError:
            continue
        now = time.monotonic()
        for src in ready:
            for _ in range(256):  # bounded per wake, so held packets keep their times under a flood
                try:
                    packet = os.read(src, 65535)
                except BlockingIOError:
                    break
                if len(packet) < 20 or packet[0] >> 4 != 4:
                    continue  # IPv6 (router solicitations of the device itself): not the lab's traffic
                dst = by_address.get(packet[16:20])
                if dst is None or dst == src:
                    counts['unroutable'] += 1
                    continue
                counts['relayed'] += 1
                if a.reorder > 0 and rng.random() < a.reorder:
                    counts['reordered'] += 1
                    send(dst, packet)  # ahead of every packet still held on this link
                else:
                    delay = a.delay_ms + (rng.uniform(-a.jitter_ms, a.jitter_ms) if a.jitter_ms else 0)
                    due = now + max(delay, 0) / 1000
                    if a.in_order:
                        due = max(due, last_due.get((src, dst), 0))
                        last_due[(src, dst)] = due
                    hold(due, dst, packet)
                if a.duplicate > 0 and rng.random() < a.duplicate:
                    counts['duplicated'] += 1
                    extra = rng.uniform(0, max(a.jitter_ms, 1.0)) / 1000
                    hold(now + a.delay_ms / 1000 + extra, dst, packet)
    # What is still held goes out now (a heal does not drop packets the links had accepted).
    counts['flushed_at_end'] = len(held)
    while held:
        _, _, fd, packet = heapq.heappop(held)
        send(fd, packet)
    counts['ended_by'] = stopping[0] if stopping else 'max-s'
    print(json.dumps(counts), flush=True)
    for fd in fds:
        os.close(fd)  # the devices, and every route through them, go with their descriptors
    return 0


if __name__ == '__main__':
    sys.exit(main())
