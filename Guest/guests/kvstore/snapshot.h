/*
 * snapshot.h — the on-disk snapshot (SAVE, and loading at boot).
 *
 * Layout on the block device (all integers little-endian):
 *
 *   sector 0 (512 bytes): the header
 *     0  magic "LSKVSNAP"
 *     8  u32 version (1)
 *     12 u32 header bytes covered by the header checksum (64)
 *     16 u64 data offset (a multiple of 4096, >= 4096)
 *     24 u64 data length (bytes)
 *     32 u64 number of keys
 *     40 u64 data checksum
 *     48 i64 wall-clock ms when saved
 *     56 u64 header checksum: kv_hash(bytes 0..55, KV_SNAP_SEED)
 *   the data: one record per key, back to back
 *     u8 type (1 string, 2 list, 3 hash), i64 absolute expiry in wall-clock
 *     ms (-1: none), u32 key length, key bytes, then
 *       string: u32 length, bytes
 *       list:   u64 count, then count x (u32 length, bytes)
 *       hash:   u64 count, then count x (u32 field length, field, u32 value length, value)
 *   The data checksum is h = KV_SNAP_SEED; h = kv_hash(chunk, n, h) over
 *   the data in KV_SNAP_CHUNK-byte chunks (the last one shorter).
 *
 * SAVE writes the data (padded with zeros to a sector), flushes, then writes
 * the header and flushes again, so a crash during SAVE leaves the previous
 * header. The new data goes where it does not overwrite the previous
 * snapshot's data when the disk has room for both (at 4096, or right after
 * the previous data), so the previous snapshot stays intact until the new
 * header is written.
 *
 * Host-buildable: the device is reached through struct kv_snap_io.
 */
#ifndef KV_SNAPSHOT_H
#define KV_SNAPSHOT_H

#include "kv.h"

#define KV_SNAP_MAGIC "LSKVSNAP"
#define KV_SNAP_VERSION 1u
#define KV_SNAP_SEED 0x4c534b56534e4150ull /* "LSKVSNAP" */
#define KV_SNAP_CHUNK (256u * 1024u)
#define KV_SNAP_DATA_ALIGN 4096u
#define KV_SNAP_SECTOR 512u

struct kv_snap_io {
  /* Transfers at sector-aligned offsets, sector-multiple lengths; 0 or a
   * negative error. */
  int (*read)(void *ctx, ls_u64 offset, void *buf, size_t len);
  int (*write)(void *ctx, ls_u64 offset, const void *buf, size_t len);
  int (*flush)(void *ctx);
  void *ctx;
  ls_u64 disk_size;
};

/* Where the current valid snapshot's data is (from the last load or save);
 * length 0 when there is none. */
struct kv_snap_state {
  ls_u64 offset, length;
};
extern struct kv_snap_state kv_snap_current;

/* Writes a snapshot of the store (keys already expired at kv_now_ms are
 * left out). Returns NULL, or an error message for the client (with its
 * "ERR " prefix), e.g. when the disk is too small or I/O fails. */
const char *kv_snapshot_save(struct kv_snap_io *io);

/* Loads the snapshot on the device into the (empty) store, skipping keys
 * that have expired. Returns 0 with *keys set, or -1 with a message in
 * `why` (no snapshot, corrupt, out of memory): the store is then empty. */
int kv_snapshot_load(struct kv_snap_io *io, ls_u64 *keys, char *why, size_t why_len);

#endif
