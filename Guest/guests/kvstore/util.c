/*
 * util.c — numbers, hashing and glob matching with Redis's semantics.
 */
#include "kv.h"

int kv_string2ll(const ls_u8 *s, size_t len, long long *out) {
  /* Redis util.c string2ll, byte for byte in behaviour. */
  if (len == 0 || len >= 21) return 0;
  if (len == 1 && s[0] == '0') {
    *out = 0;
    return 1;
  }
  size_t i = 0;
  int negative = 0;
  if (s[0] == '-') {
    negative = 1;
    i++;
    if (i == len) return 0;
  }
  if (s[i] < '1' || s[i] > '9') return 0;
  unsigned long long v = (unsigned long long)(s[i] - '0');
  i++;
  for (; i < len && s[i] >= '0' && s[i] <= '9'; i++) {
    unsigned d = (unsigned)(s[i] - '0');
    if (v > ~0ull / 10) return 0;
    v *= 10;
    if (v > ~0ull - d) return 0;
    v += d;
  }
  if (i < len) return 0;
  if (negative) {
    if (v > (unsigned long long)KV_LLONG_MAX + 1) return 0;
    *out = (long long)(0 - v);
  } else {
    if (v > (unsigned long long)KV_LLONG_MAX) return 0;
    *out = (long long)v;
  }
  return 1;
}

size_t kv_ll2str(char *buf, long long v) {
  char tmp[24];
  unsigned long long u = v < 0 ? 0 - (unsigned long long)v : (unsigned long long)v;
  size_t n = 0;
  do {
    tmp[n++] = (char)('0' + u % 10);
    u /= 10;
  } while (u);
  size_t k = 0;
  if (v < 0) buf[k++] = '-';
  while (n) buf[k++] = tmp[--n];
  return k;
}

int kv_arg_is(const struct kv_arg *a, const char *lower) {
  size_t i = 0;
  for (; lower[i]; i++) {
    if (i >= a->len) return 0;
    ls_u8 c = a->ptr[i];
    if (c >= 'A' && c <= 'Z') c = (ls_u8)(c + 32);
    if (c != (ls_u8)lower[i]) return 0;
  }
  /* strcasecmp on the C string: the argument ends at the end or at a NUL. */
  return i == a->len || a->ptr[i] == 0;
}

/* ---- Hash: a small wyhash-like mixer (multiply-fold of 8-byte words) ---- */

static inline ls_u64 mix(ls_u64 a, ls_u64 b) {
  __uint128_t r = (__uint128_t)a * b;
  return (ls_u64)r ^ (ls_u64)(r >> 64);
}

static inline ls_u64 read64(const ls_u8 *p) {
  ls_u64 v;
  memcpy(&v, p, 8);
  return v;
}

ls_u64 kv_hash(const void *data, size_t len, ls_u64 seed) {
  const ls_u8 *p = data;
  const ls_u64 k0 = 0xa0761d6478bd642full, k1 = 0xe7037ed1a0b428dbull, k2 = 0x8ebc6af09c88c6e3ull;
  ls_u64 h = seed ^ mix(seed ^ k0, (ls_u64)len ^ k1);
  size_t n = len;
  while (n >= 16) {
    h = mix(read64(p) ^ k1 ^ h, read64(p + 8) ^ k2);
    p += 16;
    n -= 16;
  }
  ls_u64 a = 0, b = 0;
  if (n >= 8) {
    a = read64(p);
    b = read64(p + n - 8);
  } else if (n >= 4) {
    ls_u32 x, y;
    memcpy(&x, p, 4);
    memcpy(&y, p + n - 4, 4);
    a = x;
    b = y;
  } else if (n > 0) {
    a = ((ls_u64)p[0] << 16) | ((ls_u64)p[n >> 1] << 8) | p[n - 1];
  }
  h = mix(a ^ k1 ^ h, b ^ k2);
  return mix(h ^ k0, (ls_u64)len ^ k2);
}

/* ---- Glob: Redis util.c stringmatchlen -----------------------------------
 * Characters compare as (signed) char, as in Redis, which matters for
 * ranges with bytes >= 0x80. A pattern nested deeper than 1000 '*' groups
 * does not match (bounds the recursion on the guest's 1 MiB stack). */

static inline int low(int c) { return c >= 'A' && c <= 'Z' ? c + 32 : c; }

static int match_impl(const char *pattern, long long patternLen, const char *string, long long stringLen,
                      int nocase, int *skipLonger, int nesting) {
  if (nesting > 1000) return 0;
  while (patternLen && stringLen) {
    switch (pattern[0]) {
    case '*':
      while (patternLen >= 2 && pattern[1] == '*') {
        pattern++;
        patternLen--;
      }
      if (patternLen == 1) return 1;
      while (stringLen) {
        if (match_impl(pattern + 1, patternLen - 1, string, stringLen, nocase, skipLonger, nesting + 1)) return 1;
        if (*skipLonger) return 0;
        string++;
        stringLen--;
      }
      *skipLonger = 1;
      return 0;
    case '?':
      string++;
      stringLen--;
      break;
    case '[': {
      int not, match;
      pattern++;
      patternLen--;
      not = patternLen > 0 && pattern[0] == '^';
      if (not) {
        pattern++;
        patternLen--;
      }
      match = 0;
      for (;;) {
        if (patternLen >= 2 && pattern[0] == '\\') {
          pattern++;
          patternLen--;
          if (pattern[0] == string[0]) match = 1;
        } else if (patternLen == 0) {
          pattern--;
          patternLen++;
          break;
        } else if (pattern[0] == ']') {
          break;
        } else if (patternLen >= 3 && pattern[1] == '-') {
          int start = pattern[0];
          int end = pattern[2];
          int c = string[0];
          if (start > end) {
            int t = start;
            start = end;
            end = t;
          }
          if (nocase) {
            start = low(start);
            end = low(end);
            c = low(c);
          }
          pattern += 2;
          patternLen -= 2;
          if (c >= start && c <= end) match = 1;
        } else if (nocase ? low(pattern[0]) == low(string[0]) : pattern[0] == string[0]) {
          match = 1;
        }
        pattern++;
        patternLen--;
      }
      if (not) match = !match;
      if (!match) return 0;
      string++;
      stringLen--;
      break;
    }
    case '\\':
      if (patternLen >= 2) {
        pattern++;
        patternLen--;
      }
      /* fall through */
    default:
      if (nocase ? low(pattern[0]) != low(string[0]) : pattern[0] != string[0]) return 0;
      string++;
      stringLen--;
      break;
    }
    pattern++;
    patternLen--;
    if (stringLen == 0) {
      while (patternLen > 0 && *pattern == '*') {
        pattern++;
        patternLen--;
      }
      break;
    }
  }
  return patternLen == 0 && stringLen == 0;
}

int kv_glob_match(const ls_u8 *pat, size_t plen, const ls_u8 *str, size_t slen, int nocase) {
  int skip = 0;
  return match_impl((const char *)pat, (long long)plen, (const char *)str, (long long)slen, nocase, &skip, 0);
}
