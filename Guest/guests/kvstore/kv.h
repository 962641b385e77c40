/*
 * kv.h — what every kvstore source file shares: the platform seam, the
 * argument and reply types, and the store's interface.
 *
 * The store, the RESP parser, the command layer and the snapshot codec are
 * plain C with no SDK calls, so the same files also build on the host
 * (-DKV_HOST) for the fuzz targets in Guest/fuzz. Only main.c talks to the
 * VMM.
 */
#ifndef KV_H
#define KV_H

#include "lockstep_abi.h" /* ls_u8 ... (freestanding, no SDK code) */

#include <stddef.h>

#ifdef KV_HOST
#include <string.h>
/* The host harness provides these (so it can inject allocation failures). */
void *kv_malloc(size_t n);
void kv_free(void *p);
void *kv_realloc(void *p, size_t n);
#else
#include "lockstep.h"
#define kv_malloc ls_malloc
#define kv_free ls_free
#define kv_realloc ls_realloc
#endif

#define KV_LIKELY(x) __builtin_expect(!!(x), 1)
#define KV_UNLIKELY(x) __builtin_expect(!!(x), 0)
#define KV_MIN(a, b) ((a) < (b) ? (a) : (b))
#define KV_MAX(a, b) ((a) > (b) ? (a) : (b))

#define KV_LLONG_MAX 0x7fffffffffffffffll
#define KV_LLONG_MIN (-KV_LLONG_MAX - 1)
#define KV_INT_MAX 0x7fffffff
#define KV_INT_MIN (-KV_INT_MAX - 1)

/* Redis's proto-max-bulk-len: no argument or string value is longer. */
#define KV_MAX_BULK (512ll * 1024 * 1024)

/* One command argument (binary safe, not NUL-terminated). */
struct kv_arg {
  const ls_u8 *ptr;
  size_t len;
};

/* ---- Utilities (util.c) --------------------------------------------------- */

/* Redis's string2ll: optional '-', no leading zeros, no '+', no spaces,
 * fewer than 21 bytes, no overflow. Returns 1 and sets *out, or 0. */
int kv_string2ll(const ls_u8 *s, size_t len, long long *out);
/* Decimal text of v into buf (at least 21 bytes); returns its length. */
size_t kv_ll2str(char *buf, long long v);
/* Case-insensitive comparison of an argument with a lower-case C string,
 * with Redis's strcasecmp semantics (the argument ends at its first NUL). */
int kv_arg_is(const struct kv_arg *a, const char *lower);
/* 64-bit hash (wyhash-style, 8 bytes at a time). */
ls_u64 kv_hash(const void *p, size_t len, ls_u64 seed);
/* Redis's stringmatchlen (KEYS and CONFIG GET globs). */
int kv_glob_match(const ls_u8 *pat, size_t plen, const ls_u8 *str, size_t slen, int nocase);

/* ---- Replies (reply.c) ---------------------------------------------------- */

/* Replies are appended to one buffer; when it fills, `flush` gets its
 * contents (and large payloads are handed to `flush` directly). */
struct kv_out {
  ls_u8 *buf;
  size_t len, cap;
  void (*flush)(void *ctx, const ls_u8 *data, size_t n);
  void *ctx;
};

void kv_out_raw(struct kv_out *o, const void *p, size_t n);
void kv_out_flush(struct kv_out *o);
void kv_out_status(struct kv_out *o, const char *s);  /* "+s\r\n" */
void kv_out_error(struct kv_out *o, const char *s);   /* "-s\r\n" (s includes ERR etc.) */
void kv_out_int(struct kv_out *o, long long v);       /* ":v\r\n" */
void kv_out_bulk(struct kv_out *o, const void *p, size_t n);
void kv_out_null(struct kv_out *o);                   /* "$-1\r\n" */
void kv_out_null_array(struct kv_out *o);             /* "*-1\r\n" */
void kv_out_array(struct kv_out *o, long long n);     /* "*n\r\n" */
/* An error built from pieces; \r and \n in it become spaces (as Redis's
 * addReplyErrorFormat does). Pieces are (pointer, length) pairs. */
void kv_out_error_parts(struct kv_out *o, const char *prefix, const struct kv_arg *parts, int n);

/* Shared reply strings (exactly as Redis 7 prints them). */
#define KV_ERR_WRONGTYPE "WRONGTYPE Operation against a key holding the wrong kind of value"
#define KV_ERR_NOTINT "ERR value is not an integer or out of range"
#define KV_ERR_SYNTAX "ERR syntax error"
#define KV_ERR_OVERFLOW "ERR increment or decrement would overflow"
#define KV_ERR_OOM "OOM command not allowed when used memory > 'maxmemory'."

/* ---- The store (store.c) ---------------------------------------------------- */

enum { KV_STRING = 1, KV_LIST = 2, KV_HASH = 3 };
#define KV_NO_EXPIRE (-1ll)

/* A list: a ring buffer of element pointers (capacity a power of two). */
struct kv_elem {
  size_t len;
  ls_u8 data[];
};
struct kv_list {
  struct kv_elem **items;
  size_t head, len, cap;
};

/* A hash: chained buckets for lookup plus a doubly linked list in insertion
 * order (HGETALL order, which matches Redis for small hashes). */
struct kv_field {
  struct kv_field *chain;
  struct kv_field *prev, *next; /* insertion order */
  ls_u64 hash;
  size_t flen, vlen;
  ls_u8 data[]; /* field then value */
};
struct kv_hash {
  struct kv_field **buckets;
  size_t mask; /* buckets - 1 */
  size_t count;
  struct kv_field *first, *last;
};

/* A key. String values up to the space reserved at creation live inside the
 * entry's own allocation (`inline_cap`); longer ones are separate. */
struct kv_entry {
  struct kv_entry *chain;
  ls_u64 hash;
  long long expire; /* absolute ms (kv_now_ms's time base) or KV_NO_EXPIRE */
  size_t exp_index; /* position in the expiry index when expire is set */
  size_t klen;
  size_t inline_cap; /* bytes reserved for a string value after the key */
  ls_u8 type;
  ls_u8 heap_value; /* string value is a separate allocation */
  union {
    struct {
      ls_u8 *ptr;
      size_t len, cap;
    } str;
    struct kv_list *list;
    struct kv_hash *hash;
  } v;
  ls_u8 key[];
};

/* Time, in ms: set by the event loop before running commands. Wall-clock
 * based (the clock hypercall's monotonic time plus the wall-clock offset
 * read at boot), so that absolute expiries survive a restart. */
extern long long kv_now_ms;

/* Statistics shown by INFO. */
struct kv_stats {
  ls_u64 commands, connections, expired_keys, dirty, rejected_oom;
  ls_u64 waits, rx_messages; /* event-loop turns (LS_OP_WAIT exits), rx messages handled */
  long long last_save_ms;
};
extern struct kv_stats kv_stats;

void kv_store_init(ls_u64 seed);
size_t kv_size(void);
size_t kv_expires(void);
/* Average remaining TTL (ms) of keys with an expiry, 0 if none. */
long long kv_avg_ttl(void);
/* The live entry for key (deletes it first if it has expired), or NULL. */
struct kv_entry *kv_lookup(const ls_u8 *key, size_t klen);
/* The entry for key, expired or not; changes nothing (safe while iterating). */
struct kv_entry *kv_find_raw(const ls_u8 *key, size_t klen);
/* Makes sure the table exists (0, or -1 out of memory). */
int kv_table_ready(void);
/* A new empty entry of `type`, not yet in the table. For strings,
 * `value_reserve` bytes are reserved inline. NULL when out of memory. */
struct kv_entry *kv_entry_new(const ls_u8 *key, size_t klen, int type, size_t value_reserve);
/* Frees an entry that is not in the table. */
void kv_entry_free(struct kv_entry *e);
/* Puts e in the table (after kv_table_ready), replacing (freeing) an entry
 * with the same key. Cannot fail. */
void kv_link(struct kv_entry *e);
/* kv_table_ready + kv_entry_new + kv_link: NULL when out of memory (nothing
 * changed). The key must not exist. */
struct kv_entry *kv_insert(const ls_u8 *key, size_t klen, int type, size_t value_reserve);
/* Changes an entry's type, freeing its old value (a new string is empty).
 * 0, or -1 out of memory (unchanged). */
int kv_set_type(struct kv_entry *e, int type);
/* Ensures a string entry can hold `n` bytes; 0 or -1 (out of memory,
 * unchanged). Keeps the first `keep` bytes. */
int kv_str_reserve(struct kv_entry *e, size_t n, size_t keep);
/* Removes and frees an entry. */
void kv_delete_entry(struct kv_entry *e);
/* Deletes key if present; returns 1 if it was (a live key). */
int kv_delete(const ls_u8 *key, size_t klen);
void kv_flush_all(void);
/* Sets or clears an entry's expiry; returns 0 or -1 (out of memory). */
int kv_set_expire(struct kv_entry *e, long long when_ms);
/* Makes sure the expiry index can take `n` more entries without
 * allocating (so a later kv_set_expire cannot fail). 0 or -1. */
int kv_reserve_expires(size_t n);
/* Active expiry: samples keys with an expiry, deletes expired ones;
 * returns the number deleted. */
size_t kv_active_expire(void);
/* Does some incremental rehashing; returns 1 while more is left. */
int kv_rehash_step(int buckets);
/* Iteration over every entry (do not modify the table while iterating). */
typedef int (*kv_visit_fn)(void *ctx, struct kv_entry *e);
int kv_foreach(kv_visit_fn fn, void *ctx);
/* Memory limit for commands that add data (bytes of heap in use); 0 = no
 * limit. Set by main.c from the heap size. */
extern size_t kv_maxmemory;
/* Bytes of heap in use (provided by main.c or the host harness). */
size_t kv_used_memory(void);

/* Lists. */
struct kv_list *kv_list_new(void);
void kv_list_free(struct kv_list *l);
/* Makes room for n more elements (0 or -1). */
int kv_list_reserve(struct kv_list *l, size_t n);
struct kv_elem *kv_elem_new(const ls_u8 *p, size_t n);
/* Push after kv_list_reserve: cannot fail. */
void kv_list_push(struct kv_list *l, struct kv_elem *el, int left);
struct kv_elem *kv_list_pop(struct kv_list *l, int left);
static inline struct kv_elem *kv_list_at(const struct kv_list *l, size_t i) {
  return l->items[(l->head + i) & (l->cap - 1)];
}

/* Hashes. */
struct kv_hash *kv_hash_new(void);
void kv_hash_free(struct kv_hash *h);
struct kv_field *kv_hash_get(const struct kv_hash *h, const ls_u8 *f, size_t flen);
/* A new field node (not in any hash), or NULL. */
struct kv_field *kv_field_new(const ls_u8 *f, size_t flen, const ls_u8 *v, size_t vlen);
/* Puts a node in h (which must have buckets: kv_hash_reserve), replacing
 * (freeing) a node with the same field. 1 if added, 0 if replaced. */
int kv_hash_put(struct kv_hash *h, struct kv_field *n);
int kv_hash_del(struct kv_hash *h, const ls_u8 *f, size_t flen);
/* Grows the table ahead of n insertions (0 or -1). */
int kv_hash_reserve(struct kv_hash *h, size_t n);

/* ---- Commands (commands.c) ------------------------------------------------ */

/* What the command layer needs to know about the client. */
struct kv_client {
  ls_u32 id;
  int close_after_reply; /* set by QUIT */
};

/* Hooks into the environment (main.c or the host harness). */
struct kv_env {
  /* SAVE: returns NULL on success or an error message (without "-"). */
  const char *(*save)(void);
  ls_u64 connected_clients;
  long long start_ms;
};
extern struct kv_env kv_env;

void kv_commands_init(void);
/* Runs one command (argc >= 1) and appends its reply to `o`. */
void kv_exec(struct kv_client *c, const struct kv_arg *argv, size_t argc, struct kv_out *o);

#endif
