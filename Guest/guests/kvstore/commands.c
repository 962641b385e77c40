/*
 * commands.c — the command table and every command, replying exactly as
 * Redis 7.0 does (checked against redis-server 7.0.15: same order of
 * checks, same error strings, same reply types).
 *
 * Out of memory: a command that cannot allocate replies with Redis's OOM
 * error and leaves the store unchanged (MSET, LPUSH, HSET ... prepare all
 * their allocations before changing anything). Commands that add data are
 * also refused up front when the heap is nearly full (kv_maxmemory), as
 * Redis does with maxmemory.
 */
#include "kv.h"

struct kv_env kv_env;

struct ctx {
  struct kv_client *c;
  const struct kv_arg *argv;
  size_t argc;
  struct kv_out *o;
  const struct cmd *cmd;
};

typedef void (*cmd_proc)(struct ctx *x);

enum {
  F_WRITE = 1,    /* changes the store */
  F_DENYOOM = 2,  /* may add data: refused when memory is short */
  F_READONLY = 4, /* reads the store */
  F_FAST = 8,
};

struct cmd {
  const char *name; /* full name in lower case, e.g. "config|get" */
  int arity;        /* > 0 exact, < 0 at least -arity (Redis's convention) */
  unsigned flags;
  cmd_proc proc;
  const struct cmd *subs; /* a container's subcommands (NULL-terminated) */
  int first_key, last_key, key_step;
};

/* ---- Helpers ------------------------------------------------------------------ */

#define ARG(i) (&x->argv[i])
/* A string literal as a kv_arg. */
#define LIT(s) ((struct kv_arg){(const ls_u8 *)(s), sizeof(s) - 1})

static void reply_oom(struct ctx *x) {
  kv_stats.rejected_oom++;
  kv_out_error(x->o, KV_ERR_OOM);
}

/* Redis's addReplyErrorArity. */
static void reply_arity(struct ctx *x, const char *fullname) {
  struct kv_arg parts[3] = {
      LIT("ERR wrong number of arguments for '"),
      {(const ls_u8 *)fullname, strlen(fullname)},
      LIT("' command"),
  };
  kv_out_error_parts(x->o, "", parts, 3);
}

/* Redis's addReplyErrorExpireTime. */
static void reply_expire_time(struct ctx *x) {
  struct kv_arg parts[3] = {
      LIT("ERR invalid expire time in '"),
      {(const ls_u8 *)x->cmd->name, strlen(x->cmd->name)},
      LIT("' command"),
  };
  kv_out_error_parts(x->o, "", parts, 3);
}

/* An argument as a C string would see it: up to its first NUL, at most max. */
static struct kv_arg cstr(const struct kv_arg *a, size_t max) {
  struct kv_arg r = {a->ptr, a->len < max ? a->len : max};
  const ls_u8 *nul = memchr(r.ptr, 0, r.len);
  if (nul) r.len = (size_t)(nul - r.ptr);
  return r;
}

/* getLongLongFromObjectOrReply: 0 and *v, or -1 after replying. */
static int get_ll(struct ctx *x, const struct kv_arg *a, long long *v, const char *msg) {
  if (kv_string2ll(a->ptr, a->len, v)) return 0;
  kv_out_error(x->o, msg ? msg : KV_ERR_NOTINT);
  return -1;
}

static void reply_entry_string(struct kv_out *o, const struct kv_entry *e) { kv_out_bulk(o, e->v.str.ptr, e->v.str.len); }

/* Looks a key up; replies WRONGTYPE (and returns -1) if it exists with
 * another type than `type`. */
static int lookup_typed(struct ctx *x, const struct kv_arg *key, int type, struct kv_entry **out) {
  struct kv_entry *e = kv_lookup(key->ptr, key->len);
  if (e && e->type != type) {
    kv_out_error(x->o, KV_ERR_WRONGTYPE);
    return -1;
  }
  *out = e;
  return 0;
}

/* Replaces a string entry's value (keeping the entry). 0 or -1 (OOM,
 * unchanged). */
static int set_string_value(struct kv_entry *e, const struct kv_arg *v) {
  if (e->type != KV_STRING) {
    /* Allocate the new value before dropping the old object. */
    ls_u8 *p = 0;
    if (v->len > e->inline_cap && !(p = kv_malloc(v->len ? v->len : 1))) return -1;
    if (kv_set_type(e, KV_STRING) != 0) {
      kv_free(p);
      return -1;
    }
    if (p) {
      e->v.str.ptr = p;
      e->v.str.cap = v->len ? v->len : 1;
      e->heap_value = 1;
    }
  } else if (kv_str_reserve(e, v->len, 0) != 0) {
    return -1;
  }
  memcpy(e->v.str.ptr, v->ptr, v->len);
  e->v.str.len = v->len;
  return 0;
}

/* ---- Connection and server ------------------------------------------------ */

static void cmd_ping(struct ctx *x) {
  if (x->argc > 2) {
    reply_arity(x, x->cmd->name);
    return;
  }
  if (x->argc == 1)
    kv_out_raw(x->o, "+PONG\r\n", 7);
  else
    kv_out_bulk(x->o, ARG(1)->ptr, ARG(1)->len);
}

static void cmd_echo(struct ctx *x) { kv_out_bulk(x->o, ARG(1)->ptr, ARG(1)->len); }

static void cmd_select(struct ctx *x) {
  long long id;
  if (get_ll(x, ARG(1), &id, 0) != 0) return;
  if (id < KV_INT_MIN || id > KV_INT_MAX) {
    kv_out_error(x->o, "ERR value is out of range, value must between -2147483648 and 2147483647");
    return;
  }
  if (id != 0) {
    kv_out_error(x->o, "ERR DB index is out of range");
    return;
  }
  kv_out_raw(x->o, "+OK\r\n", 5);
}

static void cmd_dbsize(struct ctx *x) { kv_out_int(x->o, (long long)kv_size()); }

static void cmd_flush(struct ctx *x) {
  if (!(x->argc == 1 || (x->argc == 2 && (kv_arg_is(ARG(1), "sync") || kv_arg_is(ARG(1), "async"))))) {
    kv_out_error(x->o, KV_ERR_SYNTAX);
    return;
  }
  kv_stats.dirty += kv_size();
  kv_flush_all();
  kv_out_raw(x->o, "+OK\r\n", 5);
}

struct keys_ctx {
  const struct kv_arg *pattern;
  int all;
  long long count;
  struct kv_out *o; /* NULL: count only */
};

static int keys_visit(void *p, struct kv_entry *e) {
  struct keys_ctx *k = p;
  if (e->expire != KV_NO_EXPIRE && kv_now_ms > e->expire) return 0;
  if (!k->all && !kv_glob_match(k->pattern->ptr, k->pattern->len, e->key, e->klen, 0)) return 0;
  k->count++;
  if (k->o) kv_out_bulk(k->o, e->key, e->klen);
  return 0;
}

static void cmd_keys(struct ctx *x) {
  struct keys_ctx k = {ARG(1), ARG(1)->len == 1 && ARG(1)->ptr[0] == '*', 0, 0};
  kv_foreach(keys_visit, &k); /* count, then send (nothing changes in between) */
  kv_out_array(x->o, k.count);
  k.o = x->o;
  k.count = 0;
  kv_foreach(keys_visit, &k);
}

static void cmd_type(struct ctx *x) {
  struct kv_entry *e = kv_lookup(ARG(1)->ptr, ARG(1)->len);
  const char *t = !e ? "+none\r\n" : e->type == KV_STRING ? "+string\r\n" : e->type == KV_LIST ? "+list\r\n" : "+hash\r\n";
  kv_out_raw(x->o, t, strlen(t));
}

static void cmd_save(struct ctx *x) {
  const char *err = kv_env.save ? kv_env.save() : "ERR no disk attached";
  if (err)
    kv_out_error(x->o, err);
  else
    kv_out_raw(x->o, "+OK\r\n", 5);
}

static void cmd_bgsave(struct ctx *x) {
  /* A synchronous save under Redis's BGSAVE reply. */
  const char *err = kv_env.save ? kv_env.save() : "ERR no disk attached";
  if (err)
    kv_out_error(x->o, err);
  else
    kv_out_status(x->o, "Background saving started");
}

static void cmd_lastsave(struct ctx *x) { kv_out_int(x->o, kv_stats.last_save_ms / 1000); }

/* ---- INFO ---------------------------------------------------------------------- */

struct text {
  char buf[2048];
  size_t len;
};

static void text_add(struct text *t, const char *s) {
  size_t n = strlen(s);
  if (t->len + n > sizeof t->buf) n = sizeof t->buf - t->len;
  memcpy(t->buf + t->len, s, n);
  t->len += n;
}

static void text_num(struct text *t, const char *name, long long v) {
  char num[24];
  size_t n = kv_ll2str(num, v);
  num[n] = 0;
  text_add(t, name);
  text_add(t, ":");
  text_add(t, num);
  text_add(t, "\r\n");
}

static int want_section(struct ctx *x, const char *name, int is_default) {
  if (x->argc == 1) return is_default;
  for (size_t i = 1; i < x->argc; i++) {
    if (kv_arg_is(ARG(i), name) || kv_arg_is(ARG(i), "all") || kv_arg_is(ARG(i), "everything")) return 1;
    if (is_default && kv_arg_is(ARG(i), "default")) return 1;
  }
  return 0;
}

static void cmd_info(struct ctx *x) {
  struct text t;
  t.len = 0;
  int sections = 0;
  long long uptime = (kv_now_ms - kv_env.start_ms) / 1000;
  if (want_section(x, "server", 1)) {
    if (sections++) text_add(&t, "\r\n");
    text_add(&t, "# Server\r\nredis_version:7.0.0\r\nredis_mode:standalone\r\nos:Lockstep guest\r\n"
                 "arch_bits:64\r\nmultiplexing_api:lockstep-rings\r\nserver:lockstep-kvstore\r\n");
    text_num(&t, "uptime_in_seconds", uptime);
    text_num(&t, "uptime_in_days", uptime / 86400);
    text_add(&t, "hz:10\r\n");
  }
  if (want_section(x, "clients", 1)) {
    if (sections++) text_add(&t, "\r\n");
    text_add(&t, "# Clients\r\n");
    text_num(&t, "connected_clients", (long long)kv_env.connected_clients);
  }
  if (want_section(x, "memory", 1)) {
    if (sections++) text_add(&t, "\r\n");
    text_add(&t, "# Memory\r\n");
    text_num(&t, "used_memory", (long long)kv_used_memory());
    text_num(&t, "maxmemory", (long long)kv_maxmemory);
    text_add(&t, "maxmemory_policy:noeviction\r\nmem_allocator:lockstep\r\n");
  }
  if (want_section(x, "persistence", 1)) {
    if (sections++) text_add(&t, "\r\n");
    text_add(&t, "# Persistence\r\nloading:0\r\n");
    text_num(&t, "rdb_changes_since_last_save", (long long)kv_stats.dirty);
    text_num(&t, "rdb_last_save_time", kv_stats.last_save_ms / 1000);
    text_add(&t, "aof_enabled:0\r\n");
  }
  if (want_section(x, "stats", 1)) {
    if (sections++) text_add(&t, "\r\n");
    text_add(&t, "# Stats\r\n");
    text_num(&t, "total_connections_received", (long long)kv_stats.connections);
    text_num(&t, "total_commands_processed", (long long)kv_stats.commands);
    text_num(&t, "expired_keys", (long long)kv_stats.expired_keys);
    text_num(&t, "rejected_oom_commands", (long long)kv_stats.rejected_oom);
    /* kvstore's own: event-loop turns (one LS_OP_WAIT exit each) and the rx
     * messages (OPEN, DATA, CLOSED) they delivered. */
    text_num(&t, "lockstep_waits", (long long)kv_stats.waits);
    text_num(&t, "lockstep_rx_messages", (long long)kv_stats.rx_messages);
  }
  if (want_section(x, "keyspace", 1)) {
    if (sections++) text_add(&t, "\r\n");
    text_add(&t, "# Keyspace\r\n");
    if (kv_size()) {
      char line[96], *p = line;
      memcpy(p, "db0:keys=", 9);
      p += 9;
      p += kv_ll2str(p, (long long)kv_size());
      memcpy(p, ",expires=", 9);
      p += 9;
      p += kv_ll2str(p, (long long)kv_expires());
      memcpy(p, ",avg_ttl=", 9);
      p += 9;
      p += kv_ll2str(p, kv_avg_ttl());
      *p++ = '\r';
      *p++ = '\n';
      *p = 0;
      text_add(&t, line);
    }
  }
  kv_out_bulk(x->o, t.buf, t.len);
}

/* ---- COMMAND and CONFIG -------------------------------------------------------- */

extern const struct cmd kv_command_table[];
static size_t command_count;

static void reply_cmd_info(struct kv_out *o, const struct cmd *c) {
  kv_out_array(o, 10);
  kv_out_bulk(o, c->name, strlen(c->name));
  kv_out_int(o, c->arity);
  int nflags = !!(c->flags & F_WRITE) + !!(c->flags & F_READONLY) + !!(c->flags & F_DENYOOM) + !!(c->flags & F_FAST);
  kv_out_array(o, nflags);
  if (c->flags & F_WRITE) kv_out_status(o, "write");
  if (c->flags & F_READONLY) kv_out_status(o, "readonly");
  if (c->flags & F_DENYOOM) kv_out_status(o, "denyoom");
  if (c->flags & F_FAST) kv_out_status(o, "fast");
  kv_out_int(o, c->first_key);
  kv_out_int(o, c->last_key);
  kv_out_int(o, c->key_step);
  kv_out_array(o, 0); /* ACL categories */
  kv_out_array(o, 0); /* tips */
  kv_out_array(o, 0); /* key specs */
  size_t nsubs = 0;
  if (c->subs)
    while (c->subs[nsubs].name) nsubs++;
  kv_out_array(o, (long long)nsubs);
  for (size_t i = 0; i < nsubs; i++) reply_cmd_info(o, &c->subs[i]);
}

static const struct cmd *lookup_command(const struct kv_arg *name);

static void cmd_command(struct ctx *x) {
  kv_out_array(x->o, (long long)command_count);
  for (size_t i = 0; i < command_count; i++) reply_cmd_info(x->o, &kv_command_table[i]);
}

static void cmd_command_count(struct ctx *x) { kv_out_int(x->o, (long long)command_count); }

static void cmd_command_docs(struct ctx *x) {
  /* No documentation: redis-cli then uses its built-in help. */
  kv_out_array(x->o, 0);
}

static void cmd_command_info(struct ctx *x) {
  if (x->argc == 2) {
    cmd_command(x);
    return;
  }
  kv_out_array(x->o, (long long)x->argc - 2);
  for (size_t i = 2; i < x->argc; i++) {
    const struct cmd *c = lookup_command(ARG(i));
    if (c)
      reply_cmd_info(x->o, c);
    else
      kv_out_null_array(x->o);
  }
}

static void cmd_command_list(struct ctx *x) {
  kv_out_array(x->o, (long long)command_count);
  for (size_t i = 0; i < command_count; i++)
    kv_out_bulk(x->o, kv_command_table[i].name, strlen(kv_command_table[i].name));
}

static struct {
  const char *name;
  const char *value;
} configs[] = {
    {"appendonly", "no"}, {"databases", "1"}, {"maxmemory", 0}, {"maxmemory-policy", "noeviction"}, {"save", ""},
};

static void cmd_config_get(struct ctx *x) {
  size_t n = sizeof configs / sizeof configs[0], hits = 0;
  int match[sizeof configs / sizeof configs[0]] = {0};
  for (size_t i = 0; i < n; i++)
    for (size_t j = 2; j < x->argc && !match[i]; j++)
      if (kv_glob_match(ARG(j)->ptr, ARG(j)->len, (const ls_u8 *)configs[i].name, strlen(configs[i].name), 1))
        match[i] = 1, hits++;
  kv_out_array(x->o, (long long)hits * 2);
  for (size_t i = 0; i < n; i++) {
    if (!match[i]) continue;
    kv_out_bulk(x->o, configs[i].name, strlen(configs[i].name));
    if (configs[i].value) {
      kv_out_bulk(x->o, configs[i].value, strlen(configs[i].value));
    } else {
      char num[24];
      kv_out_bulk(x->o, num, kv_ll2str(num, (long long)kv_maxmemory));
    }
  }
}

static void cmd_config_resetstat(struct ctx *x) {
  kv_stats.waits = 0;
  kv_stats.rx_messages = 0;
  kv_stats.commands = 0;
  kv_stats.connections = 0;
  kv_stats.expired_keys = 0;
  kv_stats.rejected_oom = 0;
  kv_out_raw(x->o, "+OK\r\n", 5);
}

/* ---- Strings --------------------------------------------------------------------- */

static void cmd_get(struct ctx *x) {
  struct kv_entry *e;
  if (lookup_typed(x, ARG(1), KV_STRING, &e) != 0) return;
  if (e)
    reply_entry_string(x->o, e);
  else
    kv_out_null(x->o);
}

enum { SET_NX = 1, SET_XX = 2, SET_GET = 4, SET_KEEPTTL = 8, SET_EX = 16, SET_PX = 32, SET_EXAT = 64, SET_PXAT = 128 };

/* Redis's getExpireMillisecondsOrReply. 0 and *when (absolute ms), or -1. */
static int expire_arg(struct ctx *x, const struct kv_arg *a, int flags, long long *when) {
  long long ms;
  if (get_ll(x, a, &ms, 0) != 0) return -1;
  int seconds = flags & (SET_EX | SET_EXAT);
  if (ms <= 0 || (seconds && ms > KV_LLONG_MAX / 1000)) {
    reply_expire_time(x);
    return -1;
  }
  if (seconds) ms *= 1000;
  if (flags & (SET_EX | SET_PX)) {
    if (ms > KV_LLONG_MAX - kv_now_ms) { /* Redis: overflows to <= 0 */
      reply_expire_time(x);
      return -1;
    }
    ms += kv_now_ms;
  }
  *when = ms;
  return 0;
}

/* Stores `val` at `key` (entry `e`, or a new one): the shared end of SET
 * and GETSET. With `get`, the reply is the old value (nil if none) instead
 * of +OK; without `keep_ttl`, the expiry becomes `when`. */
static void store_string(struct ctx *x, struct kv_entry *e, const struct kv_arg *key, const struct kv_arg *val,
                         int get, int keep_ttl, long long when) {
  if (when != KV_NO_EXPIRE && kv_reserve_expires(1) != 0) {
    reply_oom(x);
    return;
  }
  if (e) {
    if (get) {
      /* The old value is the reply: send it before it is overwritten,
       * but only once the new value has room. */
      if (e->type == KV_STRING && val->len > e->v.str.cap) {
        ls_u8 *p = kv_malloc(val->len);
        if (!p) {
          reply_oom(x);
          return;
        }
        reply_entry_string(x->o, e);
        if (e->heap_value) kv_free(e->v.str.ptr);
        e->v.str.ptr = p;
        e->v.str.cap = val->len;
        e->heap_value = 1;
      } else {
        reply_entry_string(x->o, e);
      }
    }
    if (set_string_value(e, val) != 0) {
      reply_oom(x);
      return;
    }
    if (!keep_ttl) kv_set_expire(e, when); /* reserved above: cannot fail */
  } else {
    e = kv_insert(key->ptr, key->len, KV_STRING, val->len);
    if (!e) {
      reply_oom(x);
      return;
    }
    memcpy(e->v.str.ptr, val->ptr, val->len);
    e->v.str.len = val->len;
    if (when != KV_NO_EXPIRE) kv_set_expire(e, when);
    if (get) kv_out_null(x->o);
  }
  kv_stats.dirty++;
  if (!get) kv_out_raw(x->o, "+OK\r\n", 5);
}

static void cmd_set(struct ctx *x) {
  int flags = 0;
  const struct kv_arg *expire = 0;
  for (size_t j = 3; j < x->argc; j++) {
    const struct kv_arg *opt = ARG(j);
    int has_next = j + 1 < x->argc;
    int timed = flags & (SET_EX | SET_PX | SET_EXAT | SET_PXAT);
    if (kv_arg_is(opt, "nx") && !(flags & SET_XX)) {
      flags |= SET_NX;
    } else if (kv_arg_is(opt, "xx") && !(flags & SET_NX)) {
      flags |= SET_XX;
    } else if (kv_arg_is(opt, "get")) {
      flags |= SET_GET;
    } else if (kv_arg_is(opt, "keepttl") && !timed) {
      flags |= SET_KEEPTTL;
    } else if (kv_arg_is(opt, "ex") && !(flags & (SET_KEEPTTL | SET_EXAT | SET_PX | SET_PXAT)) && has_next) {
      flags |= SET_EX;
      expire = ARG(++j);
    } else if (kv_arg_is(opt, "px") && !(flags & (SET_KEEPTTL | SET_EX | SET_EXAT | SET_PXAT)) && has_next) {
      flags |= SET_PX;
      expire = ARG(++j);
    } else if (kv_arg_is(opt, "exat") && !(flags & (SET_KEEPTTL | SET_EX | SET_PX | SET_PXAT)) && has_next) {
      flags |= SET_EXAT;
      expire = ARG(++j);
    } else if (kv_arg_is(opt, "pxat") && !(flags & (SET_KEEPTTL | SET_EX | SET_EXAT | SET_PX)) && has_next) {
      flags |= SET_PXAT;
      expire = ARG(++j);
    } else {
      kv_out_error(x->o, KV_ERR_SYNTAX);
      return;
    }
  }
  long long when = KV_NO_EXPIRE;
  if (expire && expire_arg(x, expire, flags, &when) != 0) return;

  const struct kv_arg *key = ARG(1), *val = ARG(2);
  struct kv_entry *e = kv_lookup(key->ptr, key->len);
  int get = flags & SET_GET;
  if (get && e && e->type != KV_STRING) {
    kv_out_error(x->o, KV_ERR_WRONGTYPE);
    return;
  }
  if (((flags & SET_NX) && e) || ((flags & SET_XX) && !e)) {
    if (get && e)
      reply_entry_string(x->o, e);
    else
      kv_out_null(x->o);
    return;
  }
  store_string(x, e, key, val, get, flags & SET_KEEPTTL, when);
}

static void cmd_getset(struct ctx *x) {
  struct kv_entry *e;
  if (lookup_typed(x, ARG(1), KV_STRING, &e) != 0) return;
  store_string(x, e, ARG(1), ARG(2), 1, 0, KV_NO_EXPIRE);
}

static void cmd_mget(struct ctx *x) {
  kv_out_array(x->o, (long long)x->argc - 1);
  for (size_t i = 1; i < x->argc; i++) {
    struct kv_entry *e = kv_lookup(ARG(i)->ptr, ARG(i)->len);
    if (e && e->type == KV_STRING)
      reply_entry_string(x->o, e);
    else
      kv_out_null(x->o);
  }
}

static void cmd_mset(struct ctx *x) {
  if (x->argc % 2 == 0) {
    reply_arity(x, x->cmd->name);
    return;
  }
  /* Prepare every new entry first; then swap them in (cannot fail). */
  struct kv_entry *ready = 0, **tail = &ready;
  if (kv_table_ready() != 0) goto oom;
  for (size_t i = 1; i < x->argc; i += 2) {
    struct kv_entry *e = kv_entry_new(ARG(i)->ptr, ARG(i)->len, KV_STRING, ARG(i + 1)->len);
    if (!e) goto oom;
    memcpy(e->v.str.ptr, ARG(i + 1)->ptr, ARG(i + 1)->len);
    e->v.str.len = ARG(i + 1)->len;
    *tail = e;
    tail = &e->chain;
  }
  while (ready) {
    struct kv_entry *next = ready->chain;
    kv_link(ready);
    ready = next;
  }
  kv_stats.dirty += (x->argc - 1) / 2;
  kv_out_raw(x->o, "+OK\r\n", 5);
  return;
oom:
  while (ready) {
    struct kv_entry *next = ready->chain;
    kv_entry_free(ready);
    ready = next;
  }
  reply_oom(x);
}

/* Redis's sds growth for APPEND: double below 1 MiB, else add 1 MiB. */
static size_t grow_size(size_t n) { return n < (1u << 20) ? n * 2 : n + (1u << 20); }

static void cmd_append(struct ctx *x) {
  struct kv_entry *e;
  if (lookup_typed(x, ARG(1), KV_STRING, &e) != 0) return;
  const struct kv_arg *add = ARG(2);
  if (!e) {
    e = kv_insert(ARG(1)->ptr, ARG(1)->len, KV_STRING, add->len);
    if (!e) {
      reply_oom(x);
      return;
    }
    memcpy(e->v.str.ptr, add->ptr, add->len);
    e->v.str.len = add->len;
  } else {
    size_t len = e->v.str.len + add->len;
    if ((long long)len > KV_MAX_BULK) {
      kv_out_error(x->o, "ERR string exceeds maximum allowed size (proto-max-bulk-len)");
      return;
    }
    if (len > e->v.str.cap && kv_str_reserve(e, grow_size(len), e->v.str.len) != 0 &&
        kv_str_reserve(e, len, e->v.str.len) != 0) {
      reply_oom(x);
      return;
    }
    memcpy(e->v.str.ptr + e->v.str.len, add->ptr, add->len);
    e->v.str.len = len;
  }
  kv_stats.dirty++;
  kv_out_int(x->o, (long long)e->v.str.len);
}

static void cmd_strlen(struct ctx *x) {
  struct kv_entry *e;
  if (lookup_typed(x, ARG(1), KV_STRING, &e) != 0) return;
  kv_out_int(x->o, e ? (long long)e->v.str.len : 0);
}

static void cmd_del(struct ctx *x) {
  long long n = 0;
  for (size_t i = 1; i < x->argc; i++) n += kv_delete(ARG(i)->ptr, ARG(i)->len);
  kv_stats.dirty += (ls_u64)n;
  kv_out_int(x->o, n);
}

static void cmd_exists(struct ctx *x) {
  long long n = 0;
  for (size_t i = 1; i < x->argc; i++) n += kv_lookup(ARG(i)->ptr, ARG(i)->len) != 0;
  kv_out_int(x->o, n);
}

static void incr_by(struct ctx *x, long long incr) {
  struct kv_entry *e;
  if (lookup_typed(x, ARG(1), KV_STRING, &e) != 0) return;
  long long value = 0;
  if (e && !kv_string2ll(e->v.str.ptr, e->v.str.len, &value)) {
    kv_out_error(x->o, KV_ERR_NOTINT);
    return;
  }
  if ((incr < 0 && value < 0 && incr < KV_LLONG_MIN - value) ||
      (incr > 0 && value > 0 && incr > KV_LLONG_MAX - value)) {
    kv_out_error(x->o, KV_ERR_OVERFLOW);
    return;
  }
  value += incr;
  char num[24];
  size_t n = kv_ll2str(num, value);
  if (!e) {
    e = kv_insert(ARG(1)->ptr, ARG(1)->len, KV_STRING, 24);
    if (!e) {
      reply_oom(x);
      return;
    }
  } else if (kv_str_reserve(e, 24, 0) != 0) {
    reply_oom(x);
    return;
  }
  memcpy(e->v.str.ptr, num, n);
  e->v.str.len = n;
  kv_stats.dirty++;
  kv_out_int(x->o, value);
}

static void cmd_incr(struct ctx *x) { incr_by(x, 1); }
static void cmd_decr(struct ctx *x) { incr_by(x, -1); }

static void cmd_incrby(struct ctx *x) {
  long long incr;
  if (get_ll(x, ARG(2), &incr, 0) == 0) incr_by(x, incr);
}

static void cmd_decrby(struct ctx *x) {
  long long incr;
  if (get_ll(x, ARG(2), &incr, 0) != 0) return;
  if (incr == KV_LLONG_MIN) {
    kv_out_error(x->o, "ERR decrement would overflow");
    return;
  }
  incr_by(x, -incr);
}

/* ---- Expiry ------------------------------------------------------------------------ */

enum { EXP_NX = 1, EXP_XX = 2, EXP_GT = 4, EXP_LT = 8 };

static void expire_generic(struct ctx *x, long long basetime, int seconds) {
  int flags = 0;
  for (size_t j = 3; j < x->argc; j++) {
    const struct kv_arg *opt = ARG(j);
    if (kv_arg_is(opt, "nx"))
      flags |= EXP_NX;
    else if (kv_arg_is(opt, "xx"))
      flags |= EXP_XX;
    else if (kv_arg_is(opt, "gt"))
      flags |= EXP_GT;
    else if (kv_arg_is(opt, "lt"))
      flags |= EXP_LT;
    else {
      struct kv_arg part = cstr(opt, (size_t)-1);
      kv_out_error_parts(x->o, "ERR Unsupported option ", &part, 1);
      return;
    }
  }
  if ((flags & EXP_NX) && (flags & (EXP_XX | EXP_GT | EXP_LT))) {
    kv_out_error(x->o, "ERR NX and XX, GT or LT options at the same time are not compatible");
    return;
  }
  if ((flags & EXP_GT) && (flags & EXP_LT)) {
    kv_out_error(x->o, "ERR GT and LT options at the same time are not compatible");
    return;
  }
  long long when;
  if (get_ll(x, ARG(2), &when, 0) != 0) return;
  if (seconds) {
    if (when > KV_LLONG_MAX / 1000 || when < KV_LLONG_MIN / 1000) {
      reply_expire_time(x);
      return;
    }
    when *= 1000;
  }
  if (when > KV_LLONG_MAX - basetime) {
    reply_expire_time(x);
    return;
  }
  when += basetime;
  struct kv_entry *e = kv_lookup(ARG(1)->ptr, ARG(1)->len);
  if (!e) {
    kv_out_raw(x->o, ":0\r\n", 4);
    return;
  }
  long long cur = e->expire;
  if (((flags & EXP_NX) && cur != KV_NO_EXPIRE) || ((flags & EXP_XX) && cur == KV_NO_EXPIRE) ||
      ((flags & EXP_GT) && (when <= cur || cur == KV_NO_EXPIRE)) ||
      ((flags & EXP_LT) && cur != KV_NO_EXPIRE && when >= cur)) {
    kv_out_raw(x->o, ":0\r\n", 4);
    return;
  }
  if (when <= kv_now_ms) {
    kv_delete_entry(e);
  } else if (kv_set_expire(e, when) != 0) {
    reply_oom(x);
    return;
  }
  kv_stats.dirty++;
  kv_out_raw(x->o, ":1\r\n", 4);
}

static void cmd_expire(struct ctx *x) { expire_generic(x, kv_now_ms, 1); }
static void cmd_pexpire(struct ctx *x) { expire_generic(x, kv_now_ms, 0); }
static void cmd_expireat(struct ctx *x) { expire_generic(x, 0, 1); }
static void cmd_pexpireat(struct ctx *x) { expire_generic(x, 0, 0); }

static void ttl_generic(struct ctx *x, int ms, int absolute) {
  struct kv_entry *e = kv_lookup(ARG(1)->ptr, ARG(1)->len);
  if (!e) {
    kv_out_int(x->o, -2);
    return;
  }
  if (e->expire == KV_NO_EXPIRE) {
    kv_out_int(x->o, -1);
    return;
  }
  if (absolute) {
    kv_out_int(x->o, ms ? e->expire : e->expire / 1000);
    return;
  }
  long long ttl = e->expire - kv_now_ms;
  if (ttl < 0) ttl = 0;
  kv_out_int(x->o, ms ? ttl : (ttl + 500) / 1000);
}

static void cmd_ttl(struct ctx *x) { ttl_generic(x, 0, 0); }
static void cmd_pttl(struct ctx *x) { ttl_generic(x, 1, 0); }
static void cmd_expiretime(struct ctx *x) { ttl_generic(x, 0, 1); }
static void cmd_pexpiretime(struct ctx *x) { ttl_generic(x, 1, 1); }

static void cmd_persist(struct ctx *x) {
  struct kv_entry *e = kv_lookup(ARG(1)->ptr, ARG(1)->len);
  if (!e || e->expire == KV_NO_EXPIRE) {
    kv_out_raw(x->o, ":0\r\n", 4);
    return;
  }
  kv_set_expire(e, KV_NO_EXPIRE);
  kv_stats.dirty++;
  kv_out_raw(x->o, ":1\r\n", 4);
}

/* ---- Lists ------------------------------------------------------------------------- */

static void push_generic(struct ctx *x, int left) {
  struct kv_entry *e;
  if (lookup_typed(x, ARG(1), KV_LIST, &e) != 0) return;
  int created = 0;
  size_t n = x->argc - 2;
  if (!e) {
    if (kv_table_ready() != 0 || !(e = kv_entry_new(ARG(1)->ptr, ARG(1)->len, KV_LIST, 0))) {
      reply_oom(x);
      return;
    }
    created = 1;
  }
  struct kv_list *l = e->v.list;
  if (kv_list_reserve(l, n) != 0) goto oom;
  for (size_t i = 0; i < n; i++) {
    struct kv_elem *el = kv_elem_new(ARG(2 + i)->ptr, ARG(2 + i)->len);
    if (!el) {
      while (i--) kv_free(kv_list_pop(l, left)); /* undo */
      goto oom;
    }
    kv_list_push(l, el, left);
  }
  if (created) kv_link(e);
  kv_stats.dirty += n;
  kv_out_int(x->o, (long long)l->len);
  return;
oom:
  if (created) kv_entry_free(e);
  reply_oom(x);
}

static void cmd_lpush(struct ctx *x) { push_generic(x, 1); }
static void cmd_rpush(struct ctx *x) { push_generic(x, 0); }

static void pop_generic(struct ctx *x, int left) {
  if (x->argc > 3) {
    reply_arity(x, x->cmd->name);
    return;
  }
  int has_count = x->argc == 3;
  long long count = 0;
  if (has_count && get_ll(x, ARG(2), &count, "ERR value is out of range, must be positive") != 0) return;
  if (has_count && count < 0) {
    kv_out_error(x->o, "ERR value is out of range, must be positive");
    return;
  }
  struct kv_entry *e;
  if (lookup_typed(x, ARG(1), KV_LIST, &e) != 0) return;
  if (!e) {
    if (has_count)
      kv_out_null_array(x->o);
    else
      kv_out_null(x->o);
    return;
  }
  if (has_count && count == 0) {
    kv_out_raw(x->o, "*0\r\n", 4);
    return;
  }
  struct kv_list *l = e->v.list;
  size_t n = has_count ? (size_t)KV_MIN((unsigned long long)count, (unsigned long long)l->len) : 1;
  if (has_count) kv_out_array(x->o, (long long)n);
  for (size_t i = 0; i < n; i++) {
    struct kv_elem *el = kv_list_pop(l, left);
    kv_out_bulk(x->o, el->data, el->len);
    kv_free(el);
  }
  if (l->len == 0) kv_delete_entry(e);
  kv_stats.dirty += n;
}

static void cmd_lpop(struct ctx *x) { pop_generic(x, 1); }
static void cmd_rpop(struct ctx *x) { pop_generic(x, 0); }

static void cmd_llen(struct ctx *x) {
  struct kv_entry *e;
  if (lookup_typed(x, ARG(1), KV_LIST, &e) != 0) return;
  kv_out_int(x->o, e ? (long long)e->v.list->len : 0);
}

static void cmd_lrange(struct ctx *x) {
  long long start, end;
  if (get_ll(x, ARG(2), &start, 0) != 0 || get_ll(x, ARG(3), &end, 0) != 0) return;
  struct kv_entry *e;
  if (lookup_typed(x, ARG(1), KV_LIST, &e) != 0) return;
  if (!e) {
    kv_out_raw(x->o, "*0\r\n", 4);
    return;
  }
  struct kv_list *l = e->v.list;
  long long llen = (long long)l->len;
  if (start < 0) start = llen + start;
  if (end < 0) end = llen + end;
  if (start < 0) start = 0;
  if (start > end || start >= llen) {
    kv_out_raw(x->o, "*0\r\n", 4);
    return;
  }
  if (end >= llen) end = llen - 1;
  kv_out_array(x->o, end - start + 1);
  for (long long i = start; i <= end; i++) {
    struct kv_elem *el = kv_list_at(l, (size_t)i);
    kv_out_bulk(x->o, el->data, el->len);
  }
}

/* ---- Hashes ------------------------------------------------------------------------ */

/* HSET / HMSET: all nodes are allocated first, then put in (cannot fail). */
static void hset_generic(struct ctx *x, int hmset) {
  if (x->argc % 2 == 1) {
    reply_arity(x, x->cmd->name);
    return;
  }
  struct kv_entry *e;
  if (lookup_typed(x, ARG(1), KV_HASH, &e) != 0) return;
  int created = 0;
  if (!e) {
    if (kv_table_ready() != 0 || !(e = kv_entry_new(ARG(1)->ptr, ARG(1)->len, KV_HASH, 0))) {
      reply_oom(x);
      return;
    }
    created = 1;
  }
  struct kv_hash *h = e->v.hash;
  struct kv_field *ready = 0, **tail = &ready;
  if (kv_hash_reserve(h, 1) != 0) goto oom;
  for (size_t i = 2; i < x->argc; i += 2) {
    struct kv_field *f = kv_field_new(ARG(i)->ptr, ARG(i)->len, ARG(i + 1)->ptr, ARG(i + 1)->len);
    if (!f) goto oom;
    *tail = f;
    tail = &f->chain;
  }
  long long added = 0;
  while (ready) {
    struct kv_field *next = ready->chain;
    added += kv_hash_put(h, ready);
    ready = next;
  }
  if (created) kv_link(e);
  kv_stats.dirty += (x->argc - 2) / 2;
  if (hmset)
    kv_out_raw(x->o, "+OK\r\n", 5);
  else
    kv_out_int(x->o, added);
  return;
oom:
  while (ready) {
    struct kv_field *next = ready->chain;
    kv_free(ready);
    ready = next;
  }
  if (created) kv_entry_free(e);
  reply_oom(x);
}

static void cmd_hset(struct ctx *x) { hset_generic(x, 0); }
static void cmd_hmset(struct ctx *x) { hset_generic(x, 1); }

static void cmd_hget(struct ctx *x) {
  struct kv_entry *e;
  if (lookup_typed(x, ARG(1), KV_HASH, &e) != 0) return;
  struct kv_field *f = e ? kv_hash_get(e->v.hash, ARG(2)->ptr, ARG(2)->len) : 0;
  if (f)
    kv_out_bulk(x->o, f->data + f->flen, f->vlen);
  else
    kv_out_null(x->o);
}

static void cmd_hexists(struct ctx *x) {
  struct kv_entry *e;
  if (lookup_typed(x, ARG(1), KV_HASH, &e) != 0) return;
  kv_out_int(x->o, e && kv_hash_get(e->v.hash, ARG(2)->ptr, ARG(2)->len) ? 1 : 0);
}

static void cmd_hdel(struct ctx *x) {
  struct kv_entry *e;
  if (lookup_typed(x, ARG(1), KV_HASH, &e) != 0) return;
  long long n = 0;
  if (e) {
    for (size_t i = 2; i < x->argc; i++) {
      n += kv_hash_del(e->v.hash, ARG(i)->ptr, ARG(i)->len);
      if (e->v.hash->count == 0) {
        kv_delete_entry(e);
        break;
      }
    }
  }
  kv_stats.dirty += (ls_u64)n;
  kv_out_int(x->o, n);
}

static void cmd_hlen(struct ctx *x) {
  struct kv_entry *e;
  if (lookup_typed(x, ARG(1), KV_HASH, &e) != 0) return;
  kv_out_int(x->o, e ? (long long)e->v.hash->count : 0);
}

/* HGETALL (fields and values), HKEYS, HVALS. */
static void hash_list(struct ctx *x, int keys, int values) {
  struct kv_entry *e;
  if (lookup_typed(x, ARG(1), KV_HASH, &e) != 0) return;
  if (!e) {
    kv_out_raw(x->o, "*0\r\n", 4);
    return;
  }
  kv_out_array(x->o, (long long)e->v.hash->count * (keys + values));
  for (struct kv_field *f = e->v.hash->first; f; f = f->next) {
    if (keys) kv_out_bulk(x->o, f->data, f->flen);
    if (values) kv_out_bulk(x->o, f->data + f->flen, f->vlen);
  }
}

static void cmd_hgetall(struct ctx *x) { hash_list(x, 1, 1); }
static void cmd_hkeys(struct ctx *x) { hash_list(x, 1, 0); }
static void cmd_hvals(struct ctx *x) { hash_list(x, 0, 1); }

/* ---- The table ------------------------------------------------------------------------ */

#define RD (F_READONLY)
#define WR (F_WRITE)
#define WRM (F_WRITE | F_DENYOOM)

static const struct cmd command_subs[] = {
    {"command|count", 2, RD, cmd_command_count, 0, 0, 0, 0},
    {"command|docs", -2, RD, cmd_command_docs, 0, 0, 0, 0},
    {"command|info", -2, RD, cmd_command_info, 0, 0, 0, 0},
    {"command|list", -2, RD, cmd_command_list, 0, 0, 0, 0},
    {0, 0, 0, 0, 0, 0, 0, 0},
};

static const struct cmd config_subs[] = {
    {"config|get", -3, RD, cmd_config_get, 0, 0, 0, 0},
    {"config|resetstat", 2, 0, cmd_config_resetstat, 0, 0, 0, 0},
    {0, 0, 0, 0, 0, 0, 0, 0},
};

const struct cmd kv_command_table[] = {
    {"append", 3, WRM, cmd_append, 0, 1, 1, 1},
    {"bgsave", -1, 0, cmd_bgsave, 0, 0, 0, 0},
    {"command", -1, 0, cmd_command, command_subs, 0, 0, 0},
    {"config", -2, 0, 0, config_subs, 0, 0, 0},
    {"dbsize", 1, RD | F_FAST, cmd_dbsize, 0, 0, 0, 0},
    {"decr", 2, WRM | F_FAST, cmd_decr, 0, 1, 1, 1},
    {"decrby", 3, WRM | F_FAST, cmd_decrby, 0, 1, 1, 1},
    {"del", -2, WR, cmd_del, 0, 1, -1, 1},
    {"echo", 2, F_FAST, cmd_echo, 0, 0, 0, 0},
    {"exists", -2, RD | F_FAST, cmd_exists, 0, 1, -1, 1},
    {"expire", -3, WR | F_FAST, cmd_expire, 0, 1, 1, 1},
    {"expireat", -3, WR | F_FAST, cmd_expireat, 0, 1, 1, 1},
    {"expiretime", 2, RD | F_FAST, cmd_expiretime, 0, 1, 1, 1},
    {"flushall", -1, WR, cmd_flush, 0, 0, 0, 0},
    {"flushdb", -1, WR, cmd_flush, 0, 0, 0, 0},
    {"get", 2, RD | F_FAST, cmd_get, 0, 1, 1, 1},
    {"getset", 3, WRM | F_FAST, cmd_getset, 0, 1, 1, 1},
    {"hdel", -3, WR | F_FAST, cmd_hdel, 0, 1, 1, 1},
    {"hexists", 3, RD | F_FAST, cmd_hexists, 0, 1, 1, 1},
    {"hget", 3, RD | F_FAST, cmd_hget, 0, 1, 1, 1},
    {"hgetall", 2, RD, cmd_hgetall, 0, 1, 1, 1},
    {"hkeys", 2, RD, cmd_hkeys, 0, 1, 1, 1},
    {"hlen", 2, RD | F_FAST, cmd_hlen, 0, 1, 1, 1},
    {"hmset", -4, WRM | F_FAST, cmd_hmset, 0, 1, 1, 1},
    {"hset", -4, WRM | F_FAST, cmd_hset, 0, 1, 1, 1},
    {"hvals", 2, RD, cmd_hvals, 0, 1, 1, 1},
    {"incr", 2, WRM | F_FAST, cmd_incr, 0, 1, 1, 1},
    {"incrby", 3, WRM | F_FAST, cmd_incrby, 0, 1, 1, 1},
    {"info", -1, 0, cmd_info, 0, 0, 0, 0},
    {"keys", 2, RD, cmd_keys, 0, 0, 0, 0},
    {"lastsave", 1, F_FAST, cmd_lastsave, 0, 0, 0, 0},
    {"llen", 2, RD | F_FAST, cmd_llen, 0, 1, 1, 1},
    {"lpop", -2, WR | F_FAST, cmd_lpop, 0, 1, 1, 1},
    {"lpush", -3, WRM | F_FAST, cmd_lpush, 0, 1, 1, 1},
    {"lrange", 4, RD, cmd_lrange, 0, 1, 1, 1},
    {"mget", -2, RD | F_FAST, cmd_mget, 0, 1, -1, 1},
    {"mset", -3, WRM, cmd_mset, 0, 1, -1, 2},
    {"persist", 2, WR | F_FAST, cmd_persist, 0, 1, 1, 1},
    {"pexpire", -3, WR | F_FAST, cmd_pexpire, 0, 1, 1, 1},
    {"pexpireat", -3, WR | F_FAST, cmd_pexpireat, 0, 1, 1, 1},
    {"pexpiretime", 2, RD | F_FAST, cmd_pexpiretime, 0, 1, 1, 1},
    {"ping", -1, F_FAST, cmd_ping, 0, 0, 0, 0},
    {"pttl", 2, RD | F_FAST, cmd_pttl, 0, 1, 1, 1},
    {"rpop", -2, WR | F_FAST, cmd_rpop, 0, 1, 1, 1},
    {"rpush", -3, WRM | F_FAST, cmd_rpush, 0, 1, 1, 1},
    {"save", 1, 0, cmd_save, 0, 0, 0, 0},
    {"select", 2, F_FAST, cmd_select, 0, 0, 0, 0},
    {"set", -3, WRM, cmd_set, 0, 1, 1, 1},
    {"strlen", 2, RD | F_FAST, cmd_strlen, 0, 1, 1, 1},
    {"ttl", 2, RD | F_FAST, cmd_ttl, 0, 1, 1, 1},
    {"type", 2, RD | F_FAST, cmd_type, 0, 1, 1, 1},
    {0, 0, 0, 0, 0, 0, 0, 0},
};

/* Open-addressing index of the table by name. */
#define INDEX_SIZE 256u
static const struct cmd *cmd_index[INDEX_SIZE];

static ls_u64 name_hash(const ls_u8 *s, size_t n) {
  ls_u64 h = 1469598103934665603ull;
  for (size_t i = 0; i < n; i++) h = (h ^ s[i]) * 1099511628211ull;
  return h;
}

/* Lower-cases a command name into buf (at most 24 bytes); 0 if too long. */
static size_t lower_name(const struct kv_arg *a, ls_u8 *buf) {
  if (a->len > 24 || a->len == 0) return 0;
  for (size_t i = 0; i < a->len; i++) {
    ls_u8 c = a->ptr[i];
    buf[i] = (c >= 'A' && c <= 'Z') ? (ls_u8)(c + 32) : c;
  }
  return a->len;
}

static const struct cmd *lookup_command(const struct kv_arg *name) {
  ls_u8 low[24];
  size_t n = lower_name(name, low);
  if (!n) return 0;
  for (ls_u64 i = name_hash(low, n);; i++) {
    const struct cmd *c = cmd_index[i & (INDEX_SIZE - 1)];
    if (!c) return 0;
    if (strlen(c->name) == n && memcmp(c->name, low, n) == 0) return c;
  }
}

/* "container|sub" lookup among subs. */
static const struct cmd *lookup_sub(const struct cmd *container, const struct kv_arg *name) {
  ls_u8 low[24];
  size_t n = lower_name(name, low);
  if (!n) return 0;
  size_t base = strlen(container->name) + 1;
  for (const struct cmd *s = container->subs; s->name; s++)
    if (strlen(s->name) == base + n && memcmp(s->name + base, low, n) == 0) return s;
  return 0;
}

void kv_commands_init(void) {
  memset(cmd_index, 0, sizeof cmd_index);
  command_count = 0;
  for (const struct cmd *c = kv_command_table; c->name; c++) {
    command_count++;
    for (ls_u64 i = name_hash((const ls_u8 *)c->name, strlen(c->name));; i++) {
      if (!cmd_index[i & (INDEX_SIZE - 1)]) {
        cmd_index[i & (INDEX_SIZE - 1)] = c;
        break;
      }
    }
  }
}

/* Redis's "unknown command" and "unknown subcommand" errors. */
static void reply_unknown(struct ctx *x, const struct cmd *container) {
  struct kv_arg parts[3 + 3 * 48];
  int n = 0;
  if (container) {
    static char upper[32];
    size_t len = strlen(container->name);
    for (size_t i = 0; i < len && i < sizeof upper - 1; i++)
      upper[i] = (char)(container->name[i] >= 'a' && container->name[i] <= 'z' ? container->name[i] - 32 : container->name[i]);
    upper[len < sizeof upper - 1 ? len : sizeof upper - 1] = 0;
    parts[n++] = cstr(ARG(1), 128);
    parts[n++] = LIT("'. Try ");
    parts[n++] = (struct kv_arg){(const ls_u8 *)upper, strlen(upper)};
    parts[n++] = LIT(" HELP.");
    kv_out_error_parts(x->o, "ERR unknown subcommand '", parts, n);
    return;
  }
  parts[n++] = cstr(ARG(0), 128);
  parts[n++] = LIT("', with args beginning with: ");
  size_t args_len = 0;
  for (size_t i = 1; i < x->argc && args_len < 128; i++) {
    struct kv_arg a = cstr(ARG(i), 128 - args_len);
    parts[n++] = LIT("'");
    parts[n++] = a;
    parts[n++] = LIT("' ");
    args_len += a.len + 3;
  }
  kv_out_error_parts(x->o, "ERR unknown command '", parts, n);
}

void kv_exec(struct kv_client *c, const struct kv_arg *argv, size_t argc, struct kv_out *o) {
  struct ctx x = {c, argv, argc, o, 0};
  /* Redis answers QUIT before looking anything up (any arguments). */
  if (kv_arg_is(&argv[0], "quit")) {
    kv_out_raw(o, "+OK\r\n", 5);
    c->close_after_reply = 1;
    return;
  }
  const struct cmd *cmd = lookup_command(&argv[0]);
  if (cmd && cmd->subs && argc >= 2) {
    const struct cmd *sub = lookup_sub(cmd, &argv[1]);
    if (!sub) {
      reply_unknown(&x, cmd);
      return;
    }
    cmd = sub;
  }
  if (!cmd) {
    reply_unknown(&x, 0);
    return;
  }
  x.cmd = cmd;
  if ((cmd->arity > 0 && (size_t)cmd->arity != argc) || (long long)argc < -(long long)cmd->arity) {
    reply_arity(&x, cmd->name);
    return;
  }
  if ((cmd->flags & F_DENYOOM) && kv_maxmemory && kv_used_memory() > kv_maxmemory) {
    reply_oom(&x);
    return;
  }
  kv_stats.commands++;
  cmd->proc(&x);
}
