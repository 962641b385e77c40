/*
 * internal.h — shared between the SDK's own files; not for guests.
 */
#ifndef LS_SDK_INTERNAL_H
#define LS_SDK_INTERNAL_H

#include "lockstep.h"

#define LS_LIKELY(x) __builtin_expect(!!(x), 1)
#define LS_UNLIKELY(x) __builtin_expect(!!(x), 0)
#define LS_MIN(a, b) ((a) < (b) ? (a) : (b))
#define LS_MAX(a, b) ((a) > (b) ? (a) : (b))

/* Set by ls__start (and by hosted tests). */
extern const struct ls_boot_info *ls__boot;

/* Run by ls_exit before LS_OP_EXIT; net.c sets it to flush tx. */
extern void (*ls__exit_hook)(void);

#endif
