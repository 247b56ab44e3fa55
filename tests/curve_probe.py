#!/usr/bin/python3
"""curve_probe — clients with and without the right CURVE keys against a broker
started with --curve-cert and --curve-clients (docs/PROTOCOL.md, section 12).

Four clients run at once, each with a DEALER on the orders endpoint and a SUB
on the events endpoint, and each sends one valid order message: a purchase
of quantity 1 of --product, under a producer id of its own.

  none          no CURVE at all (a plain ZeroMQ client)
  wrong-server  CURVE with a fresh key pair, expecting a server key that is
                not the broker's
  unlisted      CURVE with the broker's key and a valid certificate that is
                not in the broker's --curve-clients directory (--unlisted)
  listed        CURVE with a certificate that is there (--listed): the
                control, which must get its result and the events

Usage:
  curve_probe.py --orders EP --events EP --product ID --server-cert FILE
                 --listed FILE --unlisted FILE [--wait SECONDS]

Output, one line per client:
  curve-probe: MODE replies R accepted A events E
(R result messages, A of its orders accepted, E messages on its event feed).
Exit status 0 when the probe ran (the caller judges the counts), 1 on a
usage or set-up error.
"""

import argparse
import random
import struct
import sys
import time

import zmq
import zmq.auth

MAGIC, VERSION = 0x31575053, 2
MSG_ORDERS, MSG_RESULTS = 1, 2
ORDER_PURCHASE, ACCEPTED = 1, 0
HDR = struct.Struct("<IBBHII")
ORDER = struct.Struct("<BBHIQIIQ")
RESULT = struct.Struct("<IBBBBQIIQQ")


def order_message(producer, product):
    return (HDR.pack(MAGIC, VERSION, MSG_ORDERS, 1, producer, 1) +
            ORDER.pack(ORDER_PURCHASE, 0, 0, producer, 1, product, 1, time.monotonic_ns()))


class Probe:
    def __init__(self, ctx, mode, args, keys):
        self.mode = mode
        self.replies = self.accepted = self.events = 0
        self.producer = random.SystemRandom().randint(0x80000000, 0xFFFFFFFF)
        self.dealer = ctx.socket(zmq.DEALER)
        self.sub = ctx.socket(zmq.SUB)
        for sock in (self.dealer, self.sub):
            sock.setsockopt(zmq.LINGER, 0)
            if keys is not None:
                server_key, public, secret = keys
                sock.curve_serverkey = server_key
                sock.curve_publickey = public
                sock.curve_secretkey = secret
        self.sub.setsockopt(zmq.SUBSCRIBE, b"")
        self.sub.connect(args.events)
        self.dealer.connect(args.orders)
        self.dealer.send(order_message(self.producer, args.product))

    def handle(self, ready):
        if self.dealer in ready:
            while True:
                try:
                    msg = self.dealer.recv(zmq.NOBLOCK)
                except zmq.Again:
                    break
                self.replies += 1
                if len(msg) == HDR.size + RESULT.size and HDR.unpack_from(msg)[2] == MSG_RESULTS:
                    result = RESULT.unpack_from(msg, HDR.size)
                    if result[0] == self.producer and result[1] == ACCEPTED:
                        self.accepted += 1
        if self.sub in ready:
            while True:
                try:
                    self.sub.recv(zmq.NOBLOCK)
                except zmq.Again:
                    break
                self.events += 1

    def close(self):
        self.dealer.close()
        self.sub.close()


def main():
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--orders", required=True)
    ap.add_argument("--events", required=True)
    ap.add_argument("--product", required=True, type=int)
    ap.add_argument("--server-cert", required=True, help="the broker's public certificate")
    ap.add_argument("--listed", required=True, help="a listed client's secret certificate")
    ap.add_argument("--unlisted", required=True, help="an unlisted client's secret certificate")
    ap.add_argument("--wait", type=float, default=2.0, help="seconds to watch for answers")
    ap.add_argument("--max-wait", type=float, default=30.0,
                    help="seconds to wait at most for the listed client's answer and events")
    args = ap.parse_args()
    if not zmq.has("curve"):
        print("curve-probe: this libzmq has no CURVE", file=sys.stderr)
        return 1

    server_key, _ = zmq.auth.load_certificate(args.server_cert)
    listed_public, listed_secret = zmq.auth.load_certificate(args.listed)
    unlisted_public, unlisted_secret = zmq.auth.load_certificate(args.unlisted)
    fake_server, _ = zmq.curve_keypair()
    own_public, own_secret = zmq.curve_keypair()
    modes = [("none", None),
             ("wrong-server", (fake_server, own_public, own_secret)),
             ("unlisted", (server_key, unlisted_public, unlisted_secret)),
             ("listed", (server_key, listed_public, listed_secret))]

    ctx = zmq.Context()
    probes = [Probe(ctx, mode, args, keys) for mode, keys in modes]
    poller = zmq.Poller()
    for p in probes:
        poller.register(p.dealer, zmq.POLLIN)
        poller.register(p.sub, zmq.POLLIN)
    # everyone gets the whole wait: a refused client has had time to be
    # refused, and anything that slipped through has had time to arrive; the
    # listed client, on a slow machine, up to --max-wait for its answer and
    # an event (what it waits for is the event itself, not a time)
    listed = probes[-1]
    start = time.monotonic()
    deadline, hard = start + args.wait, start + args.max_wait
    while time.monotonic() < deadline or (
            (listed.replies == 0 or listed.events == 0) and time.monotonic() < hard):
        ready = dict(poller.poll(50))
        for p in probes:
            p.handle(ready)
    for p in probes:
        print(f"curve-probe: {p.mode} replies {p.replies} accepted {p.accepted} "
              f"events {p.events}")
        p.close()
    ctx.term()
    return 0


if __name__ == "__main__":
    sys.exit(main())
