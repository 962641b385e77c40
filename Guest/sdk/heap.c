/*
 * heap.c — the guest's memory allocator.
 *
 * A boundary-tag allocator in the style of dlmalloc, sized for a
 * long-running server that allocates and frees millions of objects:
 *
 *   - Every chunk starts with an 8-byte header: its size (a multiple of 16,
 *     at least 32) and two flag bits, INUSE and PREV_INUSE. The payload
 *     follows the header and is 16-byte aligned, so chunk addresses are
 *     8 mod 16.
 *   - A free chunk also holds free-list links after its header and a copy
 *     of its size in its last 8 bytes (the footer), so the chunk after it
 *     can find its start when coalescing backwards.
 *   - Free chunks are coalesced with their neighbours immediately; no two
 *     free chunks are ever adjacent, and the chunk right below the "top"
 *     (the never-used wilderness at the end of the heap) is always in use.
 *   - Free chunks live in segregated lists: exact 16-byte classes below
 *     1 KiB, and 16 classes per power of two above (as in TLSF). A bitmap of
 *     non-empty lists finds the smallest fitting class in a few steps.
 *
 * Everything is O(1) except a bounded first-fit scan of one large class.
 * The allocator is not thread-safe (guests have one thread).
 */
#include "internal.h"

#define HDR 8ul              /* header bytes */
#define MIN_CHUNK 32ul       /* header + two links + footer */
#define INUSE 1ul
#define PREV_INUSE 2ul
#define FLAG_MASK 15ul
#define SMALL_LIMIT 1024ul   /* sizes below this have exact classes */
#define SMALL_BINS 64u       /* size / 16, 0..63 (0 and 1 unused) */
#define SUB_BITS 4u          /* 16 classes per power of two */
#define SUB_BINS (1u << SUB_BITS)
#define FIRST_LARGE_LOG2 10u /* 1 KiB */
#define NBINS (SMALL_BINS + SUB_BINS * (64u - FIRST_LARGE_LOG2))
#define NWORDS ((NBINS + 63u) / 64u)
#define LARGE_SCAN 16        /* first-fit scan budget in a large class */

struct chunk {
  size_t head;        /* size | flags */
  struct chunk *next; /* free chunks only */
  struct chunk *prev; /* free chunks only */
};

static struct {
  unsigned long base;  /* first chunk */
  unsigned long top;   /* start of the wilderness */
  unsigned long limit; /* end of the wilderness (8 mod 16) */
  size_t in_use;
  size_t allocations;
  struct chunk *bins[NBINS];
  ls_u64 bitmap[NWORDS];
} heap;

/* ---- Chunk helpers ------------------------------------------------------ */

static inline size_t chunk_size(const struct chunk *c) { return c->head & ~FLAG_MASK; }
static inline struct chunk *at(unsigned long a) { return (struct chunk *)a; }
static inline unsigned long addr_of(const void *p) { return (unsigned long)p; }
static inline void *payload(struct chunk *c) { return (void *)(addr_of(c) + HDR); }
static inline struct chunk *chunk_of(const void *p) { return at(addr_of(p) - HDR); }
static inline void set_footer(struct chunk *c, size_t size) {
  *(size_t *)(addr_of(c) + size - 8) = size;
}
static inline size_t prev_footer(const struct chunk *c) { return *(const size_t *)(addr_of(c) - 8); }

/* ---- Size classes ----------------------------------------------------------- */

static inline unsigned log2_floor(size_t v) { return 63u - (unsigned)__builtin_clzll(v); }

static unsigned bin_index(size_t size) {
  if (size < SMALL_LIMIT) return (unsigned)(size >> 4);
  unsigned fl = log2_floor(size);
  unsigned sl = (unsigned)(size >> (fl - SUB_BITS)) & (SUB_BINS - 1);
  return SMALL_BINS + (fl - FIRST_LARGE_LOG2) * SUB_BINS + sl;
}

static inline void bitmap_set(unsigned i) { heap.bitmap[i / 64] |= 1ull << (i % 64); }
static inline void bitmap_clear(unsigned i) { heap.bitmap[i / 64] &= ~(1ull << (i % 64)); }

/* The first non-empty bin with index >= i, or NBINS. */
static unsigned bitmap_next(unsigned i) {
  if (i >= NBINS) return NBINS;
  unsigned w = i / 64;
  ls_u64 bits = heap.bitmap[w] & (~0ull << (i % 64));
  for (;;) {
    if (bits) return w * 64 + (unsigned)__builtin_ctzll(bits);
    if (++w >= NWORDS) return NBINS;
    bits = heap.bitmap[w];
  }
}

static void bin_insert(struct chunk *c) {
  unsigned i = bin_index(chunk_size(c));
  struct chunk *first = heap.bins[i];
  c->prev = 0;
  c->next = first;
  if (first) first->prev = c;
  heap.bins[i] = c;
  bitmap_set(i);
}

static void bin_remove(struct chunk *c) {
  if (c->prev) {
    c->prev->next = c->next;
  } else {
    unsigned i = bin_index(chunk_size(c));
    heap.bins[i] = c->next;
    if (!c->next) bitmap_clear(i);
  }
  if (c->next) c->next->prev = c->prev;
}

/* ---- Core ----------------------------------------------------------------- */

/* Bytes of chunk needed for an n-byte request; 0 if impossible. */
static size_t request_size(size_t n) {
  if (n > ((size_t)-1) / 2) return 0;
  size_t s = (n + HDR + 15) & ~15ul;
  return s < MIN_CHUNK ? MIN_CHUNK : s;
}

static LS_NORETURN void corrupt(const char *what, const void *p) {
  ls_abortf("heap: %s (%p)", what, p);
}

/* Marks chunk `c` (size `size`, flags in its header already) in use and
 * tells the chunk after it. */
static void mark_used(struct chunk *c) {
  c->head |= INUSE;
  unsigned long n = addr_of(c) + chunk_size(c);
  if (n != heap.top) at(n)->head |= PREV_INUSE;
}

/* Returns a chunk that is no longer in use to the free structures:
 * coalesces it with free neighbours (or the top) and bins the result.
 * `c`'s header holds its size and PREV_INUSE; INUSE is ignored. */
static void release(struct chunk *c) {
  size_t size = chunk_size(c);
  if (!(c->head & PREV_INUSE)) {
    size_t psize = prev_footer(c);
    struct chunk *p = at(addr_of(c) - psize);
    if (psize < MIN_CHUNK || (psize & FLAG_MASK) || addr_of(p) < heap.base || chunk_size(p) != psize ||
        (p->head & INUSE))
      corrupt("bad footer before chunk", c);
    bin_remove(p);
    c = p;
    size += psize;
  }
  unsigned long n = addr_of(c) + size;
  if (n == heap.top) {
    heap.top = addr_of(c); /* the chunk below c is in use: c is the new top */
    return;
  }
  struct chunk *next = at(n);
  if (!(next->head & INUSE)) {
    bin_remove(next);
    size += chunk_size(next);
    n = addr_of(c) + size;
    if (n == heap.top) { /* cannot happen while the invariants hold */
      heap.top = addr_of(c);
      return;
    }
  }
  c->head = size | PREV_INUSE;
  set_footer(c, size);
  at(n)->head &= ~PREV_INUSE;
  bin_insert(c);
}

/* Cuts chunk `c` (in use) down to `need` bytes if the rest makes a chunk;
 * the rest is released. */
static void trim(struct chunk *c, size_t need) {
  size_t size = chunk_size(c);
  if (size - need < MIN_CHUNK) return;
  c->head = need | (c->head & FLAG_MASK);
  struct chunk *rest = at(addr_of(c) + need);
  rest->head = (size - need) | PREV_INUSE;
  release(rest);
}

/* A free chunk of at least `need` bytes taken off its list, or NULL. */
static struct chunk *take_free(size_t need) {
  unsigned i = bin_index(need);
  if (need >= SMALL_LIMIT) {
    /* This class also holds smaller chunks: a short first-fit scan. */
    int budget = LARGE_SCAN;
    for (struct chunk *c = heap.bins[i]; c && budget-- > 0; c = c->next) {
      if (chunk_size(c) >= need) {
        bin_remove(c);
        return c;
      }
    }
    i++;
  }
  /* Every chunk in bin i (small: exact size) or above is large enough. */
  i = bitmap_next(i);
  if (i == NBINS) return 0;
  struct chunk *c = heap.bins[i];
  bin_remove(c);
  return c;
}

static struct chunk *allocate(size_t need) {
  struct chunk *c = take_free(need);
  if (c) {
    /* c->head keeps PREV_INUSE (set: its predecessor cannot be free). */
    mark_used(c);
    trim(c, need);
  } else {
    if (need > heap.limit - heap.top) return 0;
    c = at(heap.top);
    heap.top += need;
    c->head = need | INUSE | PREV_INUSE; /* below the top is always in use */
  }
  heap.in_use += chunk_size(c);
  heap.allocations++;
  return c;
}

/* Validates a pointer handed to free/realloc; returns its chunk. */
static struct chunk *checked_chunk(const void *p) {
  unsigned long a = addr_of(p);
  if ((a & 15) != 0 || a < heap.base + HDR || a >= heap.top) corrupt("pointer not from this heap", p);
  struct chunk *c = chunk_of(p);
  size_t size = chunk_size(c);
  if (!(c->head & INUSE)) corrupt("double free or invalid pointer", p);
  if (size < MIN_CHUNK || addr_of(c) + size > heap.top) corrupt("bad chunk header", p);
  unsigned long n = addr_of(c) + size;
  if (n != heap.top && !(at(n)->head & PREV_INUSE)) corrupt("bad chunk header", p);
  return c;
}

/* ---- Public API --------------------------------------------------------- */

int ls_heap_init(void *start, void *end) {
  unsigned long s = addr_of(start), e = addr_of(end);
  if (e < s) return LS_EINVAL;
  memset(&heap, 0, sizeof heap);
  heap.base = ((s + HDR + 15) & ~15ul) - HDR;
  heap.limit = e >= 8 ? ((e - 8) & ~15ul) + 8 : 0;
  if (heap.limit < heap.base) heap.limit = heap.base; /* an empty heap */
  heap.top = heap.base;
  return 0;
}

void *ls_malloc(size_t n) {
  size_t need = request_size(n);
  if (need == 0) return 0;
  struct chunk *c = allocate(need);
  return c ? payload(c) : 0;
}

void ls_free(void *p) {
  if (!p) return;
  struct chunk *c = checked_chunk(p);
  heap.in_use -= chunk_size(c);
  heap.allocations--;
  release(c);
}

void *ls_calloc(size_t count, size_t size) {
  size_t n;
  if (__builtin_mul_overflow(count, size, &n)) return 0;
  void *p = ls_malloc(n);
  if (p) memset(p, 0, n);
  return p;
}

void *ls_realloc(void *p, size_t n) {
  if (!p) return ls_malloc(n);
  if (n == 0) {
    ls_free(p);
    return 0;
  }
  size_t need = request_size(n);
  if (need == 0) return 0;
  struct chunk *c = checked_chunk(p);
  size_t size = chunk_size(c);
  if (need <= size) {
    heap.in_use -= size;
    trim(c, need);
    heap.in_use += chunk_size(c);
    return p;
  }
  /* Grow in place into the top or a free successor. */
  unsigned long n_addr = addr_of(c) + size;
  if (n_addr == heap.top) {
    if (need - size <= heap.limit - heap.top) {
      heap.top = addr_of(c) + need;
      c->head = need | (c->head & FLAG_MASK);
      heap.in_use += need - size;
      return p;
    }
  } else {
    struct chunk *next = at(n_addr);
    if (!(next->head & INUSE) && size + chunk_size(next) >= need) {
      bin_remove(next);
      c->head = (size + chunk_size(next)) | (c->head & FLAG_MASK);
      mark_used(c);
      trim(c, need);
      heap.in_use += chunk_size(c) - size;
      return p;
    }
  }
  void *q = ls_malloc(n);
  if (!q) return 0;
  memcpy(q, p, size - HDR);
  ls_free(p);
  return q;
}

void *ls_memalign(size_t align, size_t n) {
  if (align == 0 || (align & (align - 1))) return 0;
  if (align <= 16) return ls_malloc(n);
  size_t need = request_size(n);
  if (need == 0 || align > ((size_t)-1) / 4) return 0;
  /* Over-allocate, then give back a leading piece of at least MIN_CHUNK. */
  void *raw = ls_malloc(need + align + MIN_CHUNK);
  if (!raw) return 0;
  unsigned long a = addr_of(raw);
  if ((a & (align - 1)) == 0) {
    struct chunk *c = chunk_of(raw);
    heap.in_use -= chunk_size(c);
    trim(c, need);
    heap.in_use += chunk_size(c);
    return raw;
  }
  unsigned long aligned = (a + align - 1) & ~(unsigned long)(align - 1);
  if (aligned - a < MIN_CHUNK) aligned += align;
  struct chunk *c = chunk_of(raw);
  size_t size = chunk_size(c);
  size_t lead = aligned - a;
  struct chunk *ac = chunk_of((void *)aligned);
  ac->head = (size - lead) | INUSE; /* PREV_INUSE clear: the lead is freed */
  c->head = lead | (c->head & PREV_INUSE);
  heap.in_use -= lead;
  release(c);
  heap.in_use -= chunk_size(ac);
  trim(ac, need);
  heap.in_use += chunk_size(ac);
  return (void *)aligned;
}

size_t ls_malloc_usable_size(const void *p) {
  if (!p) return 0;
  return chunk_size(checked_chunk(p)) - HDR;
}

void ls_heap_stats(struct ls_heap_stats *out) {
  size_t total = heap.limit - heap.base;
  out->total = total;
  out->in_use = heap.in_use;
  out->free = total - heap.in_use;
  out->allocations = heap.allocations;
}

int ls_heap_check(void) {
  size_t free_chunks = 0, used = 0, count = 0;
  int prev_used = 1;
  unsigned long a = heap.base;
  while (a < heap.top) {
    struct chunk *c = at(a);
    size_t size = chunk_size(c);
    if (size < MIN_CHUNK || a + size > heap.top) return LS_ECORRUPT;
    if (((c->head & PREV_INUSE) != 0) != prev_used) return LS_ECORRUPT;
    int in_use = (c->head & INUSE) != 0;
    if (in_use) {
      used += size;
      count++;
    } else {
      if (!prev_used) return LS_ECORRUPT; /* two adjacent free chunks */
      if (prev_footer(at(a + size)) != size) return LS_ECORRUPT;
      if (bin_index(size) >= NBINS) return LS_ECORRUPT;
      free_chunks++;
    }
    prev_used = in_use;
    a += size;
  }
  if (a != heap.top || !prev_used) return LS_ECORRUPT;
  if (used != heap.in_use || count != heap.allocations) return LS_ECORRUPT;
  size_t listed = 0;
  for (unsigned i = 0; i < NBINS; i++) {
    int bit = (heap.bitmap[i / 64] >> (i % 64)) & 1;
    if (bit != (heap.bins[i] != 0)) return LS_ECORRUPT;
    struct chunk *prev = 0;
    for (struct chunk *c = heap.bins[i]; c; prev = c, c = c->next) {
      if (addr_of(c) < heap.base || addr_of(c) >= heap.top) return LS_ECORRUPT;
      if ((c->head & INUSE) || bin_index(chunk_size(c)) != i || c->prev != prev) return LS_ECORRUPT;
      if (++listed > free_chunks) return LS_ECORRUPT;
    }
  }
  return listed == free_chunks ? 0 : LS_ECORRUPT;
}

/* The standard names, for code written against libc. Hosted tests keep
 * the host's malloc. */
#ifndef LS_HOST_TEST
void *malloc(size_t n);
void free(void *p);
void *calloc(size_t count, size_t size);
void *realloc(void *p, size_t n);
void *malloc(size_t n) { return ls_malloc(n); }
void free(void *p) { ls_free(p); }
void *calloc(size_t count, size_t size) { return ls_calloc(count, size); }
void *realloc(void *p, size_t n) { return ls_realloc(p, n); }
#endif
