#!/usr/bin/python3
"""protocol_client — a stockpipe client written from docs/PROTOCOL.md alone.

It speaks the wire protocol over ZeroMQ (transport `zmq`) with nothing but the
standard library and pyzmq, to prove that the document is enough:

  1. SUB to the events endpoint first, and wait until the feed is live
     (the broker heartbeats every 250 ms);
  2. one DEALER to the orders endpoint, whose first message is a HELLO
     (sender 0, producer id 0: "give me one"); the WELCOME that echoes its
     hello_id gives the producer id, and says the transport is zmq
     (PROTOCOL.md section 7);
  3. N purchases of quantity 1 of one product (at most 4096 orders per
     message) under that id, sequence numbers 1..N;
  4. exactly one result per order, matched by (producer id, seq), within 5 s;
  5. one stock event per accepted order, matched by (order_producer,
     order_seq), within 5 s;
  6. a garbage message (no reply may come) and an order of quantity 0
     (answered with status invalid); a HELLO for the reserved id 0xFFFFFFFE
     (refused: status bad) and one for our own id again (accepted, resumed);
  7. a snapshot that agrees with our last event, and STATS that count our
     accepted orders.

With --no-hello it skips the HELLO and the HELLO probes and picks its own
random producer id (0x80000000..0xFFFFFFFD), as clients written before the
HELLO did: the broker still serves them (PROTOCOL.md section 7).

Usage:
  protocol_client.py --orders ENDPOINT --events ENDPOINT --snapshot ENDPOINT
                     --product ID --count N [--no-hello]

Last line of output:
  protocol-client: sent N accepted A out_of_stock O invalid I events E
(the counts cover the N purchases).  Exit status 0 when every order got
exactly one result and every accepted order its event, 1 otherwise.
"""

import argparse
import os
import random
import struct
import sys
import time

import zmq

# --- the wire format (docs/PROTOCOL.md, "Messages" and "Records") ---------

MAGIC = 0x31575053  # b"SPW1" read as a little-endian uint32
VERSION = 2
MAX_RECORDS = 4096
QTY_MAX = 1000000

MSG_ORDERS, MSG_RESULTS, MSG_EVENTS, MSG_HEARTBEAT = 1, 2, 3, 4
MSG_CREDIT, MSG_EOS, MSG_EOS_ACK = 5, 6, 7
MSG_STATS, MSG_SNAP_REQ, MSG_SNAP_BEGIN, MSG_SNAP_ROWS, MSG_SNAP_END = 8, 9, 10, 11, 12
MSG_HELLO, MSG_WELCOME = 13, 14
KIND_MAX = MSG_WELCOME
CTR_ORDERS, CTR_CAPACITY, CTR_ROWS, CTR_TRANSPORT = 2, 17, 20, 21
# the WELCOME's own counters (and HELD, which also ends a snapshot)
(CTR_HELD, CTR_HELLO_STATUS, CTR_PRODUCER_ID, CTR_HELLO_ID, CTR_HELLO_REV, CTR_ORDER_MSG_MAX,
 CTR_PATH_DEPTH, CTR_BROKER_PID, CTR_DEDUP_WINDOW, CTR_SESSION_FLAGS) = range(24, 34)
# a shard's product ids (broker --products): lowest | highest << 32; absent when not a shard
CTR_PRODUCT_RANGE = 34

HELLO_REV, HELLO_OPEN = 1, 1
HELLO_STATUS_NAMES = ["ok", "id_taken", "no_room", "bad", "peer_full"]
HELLO_OK, HELLO_ID_TAKEN, HELLO_NO_ROOM, HELLO_BAD = range(4)
WELCOME_RESUMED = 0x01  # SESSION_FLAGS: the id's window and holds were there already
TRANSPORT_ZMQ = 2
SYSTEM_PRODUCER = 0xFFFFFFFE  # the broker's own orders: no client may have it

ORDER_PURCHASE, ORDER_RESTOCK = 1, 2

STATUS_NAMES = ["accepted", "out_of_stock", "unknown_product", "invalid", "duplicate",
                "conflict", "no_hold", "no_room"]
ACCEPTED, OUT_OF_STOCK, UNKNOWN_PRODUCT, INVALID, DUPLICATE = range(5)

# magic, version, kind, count, sender, batch
HDR = struct.Struct("<IBBHII")
# type, flags, reserved, producer_id, seq, product_id, quantity, sched_ns
ORDER = struct.Struct("<BBHIQIIQ")
# producer_id, status, type, worker_id, original, seq, product_id, stock_after, sched_ns,
# applied_ns
RESULT = struct.Struct("<IBBBBQIIQQ")
# pub_seq, publisher_id, product_id, old_stock, new_stock, row_version,
# order_producer, order_seq, ts_ns
EVENT = struct.Struct("<QIIIIIIQQ")
# pub_seq, publisher_id, state, orders_applied, ts_ns, pid, reserved
HEARTBEAT = struct.Struct("<QIIQQII")
# id, index, reserved, value
COUNTER = struct.Struct("<HHIQ")
# id, stock, version, weight_g, expiry, initial_stock, price_cents, sold, restocked,
# name, category (NUL-padded UTF-8)
SNAPROW = struct.Struct("<IIIIIIQQQ48s32s")
# rev, op, flags, producer_id, reply_tag, pid, reserved, hello_id, reserved2
HELLO = struct.Struct("<HBBIQIIQQ")

assert (HDR.size, ORDER.size, RESULT.size, EVENT.size, HEARTBEAT.size, COUNTER.size,
        SNAPROW.size, HELLO.size) == (16, 32, 40, 48, 40, 16, 128, 40)

RECORD_SIZE = {MSG_ORDERS: ORDER.size, MSG_RESULTS: RESULT.size,
               MSG_EVENTS: EVENT.size, MSG_HEARTBEAT: HEARTBEAT.size,
               MSG_STATS: COUNTER.size, MSG_SNAP_BEGIN: COUNTER.size,
               MSG_SNAP_ROWS: SNAPROW.size, MSG_SNAP_END: COUNTER.size,
               MSG_HELLO: HELLO.size, MSG_WELCOME: COUNTER.size}

TIMEOUT_S = 5.0


class ProtocolError(Exception):
    pass


def encode_orders(producer_id, batch, orders):
    """orders: list of (type, seq, product_id, quantity)."""
    parts = [HDR.pack(MAGIC, VERSION, MSG_ORDERS, len(orders), producer_id, batch)]
    for otype, seq, product, qty in orders:
        parts.append(ORDER.pack(otype, 0, 0, producer_id, seq, product, qty,
                                time.monotonic_ns()))
    return b"".join(parts)


def encode_hello(producer_id, hello_id):
    """A HELLO message: header `sender` 0 (we have no id yet), one record.
    Over zmq the reply tag is 0: the WELCOME comes back on this DEALER."""
    return (HDR.pack(MAGIC, VERSION, MSG_HELLO, 1, 0, 0)
            + HELLO.pack(HELLO_REV, HELLO_OPEN, 0, producer_id, 0, os.getpid(), 0, hello_id, 0))


def decode(msg):
    """Checks a message the way the C side does (sp_wire_check) and returns
    (header tuple, list of record tuples)."""
    if len(msg) < HDR.size:
        raise ProtocolError(f"message of {len(msg)} bytes is shorter than a header")
    magic, version, kind, count, sender, batch = HDR.unpack_from(msg, 0)
    if magic != MAGIC:
        raise ProtocolError(f"bad magic 0x{magic:08x}")
    if version != VERSION:
        raise ProtocolError(f"bad version {version}")
    if not 1 <= kind <= KIND_MAX:
        raise ProtocolError(f"bad kind {kind}")
    if count > MAX_RECORDS:
        raise ProtocolError(f"count {count} > {MAX_RECORDS}")
    size = RECORD_SIZE.get(kind, 0)
    if len(msg) != HDR.size + count * size:
        raise ProtocolError(f"kind {kind} count {count}: {len(msg)} bytes, "
                            f"expected {HDR.size + count * size}")
    layout = {MSG_RESULTS: RESULT, MSG_EVENTS: EVENT, MSG_HEARTBEAT: HEARTBEAT,
              MSG_ORDERS: ORDER, MSG_STATS: COUNTER, MSG_SNAP_BEGIN: COUNTER,
              MSG_SNAP_ROWS: SNAPROW, MSG_SNAP_END: COUNTER, MSG_HELLO: HELLO,
              MSG_WELCOME: COUNTER}.get(kind)
    records = [layout.unpack_from(msg, HDR.size + i * size) for i in range(count)] if layout else []
    return (magic, version, kind, count, sender, batch), records


class Client:
    def __init__(self, args):
        self.args = args
        self.producer = 0  # our producer id: the WELCOME's (or our own with --no-hello)
        self.ctx = zmq.Context()
        self.sub = self.ctx.socket(zmq.SUB)
        self.sub.setsockopt(zmq.LINGER, 0)
        self.sub.setsockopt(zmq.SUBSCRIBE, b"")
        self.sub.connect(args.events)
        self.dealer = self.ctx.socket(zmq.DEALER)
        self.dealer.setsockopt(zmq.LINGER, 0)
        self.dealer.connect(args.orders)
        self.poller = zmq.Poller()
        self.poller.register(self.sub, zmq.POLLIN)
        self.poller.register(self.dealer, zmq.POLLIN)
        self.batch = 0
        self.pending = {}      # first seq of an order message -> [seqs], in order
        self.results = {}      # seq -> result tuple
        self.events = {}       # order seq -> event tuple
        self.pub_last = {}     # publisher -> last pub_seq seen
        self.gaps = 0
        self.heartbeats = 0
        self.stats = {}        # (counter id, index) -> value, from the broker's STATS
        self.problems = []

    def close(self):
        self.sub.close()
        self.dealer.close()
        self.ctx.term()

    def problem(self, text):
        self.problems.append(text)
        print(f"protocol-client: problem: {text}", file=sys.stderr)

    # -- sending ----------------------------------------------------------

    def send(self, orders):
        """orders: list of (type, seq, product, qty); one message."""
        self.batch += 1
        self.dealer.send(encode_orders(self.producer, self.batch, orders))
        self.pending[orders[0][1]] = [o[1] for o in orders]

    # -- receiving --------------------------------------------------------

    def on_result_msg(self, msg):
        try:
            hdr, recs = decode(msg)
        except ProtocolError as e:
            self.problem(f"reply is not a valid message: {e}")
            return
        if hdr[2] != MSG_RESULTS:
            self.problem(f"reply of kind {hdr[2]}, expected {MSG_RESULTS} (results)")
            return
        seqs = [r[5] for r in recs]
        first = seqs[0] if seqs else None
        if first not in self.pending or self.pending[first] != seqs:
            self.problem(f"result message with seqs {seqs[:8]}... matches no order message")
            return
        del self.pending[first]
        for r in recs:
            producer, status, otype, worker, seq = r[0], r[1], r[2], r[3], r[5]
            if producer != self.producer:
                self.problem(f"result for producer {producer}, we are {self.producer}")
            elif seq in self.results:
                self.problem(f"second result for seq {seq}")
            elif status >= len(STATUS_NAMES):
                self.problem(f"seq {seq}: unknown status {status}")
            elif otype != ORDER_PURCHASE or worker != hdr[4]:
                self.problem(f"seq {seq}: type {otype}, worker {worker} in a message "
                             f"from worker {hdr[4]}")
            else:
                self.results[seq] = r

    def on_event_msg(self, msg):
        try:
            hdr, recs = decode(msg)
        except ProtocolError as e:
            self.problem(f"event feed: {e}")
            return
        kind, sender = hdr[2], hdr[4]
        if kind == MSG_HEARTBEAT:
            self.heartbeats += 1
            return
        if kind == MSG_EOS:
            self.problem("the broker ended the event stream")
            return
        if kind == MSG_STATS:
            for cid, index, _, value in recs:
                self.stats[(cid, index)] = value
            return
        if kind != MSG_EVENTS:
            return
        for e in recs:
            pub_seq, publisher = e[0], e[1]
            last = self.pub_last.get(publisher, pub_seq - 1)
            if pub_seq == 1:
                last = 0  # a (re)started publisher
            if pub_seq > last + 1:
                self.gaps += pub_seq - last - 1
            self.pub_last[publisher] = max(last, pub_seq)
            if publisher != sender:
                self.problem(f"event from publisher {publisher} in a message of {sender}")
            order_producer, order_seq = e[6], e[7]
            if order_producer != self.producer:
                continue  # someone else's order
            if order_seq in self.events:
                self.problem(f"second event for seq {order_seq}")
                continue
            if e[2] != self.args.product or e[3] != e[4] + 1:
                self.problem(f"event for seq {order_seq}: product {e[2]} "
                             f"{e[3]} -> {e[4]}, expected product {self.args.product} -1")
            self.events[order_seq] = e

    def pump(self, timeout_s):
        """Handles whatever arrives within timeout_s (one poll)."""
        for sock, _ in self.poller.poll(max(0, int(timeout_s * 1000))):
            while True:
                try:
                    msg = sock.recv(zmq.NOBLOCK)
                except zmq.Again:
                    break
                if sock is self.dealer:
                    self.on_result_msg(msg)
                else:
                    self.on_event_msg(msg)

    def hello(self, producer_id=0):
        """Says HELLO on the DEALER (asking for `producer_id`, 0: a new one)
        and returns the counters of the WELCOME that echoes its hello_id,
        {counter id: value}.  Results that arrive meanwhile are handled."""
        hello_id = random.SystemRandom().getrandbits(64)
        self.dealer.send(encode_hello(producer_id, hello_id))
        deadline = time.monotonic() + TIMEOUT_S
        while True:
            left = deadline - time.monotonic()
            if left <= 0 or not self.dealer.poll(int(left * 1000) + 1):
                raise ProtocolError("no WELCOME within 5 s")
            msg = self.dealer.recv()
            try:
                hdr, recs = decode(msg)
            except ProtocolError as e:
                self.problem(f"reply is not a valid message: {e}")
                continue
            if hdr[2] != MSG_WELCOME:
                self.on_result_msg(msg)
                continue
            counters = {c[0]: c[3] for c in recs}  # by id: unknown ids are ignored
            if CTR_HELLO_STATUS not in counters:
                self.problem("a WELCOME without HELLO_STATUS")
            elif counters.get(CTR_HELLO_ID) == hello_id:
                return counters

    def snapshot(self, endpoint):
        """Asks the broker's snapshot service for the whole table; returns
        {product id: (stock, version, name)}."""
        sock = self.ctx.socket(zmq.DEALER)
        sock.setsockopt(zmq.LINGER, 0)
        sock.connect(endpoint)
        req = 7
        sock.send(HDR.pack(MAGIC, VERSION, MSG_SNAP_REQ, 0, 0, req))
        rows, begun = {}, False
        try:
            while True:
                if not sock.poll(int(TIMEOUT_S * 1000)):
                    raise ProtocolError("no snapshot answer within 5 s")
                hdr, recs = decode(sock.recv())
                if hdr[5] != req:
                    raise ProtocolError(f"snapshot answer for request {hdr[5]}, not {req}")
                kind = hdr[2]
                if kind == MSG_SNAP_BEGIN:
                    begun = True
                elif kind == MSG_SNAP_ROWS and begun:
                    for r in recs:
                        name = r[9].split(b"\0", 1)[0].decode("utf-8")
                        rows[r[0]] = (r[1], r[2], name)
                elif kind == MSG_SNAP_END and begun:
                    sent = {(c[0], c[1]): c[3] for c in recs}.get((CTR_ROWS, 0))
                    if sent != len(rows):
                        raise ProtocolError(f"snapshot end says {sent} rows, got {len(rows)}")
                    return rows
                else:
                    raise ProtocolError(f"unexpected kind {kind} in a snapshot answer")
        finally:
            sock.close()

    def wait_for(self, done, timeout_s):
        deadline = time.monotonic() + timeout_s
        while not done():
            left = deadline - time.monotonic()
            if left <= 0:
                return False
            self.pump(min(left, 0.1))
        return True


def main():
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--orders", required=True, help="orders endpoint (ROUTER), e.g. ipc://...")
    ap.add_argument("--events", required=True, help="events endpoint (XPUB)")
    ap.add_argument("--snapshot", required=True, help="snapshot service endpoint (ROUTER)")
    ap.add_argument("--product", required=True, type=int, help="product id")
    ap.add_argument("--count", required=True, type=int, help="purchases to place")
    ap.add_argument("--no-hello", action="store_true",
                    help="no HELLO: pick a random producer id of our own (the old way)")
    args = ap.parse_args()
    if args.count < 1 or not 1 <= args.product <= 0xFFFFFFFF:
        ap.error("--count must be >= 1 and --product 1..4294967295")

    c = Client(args)
    try:
        # 1. the feed is live once anything (a heartbeat) comes through
        if not c.wait_for(lambda: c.heartbeats > 0 or c.events, TIMEOUT_S):
            c.problem("no heartbeat on the event feed within 5 s")

        # 2. HELLO: the WELCOME gives our producer id and describes the path
        per_msg = MAX_RECORDS
        if args.no_hello:
            c.producer = random.SystemRandom().randint(0x80000000, SYSTEM_PRODUCER - 1)
        else:
            w = c.hello()
            hstatus = w[CTR_HELLO_STATUS]
            if hstatus != HELLO_OK:
                name = HELLO_STATUS_NAMES[hstatus] if hstatus < len(HELLO_STATUS_NAMES) else "?"
                raise ProtocolError(f"HELLO refused: status {hstatus} ({name})")
            c.producer = w.get(CTR_PRODUCER_ID, 0)
            if c.producer == 0:
                raise ProtocolError("the WELCOME gave producer id 0")
            if w.get(CTR_TRANSPORT) != TRANSPORT_ZMQ:
                c.problem(f"the WELCOME says transport {w.get(CTR_TRANSPORT)}, not zmq (2)")
            if w.get(CTR_SESSION_FLAGS, 0) & WELCOME_RESUMED:
                c.problem("a new producer id came back marked resumed")
            if CTR_PRODUCT_RANGE in w:  # one shard of a split catalogue: its ids only
                lo, hi = w[CTR_PRODUCT_RANGE] & 0xFFFFFFFF, w[CTR_PRODUCT_RANGE] >> 32
                if not 1 <= lo <= hi:
                    c.problem(f"the WELCOME's product range {lo}-{hi} runs backwards")
            if w.get(CTR_ORDER_MSG_MAX, 0):  # 0 (zmq): only the wire's limit
                # orders and their results must both fit: results are larger
                per_msg = min(per_msg, (w[CTR_ORDER_MSG_MAX] - HDR.size) // RESULT.size)

        # 3. N purchases, at most per_msg per message
        n = args.count
        for first in range(1, n + 1, per_msg):
            last = min(n, first + per_msg - 1)
            c.send([(ORDER_PURCHASE, s, args.product, 1) for s in range(first, last + 1)])

        # 4. one result per order
        if not c.wait_for(lambda: not c.pending, TIMEOUT_S):
            c.problem(f"{n - len(c.results)} order(s) unanswered after 5 s")
        status = [0] * len(STATUS_NAMES)
        for seq in range(1, n + 1):
            if seq in c.results:
                status[c.results[seq][1]] += 1
                if c.results[seq][6] != args.product:
                    c.problem(f"result for seq {seq} names product {c.results[seq][6]}")
        accepted = {s for s, r in c.results.items() if r[1] == ACCEPTED and s <= n}

        # 5. one event per accepted order
        if not c.wait_for(lambda: accepted <= c.events.keys(), TIMEOUT_S):
            c.problem(f"{len(accepted - c.events.keys())} accepted order(s) without an event")
        for seq in c.events:
            if seq not in accepted:
                c.problem(f"event for seq {seq}, which was not accepted")

        # 6. garbage gets no answer; a zero quantity is answered as invalid
        c.dealer.send(b"garbage")
        probe = n + 1
        c.send([(ORDER_PURCHASE, probe, args.product, 0)])
        if not c.wait_for(lambda: probe in c.results, TIMEOUT_S):
            c.problem("the quantity-0 order was not answered within 5 s")
        elif c.results[probe][1] != INVALID:
            c.problem(f"the quantity-0 order got status {c.results[probe][1]}, expected 3")
        c.pump(0.2)  # anything more now would be an answer to the garbage

        # ... a HELLO for a reserved id is refused; one for our own id, from
        # our own pid, is accepted and resumes our window
        if not args.no_hello:
            bad = c.hello(SYSTEM_PRODUCER)[CTR_HELLO_STATUS]
            if bad != HELLO_BAD:
                c.problem(f"a HELLO for id 0x{SYSTEM_PRODUCER:08x} got status {bad}, expected 3")
            again = c.hello(c.producer)
            if again[CTR_HELLO_STATUS] != HELLO_OK or again.get(CTR_PRODUCER_ID) != c.producer:
                c.problem(f"a HELLO for our own id got status {again[CTR_HELLO_STATUS]}, "
                          f"id {again.get(CTR_PRODUCER_ID)}")
            elif not again.get(CTR_SESSION_FLAGS, 0) & WELCOME_RESUMED:
                c.problem("a HELLO for our own id was not marked resumed")

        # 7. the snapshot shows the stock our last event left, with its version
        try:
            rows = c.snapshot(args.snapshot)
            if accepted:
                last = c.events[max(accepted)]
                if rows.get(args.product, (None, None))[:2] != (last[4], last[5]):
                    c.problem(f"snapshot has product {args.product} at "
                              f"{rows.get(args.product)}, last event said stock {last[4]} "
                              f"version {last[5]}")
        except ProtocolError as e:
            c.problem(f"snapshot: {e}")

        # 8. the broker's STATS count our accepted orders (it sends ten a second)
        if not c.wait_for(lambda: c.stats.get((CTR_ORDERS, ACCEPTED), -1) >= len(accepted),
                          TIMEOUT_S):
            c.problem(f"STATS say {c.stats.get((CTR_ORDERS, ACCEPTED))} accepted, "
                      f"we had {len(accepted)}")

        extra = ", ".join(f"{STATUS_NAMES[i]} {status[i]}" for i in (UNKNOWN_PRODUCT, DUPLICATE))
        print(f"protocol-client: producer {c.producer} "
              f"({'own, no HELLO' if args.no_hello else 'from the WELCOME'}), {extra}, "
              f"quantity-0 order "
              f"{STATUS_NAMES[c.results[probe][1]] if probe in c.results else 'unanswered'}, "
              f"{c.heartbeats} heartbeats, {c.gaps} events missed, "
              f"{len(c.problems)} problem(s)")
        events_seen = len(accepted & c.events.keys())
        print(f"protocol-client: sent {n} accepted {status[ACCEPTED]} "
              f"out_of_stock {status[OUT_OF_STOCK]} invalid {status[INVALID]} "
              f"events {events_seen}")
        ok = (not c.problems and len(c.results) == n + 1 and not c.pending
              and events_seen == len(accepted))
        return 0 if ok else 1
    except ProtocolError as e:
        c.problem(str(e))
        return 1
    finally:
        c.close()


if __name__ == "__main__":
    sys.exit(main())
