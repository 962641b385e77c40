/*
 * store.c — the keyspace: a chained hash table with power-of-two buckets
 * and incremental rehashing (as Redis's dict), an expiry index for active
 * expiry sampling, lists (ring buffers) and hashes (chained table plus
 * insertion order).
 *
 * Every allocation is checked; a function that fails for lack of memory
 * leaves the store as it was.
 */
#include "kv.h"

long long kv_now_ms;
struct kv_stats kv_stats;
size_t kv_maxmemory;

#define INITIAL_BUCKETS 16u

static struct {
  struct kv_entry **table[2];
  size_t size[2]; /* buckets (0 or a power of two) */
  size_t used[2];
  long long rehash; /* next bucket of table[0] to move, -1 when not rehashing */
  ls_u64 seed;
  struct kv_entry **exp; /* entries with an expiry */
  size_t exp_n, exp_cap;
  ls_u64 rng;
} db;

void kv_store_init(ls_u64 seed) {
  memset(&db, 0, sizeof db);
  db.rehash = -1;
  db.seed = seed;
  db.rng = seed ^ 0x9e3779b97f4a7c15ull;
  if (!db.rng) db.rng = 1;
}

size_t kv_size(void) { return db.used[0] + db.used[1]; }
size_t kv_expires(void) { return db.exp_n; }

long long kv_avg_ttl(void) {
  if (!db.exp_n) return 0;
  long long sum = 0;
  size_t n = 0;
  for (size_t i = 0; i < db.exp_n; i++) {
    long long ttl = db.exp[i]->expire - kv_now_ms;
    if (ttl > 0) {
      sum += ttl;
      n++;
    }
  }
  return n ? sum / (long long)n : 0;
}

static ls_u64 next_random(void) {
  ls_u64 x = db.rng;
  x ^= x >> 12;
  x ^= x << 25;
  x ^= x >> 27;
  db.rng = x;
  return x * 0x2545f4914f6cdd1dull;
}

/* ---- Table ------------------------------------------------------------------- */

static struct kv_entry **alloc_buckets(size_t n) {
  if (n > ((size_t)-1) / sizeof(struct kv_entry *)) return 0;
  struct kv_entry **t = kv_malloc(n * sizeof *t);
  if (t) memset(t, 0, n * sizeof *t);
  return t;
}

/* Starts rehashing into a table of `n` buckets (a power of two). */
static void start_resize(size_t n) {
  if (db.rehash >= 0 || n == db.size[0]) return;
  struct kv_entry **t = alloc_buckets(n);
  if (!t) return; /* keep the current table; chains just get longer */
  if (!db.table[0]) {
    db.table[0] = t;
    db.size[0] = n;
    return;
  }
  db.table[1] = t;
  db.size[1] = n;
  db.used[1] = 0;
  db.rehash = 0;
}

int kv_rehash_step(int buckets) {
  if (db.rehash < 0) {
    /* Shrink a mostly empty table (Redis: below 10% full). */
    size_t used = db.used[0];
    if (db.size[0] > INITIAL_BUCKETS && used * 10 < db.size[0]) {
      size_t n = INITIAL_BUCKETS;
      while (n < used) n <<= 1;
      start_resize(n);
    }
    if (db.rehash < 0) return 0;
  }
  int empty_visits = buckets * 10;
  while (buckets-- > 0 && db.used[0] > 0) {
    while (db.table[0][db.rehash] == 0) {
      db.rehash++;
      if (--empty_visits == 0) return 1;
    }
    struct kv_entry *e = db.table[0][db.rehash];
    while (e) {
      struct kv_entry *next = e->chain;
      size_t b = e->hash & (db.size[1] - 1);
      e->chain = db.table[1][b];
      db.table[1][b] = e;
      db.used[0]--;
      db.used[1]++;
      e = next;
    }
    db.table[0][db.rehash] = 0;
    db.rehash++;
  }
  if (db.used[0] == 0) {
    kv_free(db.table[0]);
    db.table[0] = db.table[1];
    db.size[0] = db.size[1];
    db.used[0] = db.used[1];
    db.table[1] = 0;
    db.size[1] = 0;
    db.used[1] = 0;
    db.rehash = -1;
    return 0;
  }
  return 1;
}

static inline ls_u64 key_hash(const ls_u8 *key, size_t klen) { return kv_hash(key, klen, db.seed); }

/* The link that points at key's entry, or NULL; *table receives which
 * table holds it. */
static struct kv_entry **find_link(const ls_u8 *key, size_t klen, ls_u64 h, int *table) {
  for (int t = 0; t < 2; t++) {
    if (!db.size[t]) continue;
    struct kv_entry **link = &db.table[t][h & (db.size[t] - 1)];
    for (; *link; link = &(*link)->chain) {
      struct kv_entry *e = *link;
      if (e->hash == h && e->klen == klen && memcmp(e->key, key, klen) == 0) {
        *table = t;
        return link;
      }
    }
    if (db.rehash < 0) break;
  }
  return 0;
}

struct kv_entry *kv_find_raw(const ls_u8 *key, size_t klen) {
  int t;
  struct kv_entry **link = find_link(key, klen, key_hash(key, klen), &t);
  return link ? *link : 0;
}

static void exp_remove(struct kv_entry *e) {
  size_t i = e->exp_index;
  struct kv_entry *last = db.exp[--db.exp_n];
  db.exp[i] = last;
  last->exp_index = i;
  e->expire = KV_NO_EXPIRE;
}

static void free_value(struct kv_entry *e) {
  switch (e->type) {
  case KV_STRING:
    if (e->heap_value) kv_free(e->v.str.ptr);
    break;
  case KV_LIST: kv_list_free(e->v.list); break;
  case KV_HASH: kv_hash_free(e->v.hash); break;
  }
}

static void free_entry(struct kv_entry *e) {
  free_value(e);
  kv_free(e);
}

/* Unlinks e (found at `link` in table t) and frees it. */
static void unlink_entry(struct kv_entry **link, struct kv_entry *e, int t) {
  *link = e->chain;
  db.used[t]--;
  if (e->expire != KV_NO_EXPIRE) exp_remove(e);
  free_entry(e);
}

void kv_delete_entry(struct kv_entry *e) {
  int t;
  struct kv_entry **link = find_link(e->key, e->klen, e->hash, &t);
  if (link && *link == e) unlink_entry(link, e, t);
}

static int expired(const struct kv_entry *e) { return e->expire != KV_NO_EXPIRE && kv_now_ms > e->expire; }

struct kv_entry *kv_lookup(const ls_u8 *key, size_t klen) {
  if (db.rehash >= 0) kv_rehash_step(1);
  int t;
  struct kv_entry **link = find_link(key, klen, key_hash(key, klen), &t);
  if (!link) return 0;
  struct kv_entry *e = *link;
  if (KV_UNLIKELY(expired(e))) {
    unlink_entry(link, e, t);
    kv_stats.expired_keys++;
    return 0;
  }
  return e;
}

int kv_delete(const ls_u8 *key, size_t klen) {
  if (db.rehash >= 0) kv_rehash_step(1);
  int t;
  struct kv_entry **link = find_link(key, klen, key_hash(key, klen), &t);
  if (!link) return 0;
  int live = !expired(*link);
  if (!live) kv_stats.expired_keys++;
  unlink_entry(link, *link, t);
  return live;
}

int kv_table_ready(void) {
  if (!db.table[0]) start_resize(INITIAL_BUCKETS);
  return db.table[0] ? 0 : -1;
}

struct kv_entry *kv_entry_new(const ls_u8 *key, size_t klen, int type, size_t value_reserve) {
  if (type != KV_STRING) value_reserve = 0;
  if (klen > ((size_t)-1) / 4 || value_reserve > ((size_t)-1) / 4) return 0;
  struct kv_entry *e = kv_malloc(sizeof(struct kv_entry) + klen + value_reserve);
  if (!e) return 0;
  memset(e, 0, sizeof *e);
  e->hash = key_hash(key, klen);
  e->expire = KV_NO_EXPIRE;
  e->klen = klen;
  e->type = (ls_u8)type;
  memcpy(e->key, key, klen);
  switch (type) {
  case KV_STRING:
    e->v.str.ptr = e->key + klen;
    e->v.str.cap = value_reserve;
    e->inline_cap = value_reserve;
    break;
  case KV_LIST:
    e->v.list = kv_list_new();
    if (!e->v.list) goto oom;
    break;
  case KV_HASH:
    e->v.hash = kv_hash_new();
    if (!e->v.hash) goto oom;
    break;
  }
  return e;
oom:
  kv_free(e);
  return 0;
}

void kv_entry_free(struct kv_entry *e) {
  if (e) free_entry(e);
}

void kv_link(struct kv_entry *e) {
  if (db.rehash >= 0) kv_rehash_step(1);
  int t;
  struct kv_entry **old = find_link(e->key, e->klen, e->hash, &t);
  if (old) unlink_entry(old, *old, t);
  /* New entries go to the new table while rehashing. */
  t = db.rehash >= 0 ? 1 : 0;
  size_t b = e->hash & (db.size[t] - 1);
  e->chain = db.table[t][b];
  db.table[t][b] = e;
  db.used[t]++;
  if (db.rehash < 0 && db.used[0] >= db.size[0]) start_resize(db.size[0] * 2);
}

struct kv_entry *kv_insert(const ls_u8 *key, size_t klen, int type, size_t value_reserve) {
  if (kv_table_ready() != 0) return 0;
  struct kv_entry *e = kv_entry_new(key, klen, type, value_reserve);
  if (e) kv_link(e);
  return e;
}

int kv_set_type(struct kv_entry *e, int type) {
  if (e->type == type) return 0;
  union {
    struct kv_list *list;
    struct kv_hash *hash;
  } v = {0};
  if (type == KV_LIST && !(v.list = kv_list_new())) return -1;
  if (type == KV_HASH && !(v.hash = kv_hash_new())) return -1;
  free_value(e);
  e->type = (ls_u8)type;
  e->heap_value = 0;
  switch (type) {
  case KV_STRING:
    e->v.str.ptr = e->key + e->klen;
    e->v.str.len = 0;
    e->v.str.cap = e->inline_cap;
    break;
  case KV_LIST: e->v.list = v.list; break;
  case KV_HASH: e->v.hash = v.hash; break;
  }
  return 0;
}

int kv_str_reserve(struct kv_entry *e, size_t n, size_t keep) {
  if (n <= e->v.str.cap) return 0;
  ls_u8 *p = kv_malloc(n);
  if (!p) return -1;
  if (keep) memcpy(p, e->v.str.ptr, keep);
  if (e->heap_value) kv_free(e->v.str.ptr);
  e->v.str.ptr = p;
  e->v.str.cap = n;
  e->heap_value = 1;
  return 0;
}

void kv_flush_all(void) {
  for (int t = 0; t < 2; t++) {
    for (size_t b = 0; b < db.size[t]; b++) {
      struct kv_entry *e = db.table[t][b];
      while (e) {
        struct kv_entry *next = e->chain;
        free_entry(e);
        e = next;
      }
    }
    kv_free(db.table[t]);
  }
  kv_free(db.exp);
  ls_u64 seed = db.seed, rng = db.rng;
  memset(&db, 0, sizeof db);
  db.rehash = -1;
  db.seed = seed;
  db.rng = rng;
}

int kv_reserve_expires(size_t n) {
  if (db.exp_n + n <= db.exp_cap) return 0;
  size_t cap = db.exp_cap ? db.exp_cap : 16;
  while (cap < db.exp_n + n) {
    if (cap > ((size_t)-1) / 2 / sizeof(struct kv_entry *)) return -1;
    cap *= 2;
  }
  struct kv_entry **v = kv_realloc(db.exp, cap * sizeof *v);
  if (!v) return -1;
  db.exp = v;
  db.exp_cap = cap;
  return 0;
}

int kv_set_expire(struct kv_entry *e, long long when_ms) {
  if (when_ms == KV_NO_EXPIRE) {
    if (e->expire != KV_NO_EXPIRE) exp_remove(e);
    return 0;
  }
  if (e->expire == KV_NO_EXPIRE) {
    if (kv_reserve_expires(1) != 0) return -1;
    e->exp_index = db.exp_n;
    db.exp[db.exp_n++] = e;
  }
  e->expire = when_ms;
  return 0;
}

size_t kv_active_expire(void) {
  /* Redis's active expiry cycle: sample 20 keys with an expiry, delete the
   * expired ones, and go on while more than a quarter were expired (within
   * a budget). Shrinks the index when it is mostly empty. */
  size_t deleted = 0;
  for (int round = 0; round < 100 && db.exp_n > 0; round++) {
    size_t sample = KV_MIN((size_t)20, db.exp_n), hit = 0;
    for (size_t i = 0; i < sample && db.exp_n > 0; i++) {
      struct kv_entry *e = db.exp[next_random() % db.exp_n];
      if (expired(e)) {
        kv_delete_entry(e);
        kv_stats.expired_keys++;
        hit++;
      }
    }
    deleted += hit;
    if (hit * 4 <= sample) break;
  }
  if (db.exp_cap > 64 && db.exp_n * 4 < db.exp_cap) {
    struct kv_entry **v = kv_realloc(db.exp, db.exp_cap / 2 * sizeof *v);
    if (v) {
      db.exp = v;
      db.exp_cap /= 2;
    }
  }
  return deleted;
}

int kv_foreach(kv_visit_fn fn, void *ctx) {
  for (int t = 0; t < 2; t++) {
    for (size_t b = 0; b < db.size[t]; b++) {
      for (struct kv_entry *e = db.table[t][b]; e; e = e->chain) {
        int r = fn(ctx, e);
        if (r) return r;
      }
    }
  }
  return 0;
}

/* ---- Lists ---------------------------------------------------------------- */

struct kv_list *kv_list_new(void) {
  struct kv_list *l = kv_malloc(sizeof *l);
  if (l) memset(l, 0, sizeof *l);
  return l;
}

void kv_list_free(struct kv_list *l) {
  if (!l) return;
  for (size_t i = 0; i < l->len; i++) kv_free(kv_list_at(l, i));
  kv_free(l->items);
  kv_free(l);
}

static int list_resize(struct kv_list *l, size_t cap) {
  struct kv_elem **items = kv_malloc(cap * sizeof *items);
  if (!items) return -1;
  for (size_t i = 0; i < l->len; i++) items[i] = kv_list_at(l, i);
  kv_free(l->items);
  l->items = items;
  l->cap = cap;
  l->head = 0;
  return 0;
}

int kv_list_reserve(struct kv_list *l, size_t n) {
  if (l->len + n <= l->cap) return 0;
  size_t cap = l->cap ? l->cap : 8;
  while (cap < l->len + n) {
    if (cap > ((size_t)-1) / 4 / sizeof(struct kv_elem *)) return -1;
    cap *= 2;
  }
  return list_resize(l, cap);
}

struct kv_elem *kv_elem_new(const ls_u8 *p, size_t n) {
  if (n > ((size_t)-1) / 2) return 0;
  struct kv_elem *el = kv_malloc(sizeof *el + n);
  if (!el) return 0;
  el->len = n;
  memcpy(el->data, p, n);
  return el;
}

void kv_list_push(struct kv_list *l, struct kv_elem *el, int left) {
  size_t mask = l->cap - 1;
  if (left) {
    l->head = (l->head - 1) & mask;
    l->items[l->head] = el;
  } else {
    l->items[(l->head + l->len) & mask] = el;
  }
  l->len++;
}

struct kv_elem *kv_list_pop(struct kv_list *l, int left) {
  if (!l->len) return 0;
  size_t mask = l->cap - 1;
  struct kv_elem *el;
  if (left) {
    el = l->items[l->head];
    l->head = (l->head + 1) & mask;
  } else {
    el = l->items[(l->head + l->len - 1) & mask];
  }
  l->len--;
  if (l->cap > 64 && l->len * 8 < l->cap) list_resize(l, l->cap / 4); /* failure is fine */
  return el;
}

/* ---- Hashes ------------------------------------------------------------------ */

struct kv_hash *kv_hash_new(void) {
  struct kv_hash *h = kv_malloc(sizeof *h);
  if (h) memset(h, 0, sizeof *h);
  return h;
}

void kv_hash_free(struct kv_hash *h) {
  if (!h) return;
  struct kv_field *f = h->first;
  while (f) {
    struct kv_field *next = f->next;
    kv_free(f);
    f = next;
  }
  kv_free(h->buckets);
  kv_free(h);
}

static int hash_resize(struct kv_hash *h, size_t n) {
  struct kv_field **b = kv_malloc(n * sizeof *b);
  if (!b) return -1;
  memset(b, 0, n * sizeof *b);
  for (struct kv_field *f = h->first; f; f = f->next) {
    size_t i = f->hash & (n - 1);
    f->chain = b[i];
    b[i] = f;
  }
  kv_free(h->buckets);
  h->buckets = b;
  h->mask = n - 1;
  return 0;
}

int kv_hash_reserve(struct kv_hash *h, size_t n) {
  size_t want = h->count + n;
  size_t cur = h->buckets ? h->mask + 1 : 0;
  if (want <= cur) return 0;
  size_t size = cur ? cur : 8;
  while (size < want) {
    if (size > ((size_t)-1) / 4 / sizeof(struct kv_field *)) return -1;
    size *= 2;
  }
  return hash_resize(h, size);
}

static struct kv_field **field_link(const struct kv_hash *h, const ls_u8 *f, size_t flen, ls_u64 hv) {
  if (!h->buckets) return 0;
  struct kv_field **link = &h->buckets[hv & h->mask];
  for (; *link; link = &(*link)->chain) {
    struct kv_field *x = *link;
    if (x->hash == hv && x->flen == flen && memcmp(x->data, f, flen) == 0) return link;
  }
  return 0;
}

struct kv_field *kv_hash_get(const struct kv_hash *h, const ls_u8 *f, size_t flen) {
  struct kv_field **link = field_link(h, f, flen, key_hash(f, flen));
  return link ? *link : 0;
}

struct kv_field *kv_field_new(const ls_u8 *f, size_t flen, const ls_u8 *v, size_t vlen) {
  if (flen > ((size_t)-1) / 4 || vlen > ((size_t)-1) / 4) return 0;
  struct kv_field *n = kv_malloc(sizeof *n + flen + vlen);
  if (!n) return 0;
  memset(n, 0, sizeof *n);
  n->hash = key_hash(f, flen);
  n->flen = flen;
  n->vlen = vlen;
  memcpy(n->data, f, flen);
  memcpy(n->data + flen, v, vlen);
  return n;
}

int kv_hash_put(struct kv_hash *h, struct kv_field *n) {
  struct kv_field **link = field_link(h, n->data, n->flen, n->hash);
  if (link) { /* replace the old node in place (chain and order) */
    struct kv_field *old = *link;
    n->chain = old->chain;
    *link = n;
    n->prev = old->prev;
    n->next = old->next;
    if (old->prev) old->prev->next = n; else h->first = n;
    if (old->next) old->next->prev = n; else h->last = n;
    kv_free(old);
    return 0;
  }
  size_t i = n->hash & h->mask;
  n->chain = h->buckets[i];
  h->buckets[i] = n;
  n->next = 0;
  n->prev = h->last;
  if (h->last) h->last->next = n; else h->first = n;
  h->last = n;
  h->count++;
  if (h->count > h->mask + 1) hash_resize(h, (h->mask + 1) * 2); /* failure is fine */
  return 1;
}

int kv_hash_del(struct kv_hash *h, const ls_u8 *f, size_t flen) {
  struct kv_field **link = field_link(h, f, flen, key_hash(f, flen));
  if (!link) return 0;
  struct kv_field *x = *link;
  *link = x->chain;
  if (x->prev) x->prev->next = x->next; else h->first = x->next;
  if (x->next) x->next->prev = x->prev; else h->last = x->prev;
  h->count--;
  kv_free(x);
  if (h->mask + 1 > 64 && h->count * 8 < h->mask + 1) hash_resize(h, (h->mask + 1) / 4);
  return 1;
}
