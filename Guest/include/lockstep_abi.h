/*
 * lockstep_abi.h — Lockstep guest ABI, version 1.
 *
 * This header is the entire contract between a Lockstep guest and the VMM
 * (docs/guest-abi.md explains it in prose). The VMM's Swift code mirrors
 * every constant and layout here; a change is an ABI version bump.
 *
 * Model: the guest runs in ring 3, single vCPU, long mode, identity-mapped.
 * It has no interrupts and no timers. Every interaction with the outside
 * world is a hypercall: one 8-byte store of a descriptor's guest-physical
 * address to the doorbell. The store exits to the VMM, which validates the
 * descriptor, performs the call, writes the results into the descriptor (and
 * into guest buffers) and resumes the guest after the store.
 *
 * Freestanding: no libc headers are needed.
 */
#ifndef LOCKSTEP_ABI_H
#define LOCKSTEP_ABI_H

typedef unsigned char ls_u8;
typedef unsigned short ls_u16;
typedef unsigned int ls_u32;
typedef int ls_i32;
typedef unsigned long long ls_u64;
typedef long long ls_i64;

#define LS_ABI_VERSION 1u

/* ---- Guest-physical layout -------------------------------------------- */

/* Page 0 is unmapped (null pointers fault). 0x1000..0xFFFFF holds the
 * VMM's page tables, GDT, TSS, IDT and exception stubs, mapped supervisor-
 * only. The guest image is linked at 1 MiB. */
#define LS_IMAGE_BASE 0x100000ull
/* The boot-info page (read-only to the guest by convention; the VMM never
 * reads it back). Its address is also passed in %rdi at entry. */
#define LS_BOOT_INFO_GPA 0x10000ull
/* The doorbell: a page with no memory behind it. */
#define LS_DOORBELL_GPA 0xE0000000ull
/* Offset 8 of the doorbell page is written by the ring-0 exception stubs
 * with the address of the exception frame. A guest never writes it. */
#define LS_FAULT_DOORBELL_GPA (LS_DOORBELL_GPA + 8ull)
/* Guest RAM is at most 3 GiB. */
#define LS_MAX_MEMORY 0xC0000000ull

#define LS_BOOT_MAGIC 0x31544f4f42534cull /* "LSBOOT1" */

struct ls_boot_info {
  ls_u64 magic;          /* LS_BOOT_MAGIC */
  ls_u32 abi_version;    /* LS_ABI_VERSION */
  ls_u32 flags;          /* reserved, 0 */
  ls_u64 memory_size;    /* bytes of guest RAM, from GPA 0 */
  ls_u64 heap_start;     /* first free byte after the image (page aligned) */
  ls_u64 heap_end;       /* end of the heap = lowest byte of the stack area */
  ls_u64 stack_top;      /* initial %rsp */
  ls_u64 disk_size;      /* bytes on the block device; 0 when none */
  ls_u32 args_length;    /* bytes of args, not counting the NUL */
  ls_u32 reserved;
  char args[3968];       /* NUL-terminated argument string (--guest-args) */
};

/* ---- Hypercalls -------------------------------------------------------- */

/* A descriptor: 8-byte aligned, wholly inside guest RAM. The VMM reads
 * `op` and `arg`, writes `result` and `out`. */
struct ls_call {
  ls_u32 op;      /* LS_OP_* */
  ls_i32 result;  /* written by the VMM: 0 or a negative LS_E* code */
  ls_u64 arg[4];  /* inputs */
  ls_u64 out[3];  /* outputs */
};

enum {
  /* Deterministic calls (a function of guest state). */
  LS_OP_NOP = 0,           /* nothing; for measuring the exit path */
  LS_OP_CONSOLE_WRITE = 1, /* arg0 = buffer, arg1 = length (<= 64 KiB) */
  LS_OP_EXIT = 2,          /* arg0 = exit code; does not return */
  LS_OP_ABORT = 3,         /* arg0 = message, arg1 = length; does not return */
  LS_OP_NET_ATTACH = 4,    /* arg0 = rx ring, arg1 = rx capacity,
                              arg2 = tx ring, arg3 = tx capacity */
  LS_OP_NET_FLUSH = 5,     /* drain the tx ring now */
  LS_OP_BLOCK_WRITE = 6,   /* arg0 = byte offset, arg1 = buffer, arg2 = length */
  LS_OP_BLOCK_FLUSH = 7,   /* make every write durable */
  /* Nondeterministic calls (their results are logged and replayed). */
  LS_OP_CLOCK = 16,        /* out0 = monotonic ns, out1 = wall-clock ns
                              since the Unix epoch */
  LS_OP_ENTROPY = 17,      /* arg0 = buffer, arg1 = length (<= 4096) */
  LS_OP_WAIT = 18,         /* arg0 = deadline (monotonic ns; 0 = poll,
                              ~0 = none); out0 = LS_READY_* mask,
                              out1 = monotonic ns at return */
  LS_OP_BLOCK_READ = 19,   /* arg0 = byte offset, arg1 = buffer, arg2 = length */
};

/* Results. */
#define LS_OK 0
#define LS_EINVAL (-1)   /* an argument is out of its documented range */
#define LS_ENOSYS (-2)   /* unknown op */
#define LS_ENODEV (-3)   /* the device is not configured (no disk, no net) */
#define LS_EIO (-4)      /* the host device failed */

/* Ready mask returned by LS_OP_WAIT. */
#define LS_READY_NET 1ull     /* the rx ring holds messages */
#define LS_READY_TIMEOUT 2ull /* the deadline passed */

/* Block devices use 512-byte sectors: offsets and lengths are multiples of
 * LS_SECTOR_SIZE; one call moves at most LS_BLOCK_MAX_IO bytes. */
#define LS_SECTOR_SIZE 512ull
#define LS_BLOCK_MAX_IO (1ull << 20)
#define LS_CONSOLE_MAX 65536ull
#define LS_ENTROPY_MAX 4096ull

/* ---- Net rings --------------------------------------------------------- */

/* A ring is a header followed by `capacity` bytes of data (capacity is a
 * power of two, 4 KiB .. 64 MiB, given to LS_OP_NET_ATTACH). `head` and
 * `tail` are free-running byte counters: the producer advances head, the
 * consumer advances tail; used = head - tail <= capacity. The VMM is the
 * producer of rx and the consumer of tx, and touches the rings only during
 * an exit. Bad indices stop the VM. */
struct ls_ring {
  ls_u64 head;
  ls_u64 tail;
  ls_u64 reserved[6];
  /* ls_u8 data[capacity] follows */
};

/* A message: this header, then `length` payload bytes, then padding to a
 * multiple of 8. A message never wraps: a producer that lacks room before
 * the end of the data area writes an LS_MSG_PAD header (if 16 bytes fit)
 * or simply skips the remaining bytes (if fewer than 16), and the consumer
 * does the same. */
struct ls_msg {
  ls_u32 conn;   /* connection id, assigned by the VMM, never reused */
  ls_u16 type;   /* LS_MSG_* */
  ls_u16 flags;  /* reserved, 0 */
  ls_u32 length; /* payload bytes */
  ls_u32 reserved;
};

enum {
  LS_MSG_PAD = 0,    /* skip to the start of the data area */
  /* rx: VMM -> guest */
  LS_MSG_OPEN = 1,   /* a client connected; payload = "ip:port" */
  LS_MSG_DATA = 2,   /* bytes from the client / to the client */
  LS_MSG_CLOSED = 3, /* the client went away; the id is dead */
  /* tx: guest -> VMM */
  LS_MSG_CLOSE = 4,  /* close the connection (after sending what precedes) */
};

#define LS_MSG_HEADER 16u
#define LS_MSG_MAX_PAYLOAD (1u << 20)
#define LS_RING_MIN 4096ull
#define LS_RING_MAX (64ull << 20)

#endif /* LOCKSTEP_ABI_H */
