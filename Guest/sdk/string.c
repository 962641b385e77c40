/*
 * string.c — memory and string functions, number conversion.
 *
 * The SDK is compiled with -ffreestanding (hence -fno-builtin), so the
 * compiler does not turn these loops back into calls to themselves. The
 * bulk copies use `rep movsb` / `rep stosb`, which are fast on every
 * x86-64 with ERMS, deterministic, and use no SSE registers.
 */
#include "internal.h"

void *memcpy(void *dst, const void *src, size_t n) {
  void *d = dst;
  __asm__ volatile("rep movsb" : "+D"(d), "+S"(src), "+c"(n) : : "memory");
  return dst;
}

void *memmove(void *dst, const void *src, size_t n) {
  unsigned long d = (unsigned long)dst, s = (unsigned long)src;
  if (d - s >= n) return memcpy(dst, src, n); /* no harmful overlap */
  /* dst overlaps the end of src: copy backwards, 8 bytes at a time. */
  ls_u8 *dp = (ls_u8 *)dst + n;
  const ls_u8 *sp = (const ls_u8 *)src + n;
  while (n >= 8) {
    ls_u64 w;
    dp -= 8;
    sp -= 8;
    __builtin_memcpy(&w, sp, 8); /* an unaligned 8-byte load, inlined */
    __builtin_memcpy(dp, &w, 8);
    n -= 8;
  }
  while (n--) *--dp = *--sp;
  return dst;
}

void *memset(void *dst, int c, size_t n) {
  void *d = dst;
  __asm__ volatile("rep stosb" : "+D"(d), "+c"(n) : "a"(c) : "memory");
  return dst;
}

int memcmp(const void *a, const void *b, size_t n) {
  const ls_u8 *p = a, *q = b;
  /* Skip equal 8-byte words quickly, then find the differing byte. */
  while (n >= 8) {
    ls_u64 x, y;
    __builtin_memcpy(&x, p, 8);
    __builtin_memcpy(&y, q, 8);
    if (x != y) break;
    p += 8;
    q += 8;
    n -= 8;
  }
  for (; n > 0; n--, p++, q++)
    if (*p != *q) return *p < *q ? -1 : 1;
  return 0;
}

void *memchr(const void *s, int c, size_t n) {
  const ls_u8 *p = s;
  for (; n > 0; n--, p++)
    if (*p == (ls_u8)c) return (void *)p;
  return 0;
}

size_t strlen(const char *s) {
  const char *p = s;
  while (*p) p++;
  return (size_t)(p - s);
}

size_t strnlen(const char *s, size_t max) {
  size_t n = 0;
  while (n < max && s[n]) n++;
  return n;
}

int strcmp(const char *a, const char *b) {
  while (*a && *a == *b) a++, b++;
  return (ls_u8)*a - (ls_u8)*b;
}

int strncmp(const char *a, const char *b, size_t n) {
  for (; n > 0; n--, a++, b++) {
    if (*a != *b) return (ls_u8)*a - (ls_u8)*b;
    if (!*a) return 0;
  }
  return 0;
}

int strcasecmp(const char *a, const char *b) {
  int x, y;
  do {
    x = ls_tolower((ls_u8)*a++);
    y = ls_tolower((ls_u8)*b++);
  } while (x && x == y);
  return x - y;
}

int strncasecmp(const char *a, const char *b, size_t n) {
  for (; n > 0; n--) {
    int x = ls_tolower((ls_u8)*a++), y = ls_tolower((ls_u8)*b++);
    if (x != y) return x - y;
    if (!x) return 0;
  }
  return 0;
}

char *strchr(const char *s, int c) {
  for (;; s++) {
    if (*s == (char)c) return (char *)s;
    if (!*s) return 0;
  }
}

char *strrchr(const char *s, int c) {
  const char *found = 0;
  for (;; s++) {
    if (*s == (char)c) found = s;
    if (!*s) return (char *)found;
  }
}

char *strstr(const char *haystack, const char *needle) {
  return ls_memmem(haystack, strlen(haystack), needle, strlen(needle));
}

void *ls_memmem(const void *hay, size_t m, const void *needle, size_t n) {
  const ls_u8 *h = hay, *nd = needle;
  if (n == 0) return (void *)h;
  while (m >= n) {
    const ls_u8 *p = memchr(h, nd[0], m - n + 1);
    if (!p) return 0;
    if (memcmp(p, nd, n) == 0) return (void *)p;
    m -= (size_t)(p - h) + 1;
    h = p + 1;
  }
  return 0;
}

size_t ls_strlcpy(char *dst, const char *src, size_t size) {
  size_t len = strlen(src);
  if (size > 0) {
    size_t n = len < size - 1 ? len : size - 1;
    memcpy(dst, src, n);
    dst[n] = '\0';
  }
  return len;
}

/* ---- Numbers ------------------------------------------------------------- */

/* Digits only, at least one; *out = value; LS_EINVAL on overflow. */
static int parse_digits(const char *s, size_t len, ls_u64 *out) {
  if (len == 0) return LS_EINVAL;
  ls_u64 v = 0;
  for (size_t i = 0; i < len; i++) {
    if (!ls_isdigit(s[i])) return LS_EINVAL;
    if (__builtin_mul_overflow(v, 10u, &v) || __builtin_add_overflow(v, (ls_u64)(s[i] - '0'), &v))
      return LS_EINVAL;
  }
  *out = v;
  return 0;
}

int ls_parse_u64(const char *s, size_t len, ls_u64 *out) {
  if (len > 0 && s[0] == '+') s++, len--;
  return parse_digits(s, len, out);
}

int ls_parse_i64(const char *s, size_t len, ls_i64 *out) {
  int negative = 0;
  if (len > 0 && (s[0] == '-' || s[0] == '+')) {
    negative = s[0] == '-';
    s++, len--;
  }
  ls_u64 magnitude;
  if (parse_digits(s, len, &magnitude) != 0) return LS_EINVAL;
  if (negative) {
    if (magnitude > (1ull << 63)) return LS_EINVAL;
    *out = (ls_i64)(0 - magnitude); /* -2^63 maps to itself */
  } else {
    if (magnitude > (ls_u64)0x7fffffffffffffffll) return LS_EINVAL;
    *out = (ls_i64)magnitude;
  }
  return 0;
}

int ls_parse_hex_u64(const char *s, size_t len, ls_u64 *out) {
  if (len == 0 || len > 16) return LS_EINVAL;
  ls_u64 v = 0;
  for (size_t i = 0; i < len; i++) {
    int c = s[i];
    if (!ls_isxdigit(c)) return LS_EINVAL;
    v = v << 4 | (ls_u64)(ls_isdigit(c) ? c - '0' : (c | 32) - 'a' + 10);
  }
  *out = v;
  return 0;
}

size_t ls_format_u64(char *buf, ls_u64 v) {
  char tmp[LS_FMT_INT_MAX];
  size_t n = 0;
  do {
    tmp[n++] = (char)('0' + v % 10);
    v /= 10;
  } while (v);
  for (size_t i = 0; i < n; i++) buf[i] = tmp[n - 1 - i];
  buf[n] = '\0';
  return n;
}

size_t ls_format_i64(char *buf, ls_i64 v) {
  if (v < 0) {
    buf[0] = '-';
    return 1 + ls_format_u64(buf + 1, 0 - (ls_u64)v);
  }
  return ls_format_u64(buf, (ls_u64)v);
}
