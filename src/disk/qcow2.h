/*
 * qcow2 images (versions 2 and 3), read and write, behind struct disk_ops.
 * disk_open() finds the magic and calls qcow2_open(); tests and the fuzzer
 * open images on any struct image_file with qcow2_open_file().
 *
 * Metadata caches: L2 tables and refcount blocks are cached and written
 * back on the guest's FLUSH (or when a dirty table must make room). The
 * size is disk_config.cache_size (--disk ...,cache-size=4M), default
 * QCOW2_DEFAULT_CACHE_SIZE: three quarters for L2 tables, a quarter for
 * refcount blocks, at least four tables each. With 64 KiB clusters the
 * default keeps the mapping of 24 GiB of disk in memory.
 */
#ifndef VIREO_DISK_QCOW2_H
#define VIREO_DISK_QCOW2_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "disk/disk.h"

#define QCOW2_DEFAULT_CACHE_SIZE (4ull << 20)

struct image_file;

/* Does this header start a qcow2 image? */
bool qcow2_probe(const void *header, size_t len);

/*
 * Opens the qcow2 image on fd, which disk_open() opened and locked as cfg
 * says; the image owns fd from now on, even on failure. On failure returns
 * NULL and writes one sentence naming the image to err.
 */
struct disk *qcow2_open(int fd, const struct disk_config *cfg, char *err, size_t err_len);

/*
 * The same over any image_file (owned from now on, even on failure), with no
 * lock of its own: backing files are still opened (read-only, shared lock).
 */
struct disk *qcow2_open_file(struct image_file *file, const struct disk_config *cfg, char *err,
			     size_t err_len);

#endif
