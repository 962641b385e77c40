/*
 * snapshot.c — writing and loading the on-disk snapshot (format in
 * snapshot.h). Streams through one KV_SNAP_CHUNK buffer in both directions,
 * so a snapshot needs no more memory than the store itself.
 */
#include "snapshot.h"

struct kv_snap_state kv_snap_current;

static void put32(ls_u8 *p, ls_u32 v) {
  for (int i = 0; i < 4; i++) p[i] = (ls_u8)(v >> (8 * i));
}
static void put64(ls_u8 *p, ls_u64 v) {
  for (int i = 0; i < 8; i++) p[i] = (ls_u8)(v >> (8 * i));
}
static ls_u32 get32(const ls_u8 *p) {
  ls_u32 v = 0;
  for (int i = 3; i >= 0; i--) v = (v << 8) | p[i];
  return v;
}
static ls_u64 get64(const ls_u8 *p) {
  ls_u64 v = 0;
  for (int i = 7; i >= 0; i--) v = (v << 8) | p[i];
  return v;
}

static ls_u64 round_up(ls_u64 v, ls_u64 a) { return (v + a - 1) / a * a; }

/* ---- Writing ------------------------------------------------------------------ */

struct writer {
  struct kv_snap_io *io;
  ls_u8 *buf;
  size_t len;
  ls_u64 base, written, hash, keys;
  int err;
};

static void w_chunk(struct writer *w) {
  if (!w->len || w->err) return;
  w->hash = kv_hash(w->buf, w->len, w->hash);
  size_t padded = (size_t)round_up(w->len, KV_SNAP_SECTOR);
  memset(w->buf + w->len, 0, padded - w->len);
  if (w->io->write(w->io->ctx, w->base + w->written, w->buf, padded) != 0) w->err = 1;
  w->written += w->len;
  w->len = 0;
}

static void w_bytes(struct writer *w, const void *data, size_t n) {
  const ls_u8 *p = data;
  while (n && !w->err) {
    size_t k = KV_MIN(n, (size_t)KV_SNAP_CHUNK - w->len);
    memcpy(w->buf + w->len, p, k);
    w->len += k;
    p += k;
    n -= k;
    if (w->len == KV_SNAP_CHUNK) w_chunk(w);
  }
}

static void w_u8(struct writer *w, ls_u8 v) { w_bytes(w, &v, 1); }
static void w_u32(struct writer *w, ls_u32 v) {
  ls_u8 b[4];
  put32(b, v);
  w_bytes(w, b, 4);
}
static void w_u64(struct writer *w, ls_u64 v) {
  ls_u8 b[8];
  put64(b, v);
  w_bytes(w, b, 8);
}

static int live(const struct kv_entry *e) { return e->expire == KV_NO_EXPIRE || kv_now_ms <= e->expire; }

/* Bytes of e's record. */
static ls_u64 record_size(const struct kv_entry *e) {
  ls_u64 n = 1 + 8 + 4 + e->klen;
  switch (e->type) {
  case KV_STRING: n += 4 + e->v.str.len; break;
  case KV_LIST:
    n += 8;
    for (size_t i = 0; i < e->v.list->len; i++) n += 4 + kv_list_at(e->v.list, i)->len;
    break;
  case KV_HASH:
    n += 8;
    for (const struct kv_field *f = e->v.hash->first; f; f = f->next) n += 8 + f->flen + f->vlen;
    break;
  }
  return n;
}

struct sizing {
  ls_u64 bytes, keys;
};

static int size_visit(void *ctx, struct kv_entry *e) {
  struct sizing *s = ctx;
  if (!live(e)) return 0;
  s->bytes += record_size(e);
  s->keys++;
  return 0;
}

static int write_visit(void *ctx, struct kv_entry *e) {
  struct writer *w = ctx;
  if (!live(e)) return 0;
  w_u8(w, e->type);
  w_u64(w, (ls_u64)e->expire);
  w_u32(w, (ls_u32)e->klen);
  w_bytes(w, e->key, e->klen);
  switch (e->type) {
  case KV_STRING:
    w_u32(w, (ls_u32)e->v.str.len);
    w_bytes(w, e->v.str.ptr, e->v.str.len);
    break;
  case KV_LIST:
    w_u64(w, e->v.list->len);
    for (size_t i = 0; i < e->v.list->len; i++) {
      const struct kv_elem *el = kv_list_at(e->v.list, i);
      w_u32(w, (ls_u32)el->len);
      w_bytes(w, el->data, el->len);
    }
    break;
  case KV_HASH:
    w_u64(w, e->v.hash->count);
    for (const struct kv_field *f = e->v.hash->first; f; f = f->next) {
      w_u32(w, (ls_u32)f->flen);
      w_bytes(w, f->data, f->flen);
      w_u32(w, (ls_u32)f->vlen);
      w_bytes(w, f->data + f->flen, f->vlen);
    }
    break;
  }
  w->keys++;
  return w->err;
}

static void build_header(ls_u8 *h, ls_u64 offset, ls_u64 length, ls_u64 keys, ls_u64 checksum) {
  memset(h, 0, KV_SNAP_SECTOR);
  memcpy(h, KV_SNAP_MAGIC, 8);
  put32(h + 8, KV_SNAP_VERSION);
  put32(h + 12, 64);
  put64(h + 16, offset);
  put64(h + 24, length);
  put64(h + 32, keys);
  put64(h + 40, checksum);
  put64(h + 48, (ls_u64)kv_now_ms);
  put64(h + 56, kv_hash(h, 56, KV_SNAP_SEED));
}

static int overlaps(ls_u64 a, ls_u64 alen, ls_u64 b, ls_u64 blen) { return a < b + blen && b < a + alen; }

const char *kv_snapshot_save(struct kv_snap_io *io) {
  struct sizing s = {0, 0};
  kv_foreach(size_visit, &s);
  ls_u64 padded = round_up(s.bytes, KV_SNAP_SECTOR);
  /* Keep the previous snapshot intact if there is room for both. */
  ls_u64 at = KV_SNAP_DATA_ALIGN;
  if (kv_snap_current.length && overlaps(at, padded, kv_snap_current.offset, kv_snap_current.length)) {
    ls_u64 after = round_up(kv_snap_current.offset + kv_snap_current.length, KV_SNAP_DATA_ALIGN);
    if (after + padded <= io->disk_size) at = after;
  }
  if (at + padded > io->disk_size) return "ERR snapshot does not fit on the disk";
  struct writer w = {io, 0, 0, at, 0, KV_SNAP_SEED, 0, 0};
  w.buf = kv_malloc(KV_SNAP_CHUNK);
  if (!w.buf) return "ERR out of memory for the snapshot buffer";
  kv_foreach(write_visit, &w);
  w_chunk(&w);
  const char *err = 0;
  if (w.err)
    err = "ERR snapshot write failed (I/O error)";
  else if (w.written != s.bytes || w.keys != s.keys)
    err = "ERR snapshot size changed while writing"; /* cannot happen: single thread */
  else if (io->flush(io->ctx) != 0)
    err = "ERR snapshot flush failed (I/O error)";
  if (!err) {
    build_header(w.buf, at, s.bytes, s.keys, w.hash);
    if (io->write(io->ctx, 0, w.buf, KV_SNAP_SECTOR) != 0 || io->flush(io->ctx) != 0)
      err = "ERR snapshot header write failed (I/O error)";
  }
  kv_free(w.buf);
  if (err) return err;
  kv_snap_current.offset = at;
  kv_snap_current.length = s.bytes;
  kv_stats.dirty = 0;
  kv_stats.last_save_ms = kv_now_ms;
  return 0;
}

/* ---- Loading ------------------------------------------------------------------ */

struct reader {
  struct kv_snap_io *io;
  ls_u8 *buf;
  size_t len, pos;
  ls_u64 base, total, next, hash;
  ls_u8 *tmp[2]; /* scratch for keys and fields */
  size_t tmp_cap[2];
  const char *err;
};

static ls_u64 r_left(const struct reader *r) { return r->total - r->next + (r->len - r->pos); }

static int r_fill(struct reader *r) {
  if (r->next >= r->total) {
    r->err = "truncated data";
    return -1;
  }
  size_t n = (size_t)KV_MIN((ls_u64)KV_SNAP_CHUNK, r->total - r->next);
  if (r->io->read(r->io->ctx, r->base + r->next, r->buf, (size_t)round_up(n, KV_SNAP_SECTOR)) != 0) {
    r->err = "read error";
    return -1;
  }
  r->hash = kv_hash(r->buf, n, r->hash);
  r->next += n;
  r->len = n;
  r->pos = 0;
  return 0;
}

static int r_bytes(struct reader *r, void *dst, size_t n) {
  ls_u8 *d = dst;
  while (n) {
    if (r->pos == r->len && r_fill(r) != 0) return -1;
    size_t k = KV_MIN(n, r->len - r->pos);
    memcpy(d, r->buf + r->pos, k);
    r->pos += k;
    d += k;
    n -= k;
  }
  return 0;
}

static int r_u8(struct reader *r, ls_u8 *v) { return r_bytes(r, v, 1); }
static int r_u32(struct reader *r, ls_u32 *v) {
  ls_u8 b[4];
  if (r_bytes(r, b, 4) != 0) return -1;
  *v = get32(b);
  return 0;
}
static int r_u64(struct reader *r, ls_u64 *v) {
  ls_u8 b[8];
  if (r_bytes(r, b, 8) != 0) return -1;
  *v = get64(b);
  return 0;
}

/* A length that must fit in what is left of the data. */
static int r_len(struct reader *r, size_t *n) {
  ls_u32 v;
  if (r_u32(r, &v) != 0) return -1;
  if (v > r_left(r) || (long long)v > KV_MAX_BULK) {
    r->err = "bad length";
    return -1;
  }
  *n = v;
  return 0;
}

/* Reads n bytes into scratch buffer i. */
static ls_u8 *r_tmp(struct reader *r, int i, size_t n) {
  if (n > r->tmp_cap[i]) {
    ls_u8 *p = kv_malloc(n);
    if (!p) {
      r->err = "out of memory";
      return 0;
    }
    kv_free(r->tmp[i]);
    r->tmp[i] = p;
    r->tmp_cap[i] = n;
  }
  ls_u8 *p = r->tmp[i] ? r->tmp[i] : (ls_u8 *)"";
  if (n && r_bytes(r, p, n) != 0) return 0;
  return p;
}

static struct kv_entry *read_record(struct reader *r) {
  ls_u8 type;
  ls_u64 expire;
  size_t klen;
  if (r_u8(r, &type) != 0 || r_u64(r, &expire) != 0 || r_len(r, &klen) != 0) return 0;
  if (type < KV_STRING || type > KV_HASH || ((long long)expire < 0 && (long long)expire != KV_NO_EXPIRE)) {
    r->err = "bad record";
    return 0;
  }
  ls_u8 *key = r_tmp(r, 0, klen);
  if (!key) return 0;
  struct kv_entry *e = 0;
  if (type == KV_STRING) {
    size_t vlen;
    if (r_len(r, &vlen) != 0) return 0;
    if (!(e = kv_entry_new(key, klen, KV_STRING, vlen))) goto oom;
    if (r_bytes(r, e->v.str.ptr, vlen) != 0) goto fail;
    e->v.str.len = vlen;
  } else if (type == KV_LIST) {
    ls_u64 count;
    if (r_u64(r, &count) != 0) return 0;
    if (count == 0 || count > r_left(r) / 4) {
      r->err = "bad list length";
      return 0;
    }
    if (!(e = kv_entry_new(key, klen, KV_LIST, 0))) goto oom;
    if (kv_list_reserve(e->v.list, (size_t)count) != 0) goto oom;
    for (ls_u64 i = 0; i < count; i++) {
      size_t n;
      if (r_len(r, &n) != 0) goto fail;
      struct kv_elem *el = kv_malloc(sizeof *el + n);
      if (!el) goto oom;
      el->len = n;
      if (r_bytes(r, el->data, n) != 0) {
        kv_free(el);
        goto fail;
      }
      kv_list_push(e->v.list, el, 0);
    }
  } else {
    ls_u64 count;
    if (r_u64(r, &count) != 0) return 0;
    if (count == 0 || count > r_left(r) / 8) {
      r->err = "bad hash length";
      return 0;
    }
    if (!(e = kv_entry_new(key, klen, KV_HASH, 0))) goto oom;
    if (kv_hash_reserve(e->v.hash, (size_t)count) != 0) goto oom;
    for (ls_u64 i = 0; i < count; i++) {
      size_t flen, vlen;
      ls_u8 *f, *v;
      if (r_len(r, &flen) != 0 || !(f = r_tmp(r, 0, flen)) || r_len(r, &vlen) != 0 || !(v = r_tmp(r, 1, vlen)))
        goto fail;
      struct kv_field *node = kv_field_new(f, flen, v, vlen);
      if (!node) goto oom;
      kv_hash_put(e->v.hash, node);
    }
  }
  e->expire = (long long)expire; /* not indexed yet: the caller decides */
  return e;
oom:
  r->err = "out of memory";
fail:
  kv_entry_free(e);
  return 0;
}

int kv_snapshot_load(struct kv_snap_io *io, ls_u64 *keys, char *why, size_t why_len) {
  *keys = 0;
  const char *err = 0;
  struct reader r;
  memset(&r, 0, sizeof r);
  r.io = io;
  r.buf = kv_malloc(KV_SNAP_CHUNK);
  if (!r.buf) {
    err = "out of memory";
    goto done;
  }
  if (io->disk_size < KV_SNAP_SECTOR || io->read(io->ctx, 0, r.buf, KV_SNAP_SECTOR) != 0) {
    err = "cannot read the header";
    goto done;
  }
  ls_u8 *h = r.buf;
  if (memcmp(h, KV_SNAP_MAGIC, 8) != 0) {
    int blank = 1;
    for (size_t i = 0; i < KV_SNAP_SECTOR; i++) blank &= h[i] == 0;
    err = blank ? "no snapshot (blank disk)" : "no snapshot (no header magic)";
    goto done;
  }
  if (get32(h + 8) != KV_SNAP_VERSION || get32(h + 12) != 64 || get64(h + 56) != kv_hash(h, 56, KV_SNAP_SEED)) {
    err = "corrupt header (version or checksum)";
    goto done;
  }
  ls_u64 offset = get64(h + 16), length = get64(h + 24), count = get64(h + 32), checksum = get64(h + 40);
  long long saved_ms = (long long)get64(h + 48); /* r.buf is reused below */
  if (offset < KV_SNAP_DATA_ALIGN || offset % KV_SNAP_SECTOR || offset > io->disk_size ||
      round_up(length, KV_SNAP_SECTOR) > io->disk_size - offset) {
    err = "corrupt header (data outside the disk)";
    goto done;
  }
  r.base = offset;
  r.total = length;
  r.hash = KV_SNAP_SEED;
  if (kv_table_ready() != 0) {
    err = "out of memory";
    goto done;
  }
  for (ls_u64 i = 0; i < count; i++) {
    struct kv_entry *e = read_record(&r);
    if (!e) {
      err = r.err ? r.err : "bad record";
      goto done;
    }
    long long when = e->expire;
    e->expire = KV_NO_EXPIRE;
    if (kv_find_raw(e->key, e->klen)) { /* SAVE never writes a key twice */
      kv_entry_free(e);
      err = "duplicate key";
      goto done;
    }
    if (when != KV_NO_EXPIRE && kv_now_ms > when) { /* expired while down */
      kv_entry_free(e);
      continue;
    }
    kv_link(e);
    if (when != KV_NO_EXPIRE && kv_set_expire(e, when) != 0) {
      err = "out of memory";
      goto done;
    }
    (*keys)++;
  }
  if (r_left(&r) != 0) {
    err = "trailing data";
    goto done;
  }
  if (r.hash != checksum) {
    err = "data checksum mismatch";
    goto done;
  }
  kv_snap_current.offset = offset;
  kv_snap_current.length = length;
  kv_stats.last_save_ms = saved_ms;
done:
  kv_free(r.buf);
  kv_free(r.tmp[0]);
  kv_free(r.tmp[1]);
  if (err) {
    kv_flush_all();
    *keys = 0;
    size_t n = strlen(err);
    if (n >= why_len) n = why_len ? why_len - 1 : 0;
    if (why_len) {
      memcpy(why, err, n);
      why[n] = 0;
    }
    return -1;
  }
  return 0;
}
