/*
 * A disk image behind a virtio-blk device: the backend seam. Formats (raw,
 * qcow2) implement struct disk_ops; the device never sees which.
 * Offsets and lengths are in bytes and already checked against the size.
 */
#ifndef VIREO_DISK_DISK_H
#define VIREO_DISK_DISK_H

#include <stdbool.h>
#include <stdint.h>
#include <sys/types.h>
#include <sys/uio.h>

#include "disk/engine.h"

#define DISK_SECTOR_SIZE 512

enum disk_cache {
	DISK_CACHE_WRITEBACK, /* the host page cache; FLUSH is fdatasync */
	DISK_CACHE_NONE,      /* O_DIRECT; FLUSH still fdatasyncs the device cache */
};

enum disk_format {
	DISK_FORMAT_AUTO,
	DISK_FORMAT_RAW,
	DISK_FORMAT_QCOW2,
};

struct disk_config {
	const char *path;
	bool readonly;
	enum disk_cache cache;
	enum disk_format format;
	const char *serial; /* NULL: none */
	enum disk_engine_kind engine;
	uint64_t cache_size; /* qcow2 metadata cache in bytes; 0: QCOW2_DEFAULT_CACHE_SIZE */
};

struct disk;

struct disk_ops {
	/* Whole transfers or -errno. */
	ssize_t (*readv)(struct disk *disk, const struct iovec *iov, int n, uint64_t offset);
	ssize_t (*writev)(struct disk *disk, const struct iovec *iov, int n, uint64_t offset);
	int (*flush)(struct disk *disk);
	/* Deallocates the range; reads return zeroes after. */
	int (*discard)(struct disk *disk, uint64_t offset, uint64_t len);
	int (*write_zeroes)(struct disk *disk, uint64_t offset, uint64_t len, bool may_unmap);
	void (*close)(struct disk *disk);
	/*
	 * Optional, for formats: may the engine move this read or write itself,
	 * as one transfer at *where? Only when that needs no metadata work (the
	 * clusters are mapped, in memory; a write's are the image's alone), and
	 * it stays right while the engine has other such transfers in flight.
	 * False sends the request through the calls above instead.
	 */
	bool (*map)(struct disk *disk, const struct disk_io *io, struct disk_extent *where);
};

struct disk {
	const struct disk_ops *ops;
	uint64_t size; /* bytes, a multiple of DISK_SECTOR_SIZE */
	bool readonly;
	int fd;
	const char *path;
	bool passthrough;	  /* guest offset == file offset: engines may do all the I/O */
	struct disk_uring *uring; /* the io_uring engine's state, or NULL for sync */
	/*
	 * Raw by probing, not by format=raw: writes must leave it probing raw
	 * (disk/probe.h); the first refusal prints why, once.
	 */
	bool probed_raw;
	bool probe_refusal_told;
};

/*
 * Opens and locks an image (write lock read-write, read lock read-only).
 * On failure returns NULL and writes one sentence naming the image to err.
 */
struct disk *disk_open(const struct disk_config *cfg, char *err, size_t err_len);
void disk_close(struct disk *disk);

#endif
