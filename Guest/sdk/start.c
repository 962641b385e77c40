/*
 * start.c — from _start (crt0.S) to ls_main.
 */
#include "internal.h"

/* Provided by the linker script. */
extern char __image_start[], __image_end[];

/* Console output that needs nothing initialised (no heap, no printf). */
static void early_say(const char *s) { ls_console_write(s, strlen(s)); }

LS_NORETURN void ls__start(const struct ls_boot_info *boot);

void ls__start(const struct ls_boot_info *boot) {
  if (boot == 0 || boot->magic != LS_BOOT_MAGIC) ls_abort("lockstep sdk: bad boot-info magic");
  if (boot->abi_version != LS_ABI_VERSION) {
    early_say("lockstep sdk: the VMM speaks another ABI version\n");
    ls_abort("lockstep sdk: ABI version mismatch");
  }
  if (boot->args_length >= sizeof boot->args || boot->args[boot->args_length] != '\0')
    ls_abort("lockstep sdk: boot-info args are not NUL-terminated");
  ls__boot = boot;

  /* The heap must lie above the image and inside RAM. */
  ls_u64 image_end = (ls_u64)(unsigned long)__image_end;
  if (boot->heap_start < image_end || boot->heap_end < boot->heap_start ||
      boot->heap_end > boot->memory_size)
    ls_abort("lockstep sdk: boot-info heap range is invalid");
  if (ls_heap_init((void *)(unsigned long)boot->heap_start,
                   (void *)(unsigned long)boot->heap_end) != 0)
    ls_abort("lockstep sdk: heap range too small");

  ls_exit(ls_main(boot));
}
