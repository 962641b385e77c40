/*
 * resp.c — incremental RESP2 request parser (see resp.h).
 *
 * It follows Redis 7.0's processMultibulkBuffer / processInlineBuffer /
 * sdssplitargs, including their quirks, so that every client sees the same
 * replies and errors as from Redis:
 *   - a count line is found with strchr(buf, '\r'), so a NUL byte before the
 *     '\r' hides it (the request waits until it exceeds 64 KiB: "too big");
 *     the byte after the '\r' is assumed to be '\n' and never checked;
 *   - counts use string2ll (no '+', no leading zeros, no spaces);
 *   - "*0" / "*-5" are empty requests; bulk lengths must be 0..512 MiB;
 *   - the two bytes after a bulk argument are skipped, not checked;
 *   - an inline request ends at '\n' (an optional '\r' before it is
 *     dropped) and is split like sdssplitargs ("..." with \xHH \n \r \t \b
 *     \a escapes, '...' with \' only; a closing quote must be followed by a
 *     space or the end).
 */
#include "resp.h"

enum { RESP_TYPE_INLINE = 1, RESP_TYPE_MULTIBULK = 2 };

void resp_init(struct resp_parser *p) {
  memset(p, 0, sizeof *p);
  p->argv = p->fixed;
  p->cap = RESP_FIXED_ARGS;
  p->left = -1;
  p->bulk = -1;
}

void resp_reset(struct resp_parser *p) {
  p->type = 0;
  p->pos = 0;
  p->scanned = 0;
  p->nul_seen = 0;
  p->left = -1;
  p->bulk = -1;
  p->argc = 0;
  if (p->argv != p->fixed && p->cap > 1024) {
    kv_free(p->argv);
    p->argv = p->fixed;
    p->cap = RESP_FIXED_ARGS;
  }
  if (p->scratch_cap > RESP_INLINE_MAX) {
    kv_free(p->scratch);
    p->scratch = 0;
    p->scratch_cap = 0;
  }
}

void resp_free(struct resp_parser *p) {
  if (p->argv != p->fixed) kv_free(p->argv);
  kv_free(p->scratch);
  resp_init(p);
}

size_t resp_need(const struct resp_parser *p) {
  if (p->type == RESP_TYPE_MULTIBULK && p->left > 0 && p->bulk >= 0) return p->pos + (size_t)p->bulk + 2;
  return 0;
}

static int fail(struct resp_parser *p, const char *msg) {
  size_t n = strlen(msg);
  if (n >= sizeof p->error) n = sizeof p->error - 1;
  memcpy(p->error, msg, n);
  p->error[n] = 0;
  return RESP_ERROR;
}

/* Finds the first `c` at or after p->pos, as strchr would (a NUL stops the
 * search). Returns its offset, or -1 (remembering how far it looked). */
static long long find_line(struct resp_parser *p, const ls_u8 *buf, size_t len, ls_u8 c) {
  if (p->nul_seen) return -1;
  size_t i = p->scanned > p->pos ? p->scanned : p->pos;
  for (; i < len; i++) {
    ls_u8 b = buf[i];
    if (b == c) {
      p->scanned = 0;
      return (long long)i;
    }
    if (b == 0) {
      p->nul_seen = 1;
      return -1;
    }
  }
  p->scanned = len;
  return -1;
}

static int push_arg(struct resp_parser *p, size_t off, size_t len) {
  if (p->argc == p->cap) {
    size_t cap = p->cap * 2;
    struct kv_arg *a = kv_malloc(cap * sizeof *a);
    if (!a) return -1;
    memcpy(a, p->argv, p->argc * sizeof *a);
    if (p->argv != p->fixed) kv_free(p->argv);
    p->argv = a;
    p->cap = cap;
  }
  p->argv[p->argc].ptr = (const ls_u8 *)(unsigned long)off; /* an offset until resolve() */
  p->argv[p->argc].len = len;
  p->argc++;
  return 0;
}

/* Turns argument offsets into pointers into `base`. */
static void resolve(struct resp_parser *p, const ls_u8 *base) {
  for (size_t i = 0; i < p->argc; i++) p->argv[i].ptr = base + (unsigned long)p->argv[i].ptr;
}

/* ---- Multibulk ------------------------------------------------------------ */

static int parse_multibulk(struct resp_parser *p, const ls_u8 *buf, size_t len, size_t *used) {
  if (p->left < 0) {
    long long nl = find_line(p, buf, len, '\r');
    if (nl < 0) {
      if (len - p->pos > RESP_INLINE_MAX) return fail(p, "Protocol error: too big mbulk count string");
      return RESP_INCOMPLETE;
    }
    if ((size_t)nl + 2 > len) { /* the '\r' is the last byte: wait for the '\n' */
      p->scanned = (size_t)nl;
      return RESP_INCOMPLETE;
    }
    long long ll;
    if (!kv_string2ll(buf + p->pos + 1, (size_t)nl - (p->pos + 1), &ll) || ll > KV_INT_MAX)
      return fail(p, "Protocol error: invalid multibulk length");
    p->pos = (size_t)nl + 2;
    if (ll <= 0) {
      *used = p->pos;
      return RESP_EMPTY;
    }
    p->left = ll;
    p->bulk = -1;
  }
  while (p->left > 0) {
    if (p->bulk < 0) {
      long long nl = find_line(p, buf, len, '\r');
      if (nl < 0) {
        if (len - p->pos > RESP_INLINE_MAX) return fail(p, "Protocol error: too big bulk count string");
        return RESP_INCOMPLETE;
      }
      if ((size_t)nl + 2 > len) {
        p->scanned = (size_t)nl;
        return RESP_INCOMPLETE;
      }
      ls_u8 c = buf[p->pos];
      if (c != '$') {
        /* Redis formats the byte with %c and then maps \r \n to spaces. */
        char msg[] = "Protocol error: expected '$', got ' '";
        if (c != '\r' && c != '\n') msg[sizeof msg - 3] = (char)c;
        return fail(p, msg);
      }
      long long ll;
      if (!kv_string2ll(buf + p->pos + 1, (size_t)nl - (p->pos + 1), &ll) || ll < 0 || ll > KV_MAX_BULK)
        return fail(p, "Protocol error: invalid bulk length");
      p->pos = (size_t)nl + 2;
      p->bulk = ll;
    }
    if (len - p->pos < (size_t)p->bulk + 2) return RESP_INCOMPLETE;
    if (push_arg(p, p->pos, (size_t)p->bulk) != 0) return RESP_NOMEM;
    p->pos += (size_t)p->bulk + 2;
    p->bulk = -1;
    p->left--;
  }
  *used = p->pos;
  resolve(p, buf);
  return RESP_COMMAND;
}

/* ---- Inline ------------------------------------------------------------------ */

static int is_hex(int c) { return (c >= '0' && c <= '9') || (c >= 'a' && c <= 'f') || (c >= 'A' && c <= 'F'); }
static int hex_val(int c) { return c <= '9' ? c - '0' : (c | 32) - 'a' + 10; }
/* C isspace in the "C" locale. */
static int is_space(int c) { return c == ' ' || (c >= '\t' && c <= '\r'); }

/* sdssplitargs over line[0..n) (which holds no NUL; reads past the end see
 * NUL, as in the C original). Arguments go to p->scratch. Returns 0, -1 for
 * unbalanced quotes, -2 out of memory. */
static int split_args(struct resp_parser *p, const ls_u8 *line, size_t n) {
#define AT(i) ((i) < n ? (int)line[i] : 0)
  if (n > p->scratch_cap) {
    ls_u8 *s = kv_malloc(n);
    if (!s) return -2;
    kv_free(p->scratch);
    p->scratch = s;
    p->scratch_cap = n;
  }
  size_t i = 0, out = 0;
  for (;;) {
    while (AT(i) && is_space(AT(i))) i++;
    if (!AT(i)) return 0;
    int inq = 0, insq = 0, done = 0;
    size_t start = out;
    while (!done) {
      int c = AT(i);
      if (inq) {
        if (c == '\\' && AT(i + 1) == 'x' && is_hex(AT(i + 2)) && is_hex(AT(i + 3))) {
          p->scratch[out++] = (ls_u8)(hex_val(AT(i + 2)) * 16 + hex_val(AT(i + 3)));
          i += 3;
        } else if (c == '\\' && AT(i + 1)) {
          i++;
          int e = AT(i);
          switch (e) {
          case 'n': e = '\n'; break;
          case 'r': e = '\r'; break;
          case 't': e = '\t'; break;
          case 'b': e = '\b'; break;
          case 'a': e = '\a'; break;
          default: break;
          }
          p->scratch[out++] = (ls_u8)e;
        } else if (c == '"') {
          if (AT(i + 1) && !is_space(AT(i + 1))) return -1;
          done = 1;
        } else if (!c) {
          return -1;
        } else {
          p->scratch[out++] = (ls_u8)c;
        }
      } else if (insq) {
        if (c == '\\' && AT(i + 1) == '\'') {
          i++;
          p->scratch[out++] = '\'';
        } else if (c == '\'') {
          if (AT(i + 1) && !is_space(AT(i + 1))) return -1;
          done = 1;
        } else if (!c) {
          return -1;
        } else {
          p->scratch[out++] = (ls_u8)c;
        }
      } else {
        switch (c) {
        case ' ':
        case '\n':
        case '\r':
        case '\t':
        case '\0': done = 1; break;
        case '"': inq = 1; break;
        case '\'': insq = 1; break;
        default: p->scratch[out++] = (ls_u8)c; break;
        }
      }
      if (AT(i)) i++;
    }
    if (push_arg(p, start, out - start) != 0) return -2;
  }
#undef AT
}

static int parse_inline(struct resp_parser *p, const ls_u8 *buf, size_t len, size_t *used) {
  long long nl = find_line(p, buf, len, '\n');
  if (nl < 0) {
    if (len > RESP_INLINE_MAX) return fail(p, "Protocol error: too big inline request");
    return RESP_INCOMPLETE;
  }
  size_t end = (size_t)nl;
  if (end > 0 && buf[end - 1] == '\r') end--;
  int r = split_args(p, buf, end);
  if (r == -1) {
    p->argc = 0;
    return fail(p, "Protocol error: unbalanced quotes in request");
  }
  if (r == -2) return RESP_NOMEM;
  *used = (size_t)nl + 1;
  if (p->argc == 0) return RESP_EMPTY;
  resolve(p, p->scratch);
  return RESP_COMMAND;
}

int resp_parse(struct resp_parser *p, const ls_u8 *buf, size_t len, size_t *used) {
  *used = 0;
  if (p->type == 0) {
    if (len == 0) return RESP_INCOMPLETE;
    p->type = buf[0] == '*' ? RESP_TYPE_MULTIBULK : RESP_TYPE_INLINE;
  }
  if (p->type == RESP_TYPE_MULTIBULK) return parse_multibulk(p, buf, len, used);
  return parse_inline(p, buf, len, used);
}
