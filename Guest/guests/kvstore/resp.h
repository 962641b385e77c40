/*
 * resp.h — an incremental parser for Redis requests (RESP2 multibulk and
 * inline), with Redis 7's exact acceptance rules and protocol errors.
 *
 * The caller keeps the bytes of a partial request: every call presents the
 * request from its first byte, with possibly more bytes after what the
 * previous call saw (the prefix must be unchanged). The parser remembers how
 * far it got (as offsets), so a large request costs linear time no matter
 * how it is split. A complete request can be parsed straight from the rx
 * ring without copying.
 *
 * No SDK dependency besides the allocator seam in kv.h; the fuzz target
 * Guest/fuzz/resp_fuzz.c builds this file on the host.
 */
#ifndef KV_RESP_H
#define KV_RESP_H

#include "kv.h"

/* Redis's PROTO_INLINE_MAX_SIZE: an inline request, or a multibulk or bulk
 * count line, may be at most this long before a terminator is seen. */
#define RESP_INLINE_MAX (64u * 1024u)
#define RESP_FIXED_ARGS 16

/* resp_parse results. */
enum {
  RESP_INCOMPLETE = 0, /* need more bytes */
  RESP_COMMAND = 1,    /* a request: argc args in argv, *used bytes */
  RESP_EMPTY = 2,      /* a request with no arguments (e.g. "*0", blank line): skip *used bytes */
  RESP_ERROR = -1,     /* protocol error: reply "-ERR <error>" and close */
  RESP_NOMEM = -2,     /* allocation failed */
};

struct resp_parser {
  int type;          /* 0 = not known yet, else RESP_TYPE_* (resp.c) */
  size_t pos;        /* bytes of the request parsed so far */
  size_t scanned;    /* bytes from pos already searched for a line end */
  int nul_seen;      /* a NUL byte precedes the line end: Redis's strchr never finds it */
  long long left;    /* multibulk: arguments still to read; -1 = count line not read */
  long long bulk;    /* multibulk: length of the argument being read, -1 = its header not read */
  size_t argc, cap;
  struct kv_arg *argv; /* while parsing, argv[i].ptr holds an offset */
  struct kv_arg fixed[RESP_FIXED_ARGS];
  ls_u8 *scratch; /* inline requests: the unquoted arguments */
  size_t scratch_cap;
  char error[64];
};

void resp_init(struct resp_parser *p);
/* Forgets the current request (after RESP_COMMAND / RESP_EMPTY); drops
 * buffers that grew large. */
void resp_reset(struct resp_parser *p);
void resp_free(struct resp_parser *p);
/* Parses buf[0..len) (the current request from its first byte). On
 * RESP_COMMAND, p->argv[0..argc) point into buf or into p->scratch and stay
 * valid until the next resp_* call. */
int resp_parse(struct resp_parser *p, const ls_u8 *buf, size_t len, size_t *used);
/* The request length below which the next resp_parse cannot progress (0 when
 * any new byte may help). Lets the caller reserve buffer space for a large
 * argument and skip useless calls. */
size_t resp_need(const struct resp_parser *p);

#endif
