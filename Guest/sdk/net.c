/*
 * net.c — the rx/tx rings and the event loop.
 *
 * Ring rules (lockstep_abi.h): `head` and `tail` are free-running byte
 * counters, offsets are counter & (capacity - 1), used = head - tail <=
 * capacity. A message is a 16-byte header, the payload and padding to a
 * multiple of 8, so every message starts 8-byte aligned. A message never
 * wraps: when it does not fit before the end of the data area the producer
 * fills the rest with an LS_MSG_PAD message if at least 16 bytes remain, or
 * just skips them if fewer (that is, 8) remain; either way those bytes
 * count as used, and the consumer skips them the same way.
 *
 * The guest consumes rx (advances its tail) and produces tx (advances its
 * head). The VMM touches the rings only during exits, so no memory
 * barriers are needed; the doorbell's "memory" clobber orders the
 * compiler. The guest keeps its own copies of the counters it owns (rx
 * tail, tx head) and validates the ones the VMM writes.
 */
#include "internal.h"

/* A partial DATA message is written into leftover room at the end of the
 * tx data area (instead of flushing) only if it carries at least this. */
#define TX_MIN_PARTIAL 512u

static struct {
  int attached;
  struct ls_ring *rx, *tx;
  ls_u8 *rx_data, *tx_data;
  ls_u64 rx_cap, tx_cap;
  ls_u64 rx_tail;    /* our copy of rx->tail */
  ls_u64 rx_next;    /* tail after the message ls_net_next returned */
  int rx_current;    /* a returned message awaits consumption */
  ls_u64 tx_head;    /* our copy of tx->head */
  ls_u64 tx_payload; /* largest payload of one tx message */
} net;

static inline ls_u64 load(const ls_u64 *p) { return *(const volatile ls_u64 *)p; }
static inline void store(ls_u64 *p, ls_u64 v) { *(volatile ls_u64 *)p = v; }
static inline ls_u64 pad8(ls_u64 n) { return (n + 7) & ~7ull; }
static inline ls_u64 addr(const void *p) { return (ls_u64)(unsigned long)p; }

static int valid_capacity(ls_u64 cap) {
  return cap >= LS_RING_MIN && cap <= LS_RING_MAX && (cap & (cap - 1)) == 0;
}

static void flush_before_exit(void) {
  if (net.attached && ls_net_tx_queued() > 0) ls_net_flush();
}

static struct ls_ring *ring_alloc(ls_u64 cap) {
  struct ls_ring *r = ls_memalign(4096, sizeof(struct ls_ring) + cap);
  if (r) memset(r, 0, sizeof *r);
  return r;
}

ls_i32 ls_net_init(ls_u64 rx_capacity, ls_u64 tx_capacity) {
  if (net.attached) return LS_ESTATE;
  if (!valid_capacity(rx_capacity) || !valid_capacity(tx_capacity)) return LS_EINVAL;
  struct ls_ring *rx = ring_alloc(rx_capacity);
  struct ls_ring *tx = rx ? ring_alloc(tx_capacity) : 0;
  if (!tx) {
    ls_free(rx);
    return LS_ENOMEM;
  }
  ls_i32 r = ls_call4(LS_OP_NET_ATTACH, addr(rx), rx_capacity, addr(tx), tx_capacity);
  if (r != LS_OK) {
    ls_free(rx);
    ls_free(tx);
    return r;
  }
  memset(&net, 0, sizeof net);
  net.rx = rx;
  net.tx = tx;
  net.rx_data = (ls_u8 *)(rx + 1);
  net.tx_data = (ls_u8 *)(tx + 1);
  net.rx_cap = rx_capacity;
  net.tx_cap = tx_capacity;
  /* A message of size <= capacity/2 fits an empty ring at any offset
   * (either before the end or after wrapping), so sends always progress. */
  net.tx_payload = LS_MIN((ls_u64)LS_MSG_MAX_PAYLOAD, tx_capacity / 2 - LS_MSG_HEADER);
  net.attached = 1;
  ls__exit_hook = flush_before_exit;
  return LS_OK;
}

int ls_net_attached(void) { return net.attached; }

/* ---- rx: consumer ----------------------------------------------------- */

void ls_net_consume(void) {
  if (!net.rx_current) return;
  net.rx_current = 0;
  net.rx_tail = net.rx_next;
  store(&net.rx->tail, net.rx_tail);
}

int ls_net_next(struct ls_net_event *ev) {
  if (!net.attached) return LS_ESTATE;
  ls_net_consume();
  const ls_u64 cap = net.rx_cap;
  for (;;) {
    ls_u64 tail = net.rx_tail;
    ls_u64 used = load(&net.rx->head) - tail;
    if (used == 0) return 0;
    if (used > cap || (used & 7)) return LS_ECORRUPT;
    ls_u64 off = tail & (cap - 1);
    ls_u64 to_end = cap - off;
    if (to_end < LS_MSG_HEADER) { /* no header fits here: skipped */
      if (used < to_end) return LS_ECORRUPT;
      net.rx_tail = tail + to_end;
      store(&net.rx->tail, net.rx_tail);
      continue;
    }
    if (used < LS_MSG_HEADER) return LS_ECORRUPT;
    const struct ls_msg *m = (const struct ls_msg *)(net.rx_data + off);
    ls_u16 type = m->type;
    ls_u32 length = m->length;
    if (type == LS_MSG_PAD) { /* the rest of the data area is padding */
      if (used < to_end) return LS_ECORRUPT;
      net.rx_tail = tail + to_end;
      store(&net.rx->tail, net.rx_tail);
      continue;
    }
    ls_u64 size = LS_MSG_HEADER + pad8(length);
    if (length > LS_MSG_MAX_PAYLOAD || size > to_end || size > used) return LS_ECORRUPT;
    if (type != LS_MSG_OPEN && type != LS_MSG_DATA && type != LS_MSG_CLOSED) return LS_ECORRUPT;
    ev->conn = m->conn;
    ev->type = type;
    ev->length = length;
    ev->data = (const ls_u8 *)(m + 1);
    net.rx_next = tail + size;
    net.rx_current = 1;
    return 1;
  }
}

int ls_net_pending(void) {
  if (!net.attached) return 0;
  ls_u64 from = net.rx_current ? net.rx_next : net.rx_tail;
  return load(&net.rx->head) != from;
}

/* ---- tx: producer ----------------------------------------------------- */

ls_i32 ls_net_flush(void) { return ls_call4(LS_OP_NET_FLUSH, 0, 0, 0, 0); }

ls_u64 ls_net_tx_queued(void) { return net.attached ? net.tx_head - load(&net.tx->tail) : 0; }

static void put_header(ls_u8 *at, ls_u32 conn, ls_u16 type, ls_u32 length) {
  struct ls_msg *m = (struct ls_msg *)at;
  m->conn = conn;
  m->type = type;
  m->flags = 0;
  m->length = length;
  m->reserved = 0;
}

/* Appends one message carrying between min(len, TX_MIN_PARTIAL) and
 * min(len, tx_payload) bytes of `data`, flushing the ring if that is needed
 * to make room. *sent receives the payload bytes taken. */
static ls_i32 tx_append(ls_u32 conn, ls_u16 type, const ls_u8 *data, ls_u64 len, ls_u64 *sent) {
  const ls_u64 cap = net.tx_cap;
  const ls_u64 want = LS_MIN(len, net.tx_payload);
  const ls_u64 least = LS_MIN(want, (ls_u64)TX_MIN_PARTIAL);
  int flushed = 0;
  ls_u64 tail_at_flush = 0;
  for (;;) {
    ls_u64 head = net.tx_head;
    ls_u64 tail = load(&net.tx->tail);
    ls_u64 used = head - tail;
    if (used > cap || (tail & 7)) return LS_ECORRUPT;
    if (flushed && tail == tail_at_flush) return LS_EIO; /* NET_FLUSH drained nothing */
    ls_u64 free = cap - used;
    ls_u64 off = head & (cap - 1);
    ls_u64 to_end = cap - off;
    /* Contiguous bytes available at head, and at offset 0 after wrapping. */
    ls_u64 here = to_end >= LS_MSG_HEADER ? LS_MIN(to_end, free) : 0;
    ls_u64 wrapped = free > to_end ? free - to_end : 0;

    ls_u64 n;
    int wrap;
    if (here >= LS_MSG_HEADER + pad8(want)) {
      n = want, wrap = 0;
    } else if (wrapped >= LS_MSG_HEADER + pad8(want)) {
      n = want, wrap = 1;
    } else if (here >= LS_MSG_HEADER + least) {
      n = here - LS_MSG_HEADER, wrap = 0; /* a multiple of 8, < want */
    } else if (wrapped >= LS_MSG_HEADER + least) {
      n = wrapped - LS_MSG_HEADER, wrap = 1;
    } else {
      /* Full: the VMM drains the whole ring on NET_FLUSH. */
      ls_i32 r = ls_net_flush();
      if (r != LS_OK) return r;
      flushed = 1;
      tail_at_flush = tail;
      continue;
    }

    if (wrap) {
      if (to_end >= LS_MSG_HEADER) put_header(net.tx_data + off, 0, LS_MSG_PAD, (ls_u32)(to_end - LS_MSG_HEADER));
      head += to_end;
      off = 0;
    }
    ls_u8 *at = net.tx_data + off;
    put_header(at, conn, type, (ls_u32)n);
    if (n) memcpy(at + LS_MSG_HEADER, data, n);
    for (ls_u64 i = n; i < pad8(n); i++) at[LS_MSG_HEADER + i] = 0; /* no stale bytes */
    head += LS_MSG_HEADER + pad8(n);
    net.tx_head = head;
    store(&net.tx->head, head);
    *sent = n;
    return LS_OK;
  }
}

ls_i32 ls_net_send(ls_u32 conn, const void *data, size_t len) {
  if (!net.attached) return LS_ESTATE;
  const ls_u8 *p = data;
  while (len > 0) {
    ls_u64 sent;
    ls_i32 r = tx_append(conn, LS_MSG_DATA, p, len, &sent);
    if (r != LS_OK) return r;
    p += sent;
    len -= sent;
  }
  return LS_OK;
}

ls_i32 ls_net_close(ls_u32 conn) {
  if (!net.attached) return LS_ESTATE;
  ls_u64 sent;
  return tx_append(conn, LS_MSG_CLOSE, 0, 0, &sent);
}

/* ---- Event loop --------------------------------------------------------- */

int ls_net_dispatch(const struct ls_net_handlers *h) {
  struct ls_net_event ev;
  int n = 0, r;
  while ((r = ls_net_next(&ev)) > 0) {
    n++;
    switch (ev.type) {
    case LS_MSG_OPEN:
      if (h->on_open) h->on_open(h->ctx, ev.conn, (const char *)ev.data, ev.length);
      break;
    case LS_MSG_DATA:
      if (h->on_data) h->on_data(h->ctx, ev.conn, ev.data, ev.length);
      break;
    case LS_MSG_CLOSED:
      if (h->on_closed) h->on_closed(h->ctx, ev.conn);
      break;
    }
  }
  ls_net_consume();
  return r < 0 ? r : n;
}

ls_i64 ls_net_poll(const struct ls_net_handlers *h, ls_u64 deadline, ls_u64 *now_ns) {
  if (!net.attached) return LS_ESTATE;
  /* The VMM adds rx messages only during a WAIT and may block even though
   * older messages are still unread, so never block while any are left. */
  ls_i64 ready = ls_wait(ls_net_pending() ? LS_WAIT_POLL : deadline, now_ns);
  if (ready < 0) return ready;
  int r = ls_net_dispatch(h);
  return r < 0 ? r : ready;
}
