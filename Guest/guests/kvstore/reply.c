/*
 * reply.c — RESP2 reply encoding into a kv_out buffer.
 */
#include "kv.h"

void kv_out_flush(struct kv_out *o) {
  if (o->len) {
    o->flush(o->ctx, o->buf, o->len);
    o->len = 0;
  }
}

void kv_out_raw(struct kv_out *o, const void *p, size_t n) {
  if (KV_LIKELY(o->len + n <= o->cap)) {
    memcpy(o->buf + o->len, p, n);
    o->len += n;
    return;
  }
  kv_out_flush(o);
  if (n >= o->cap) {
    o->flush(o->ctx, p, n); /* large: straight to the sink, no copy */
    return;
  }
  memcpy(o->buf, p, n);
  o->len = n;
}

/* A prefix byte, a number and CRLF. */
static void out_prefixed(struct kv_out *o, char prefix, long long v) {
  char tmp[32];
  tmp[0] = prefix;
  size_t n = 1 + kv_ll2str(tmp + 1, v);
  tmp[n++] = '\r';
  tmp[n++] = '\n';
  kv_out_raw(o, tmp, n);
}

void kv_out_status(struct kv_out *o, const char *s) {
  kv_out_raw(o, "+", 1);
  kv_out_raw(o, s, strlen(s));
  kv_out_raw(o, "\r\n", 2);
}

void kv_out_error(struct kv_out *o, const char *s) {
  kv_out_raw(o, "-", 1);
  kv_out_raw(o, s, strlen(s));
  kv_out_raw(o, "\r\n", 2);
}

void kv_out_int(struct kv_out *o, long long v) { out_prefixed(o, ':', v); }

void kv_out_bulk(struct kv_out *o, const void *p, size_t n) {
  out_prefixed(o, '$', (long long)n);
  kv_out_raw(o, p, n);
  kv_out_raw(o, "\r\n", 2);
}

void kv_out_null(struct kv_out *o) { kv_out_raw(o, "$-1\r\n", 5); }
void kv_out_null_array(struct kv_out *o) { kv_out_raw(o, "*-1\r\n", 5); }
void kv_out_array(struct kv_out *o, long long n) { out_prefixed(o, '*', n); }

void kv_out_error_parts(struct kv_out *o, const char *prefix, const struct kv_arg *parts, int n) {
  /* Redis's addReplyErrorFormat: the formatted text, trimmed of \r and \n
   * at the end, with any other \r or \n turned into a space. (The prefix
   * always starts with a word, so there is nothing to trim at the start.) */
  int last = n - 1;
  size_t last_len = 0;
  for (; last >= 0; last--) {
    size_t len = parts[last].len;
    while (len > 0 && (parts[last].ptr[len - 1] == '\r' || parts[last].ptr[len - 1] == '\n')) len--;
    if (len > 0) {
      last_len = len;
      break;
    }
  }
  kv_out_raw(o, "-", 1);
  kv_out_raw(o, prefix, strlen(prefix));
  for (int i = 0; i <= last; i++) {
    const ls_u8 *p = parts[i].ptr;
    size_t len = i == last ? last_len : parts[i].len, start = 0;
    for (size_t j = 0; j < len; j++) {
      if (p[j] == '\r' || p[j] == '\n') {
        kv_out_raw(o, p + start, j - start);
        kv_out_raw(o, " ", 1);
        start = j + 1;
      }
    }
    kv_out_raw(o, p + start, len - start);
  }
  kv_out_raw(o, "\r\n", 2);
}
