/*
 * format.c — printf-style formatting and console printing.
 *
 * One engine (ls_vformat) writes pieces to a sink; snprintf's sink fills a
 * buffer, printf's sink batches into a stack buffer and writes the console
 * when it fills and once at the end.
 */
#include "internal.h"

/* ---- Engine ---------------------------------------------------------------- */

enum { F_LEFT = 1, F_ZERO = 2, F_PLUS = 4, F_SPACE = 8, F_ALT = 16 };

struct out {
  ls_format_sink sink;
  void *ctx;
  size_t total;
};

static void emit(struct out *o, const char *s, size_t n) {
  if (n == 0) return;
  o->sink(o->ctx, s, n);
  o->total += n;
}

static void emit_repeat(struct out *o, char c, size_t n) {
  char pad[32];
  memset(pad, c, n < sizeof pad ? n : sizeof pad);
  while (n > 0) {
    size_t k = n < sizeof pad ? n : sizeof pad;
    emit(o, pad, k);
    n -= k;
  }
}

/* Emits `body` (n bytes) with an optional sign/prefix, honouring width,
 * precision (minimum digits for numbers) and flags. */
static void emit_field(struct out *o, const char *prefix, const char *body, size_t n, int width,
                       int min_digits, int flags) {
  size_t plen = strlen(prefix);
  size_t zeros = min_digits > 0 && (size_t)min_digits > n ? (size_t)min_digits - n : 0;
  size_t len = plen + zeros + n;
  size_t pad = width > 0 && (size_t)width > len ? (size_t)width - len : 0;
  if (!(flags & F_LEFT) && !(flags & F_ZERO)) emit_repeat(o, ' ', pad);
  emit(o, prefix, plen);
  if (!(flags & F_LEFT) && (flags & F_ZERO)) emit_repeat(o, '0', pad);
  emit_repeat(o, '0', zeros);
  emit(o, body, n);
  if (flags & F_LEFT) emit_repeat(o, ' ', pad);
}

/* Digits of v in `base` into the end of buf; returns the start. */
static char *digits(char *end, ls_u64 v, unsigned base, int upper) {
  const char *set = upper ? "0123456789ABCDEF" : "0123456789abcdef";
  char *p = end;
  do {
    *--p = set[v % base];
    v /= base;
  } while (v);
  return p;
}

int ls_vformat(ls_format_sink sink, void *ctx, const char *fmt, va_list ap) {
  struct out o = {sink, ctx, 0};
  while (*fmt) {
    if (*fmt != '%') {
      const char *start = fmt;
      while (*fmt && *fmt != '%') fmt++;
      emit(&o, start, (size_t)(fmt - start));
      continue;
    }
    const char *spec = fmt++;

    int flags = 0;
    for (;; fmt++) {
      if (*fmt == '-') flags |= F_LEFT;
      else if (*fmt == '0') flags |= F_ZERO;
      else if (*fmt == '+') flags |= F_PLUS;
      else if (*fmt == ' ') flags |= F_SPACE;
      else if (*fmt == '#') flags |= F_ALT;
      else break;
    }
    int width = 0;
    if (*fmt == '*') {
      width = va_arg(ap, int);
      if (width < 0) {
        flags |= F_LEFT;
        width = width == (-2147483647 - 1) ? 2147483647 : -width;
      }
      fmt++;
    } else {
      while (ls_isdigit(*fmt)) width = width < 100000000 ? width * 10 + (*fmt++ - '0') : (fmt++, width);
    }
    int precision = -1;
    if (*fmt == '.') {
      fmt++;
      precision = 0;
      if (*fmt == '*') {
        precision = va_arg(ap, int);
        if (precision < 0) precision = -1;
        fmt++;
      } else {
        while (ls_isdigit(*fmt))
          precision = precision < 100000000 ? precision * 10 + (*fmt++ - '0') : (fmt++, precision);
      }
    }
    /* Length: 0 = int, 1 = long, 2 = long long, 3 = size_t/ptrdiff/intmax,
     * -1 = short, -2 = char. */
    int length = 0;
    for (;; fmt++) {
      if (*fmt == 'l') length = length == 1 ? 2 : 1;
      else if (*fmt == 'h') length = length == -1 ? -2 : -1;
      else if (*fmt == 'z' || *fmt == 't' || *fmt == 'j') length = 3;
      else break;
    }
    if (flags & F_LEFT) flags &= ~F_ZERO;

    char conv = *fmt;
    if (conv == '\0') { /* a dangling '%': print it as is */
      emit(&o, spec, (size_t)(fmt - spec));
      break;
    }
    fmt++;

    char buf[LS_FMT_INT_MAX + 8];
    char *end = buf + sizeof buf;
    switch (conv) {
    case 'd':
    case 'i': {
      ls_i64 v;
      if (length == 0) v = va_arg(ap, int);
      else if (length == -1) v = (short)va_arg(ap, int);
      else if (length == -2) v = (signed char)va_arg(ap, int);
      else if (length == 1) v = va_arg(ap, long);
      else v = va_arg(ap, long long);
      ls_u64 mag = v < 0 ? 0 - (ls_u64)v : (ls_u64)v;
      const char *sign = v < 0 ? "-" : (flags & F_PLUS) ? "+" : (flags & F_SPACE) ? " " : "";
      char *p = digits(end, mag, 10, 0);
      if (precision == 0 && mag == 0) p = end;
      if (precision >= 0) flags &= ~F_ZERO;
      emit_field(&o, sign, p, (size_t)(end - p), width, precision, flags);
      break;
    }
    case 'u':
    case 'x':
    case 'X':
    case 'o': {
      ls_u64 v;
      if (length == 0) v = va_arg(ap, unsigned int);
      else if (length == -1) v = (unsigned short)va_arg(ap, unsigned int);
      else if (length == -2) v = (unsigned char)va_arg(ap, unsigned int);
      else if (length == 1) v = va_arg(ap, unsigned long);
      else v = va_arg(ap, unsigned long long);
      unsigned base = conv == 'u' ? 10 : conv == 'o' ? 8 : 16;
      char *p = digits(end, v, base, conv == 'X');
      if (precision == 0 && v == 0) p = end;
      const char *prefix = "";
      if ((flags & F_ALT) && v != 0) prefix = conv == 'x' ? "0x" : conv == 'X' ? "0X" : conv == 'o' ? "0" : "";
      if (precision >= 0) flags &= ~F_ZERO;
      emit_field(&o, prefix, p, (size_t)(end - p), width, precision, flags);
      break;
    }
    case 'p': {
      ls_u64 v = (ls_u64)(unsigned long)va_arg(ap, void *);
      char *p = digits(end, v, 16, 0);
      emit_field(&o, "0x", p, (size_t)(end - p), width, precision, flags);
      break;
    }
    case 'c': {
      char c = (char)va_arg(ap, int);
      emit_field(&o, "", &c, 1, width, -1, flags & ~F_ZERO);
      break;
    }
    case 's': {
      const char *s = va_arg(ap, const char *);
      if (!s) s = "(null)";
      size_t n = precision >= 0 ? strnlen(s, (size_t)precision) : strlen(s);
      emit_field(&o, "", s, n, width, -1, flags & ~F_ZERO);
      break;
    }
    case '%':
      emit(&o, "%", 1);
      break;
    default: /* unknown: copy the whole specification */
      emit(&o, spec, (size_t)(fmt - spec));
      break;
    }
  }
  return o.total > 0x7fffffff ? 0x7fffffff : (int)o.total;
}

/* ---- snprintf --------------------------------------------------------------- */

struct bufsink {
  char *buf;
  size_t size; /* room including the NUL */
  size_t used;
};

static void buf_sink(void *ctx, const char *s, size_t n) {
  struct bufsink *b = ctx;
  if (b->used + 1 < b->size) {
    size_t room = b->size - 1 - b->used;
    memcpy(b->buf + b->used, s, n < room ? n : room);
  }
  b->used += n;
}

int ls_vsnprintf(char *buf, size_t size, const char *fmt, va_list ap) {
  struct bufsink b = {buf, size, 0};
  int n = ls_vformat(buf_sink, &b, fmt, ap);
  if (size > 0) buf[b.used < size ? b.used : size - 1] = '\0';
  return n;
}

int ls_snprintf(char *buf, size_t size, const char *fmt, ...) {
  va_list ap;
  va_start(ap, fmt);
  int n = ls_vsnprintf(buf, size, fmt, ap);
  va_end(ap);
  return n;
}

/* ---- printf ------------------------------------------------------------------ */

#define PRINTF_BUF 2048

struct consink {
  size_t used;
  char buf[PRINTF_BUF];
};

static void con_flush(struct consink *c) {
  if (c->used) ls_console_write(c->buf, c->used);
  c->used = 0;
}

static void con_sink(void *ctx, const char *s, size_t n) {
  struct consink *c = ctx;
  while (n > 0) {
    if (c->used == PRINTF_BUF) con_flush(c);
    size_t k = PRINTF_BUF - c->used;
    if (k > n) k = n;
    memcpy(c->buf + c->used, s, k);
    c->used += k;
    s += k;
    n -= k;
  }
}

int ls_vprintf(const char *fmt, va_list ap) {
  struct consink c;
  c.used = 0;
  int n = ls_vformat(con_sink, &c, fmt, ap);
  con_flush(&c);
  return n;
}

int ls_printf(const char *fmt, ...) {
  va_list ap;
  va_start(ap, fmt);
  int n = ls_vprintf(fmt, ap);
  va_end(ap);
  return n;
}
