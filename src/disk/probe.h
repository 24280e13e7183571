/*
 * Format probing, and the rule that keeps a probed raw image raw.
 *
 * With no format= on --disk, the first DISK_PROBE_SIZE bytes of an image
 * decide its format. On a raw image those bytes are the guest's: if it
 * could write a qcow2 header there, the next boot would open the image as
 * qcow2 and follow a backing file name of the guest's choosing, and any
 * file Vireo can read would become the guest's disk. So a raw image whose
 * format was probed refuses every write (or discard, or write-zeroes)
 * after which probing would no longer say raw. format=raw lifts the rule:
 * the user said what the image is, and nothing is probed.
 */
#ifndef VIREO_DISK_PROBE_H
#define VIREO_DISK_PROBE_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <sys/uio.h>

#include "disk/disk.h"

/*
 * The bytes probing reads. A format whose signature lies elsewhere (a
 * footer) would have to widen disk_probe_reaches() as well.
 */
#define DISK_PROBE_SIZE 4096u

/* The format that the first len bytes of an image say: DISK_FORMAT_QCOW2 or DISK_FORMAT_RAW. */
enum disk_format disk_probe(const void *head, size_t len);

/* Reads the first bytes of fd (which may be O_DIRECT) and probes them; 0 or -errno. */
int disk_probe_fd(int fd, enum disk_format *format);

/* Might a write at offset change what probing sees? Then it must pass disk_probe_keeps_raw(). */
static inline bool disk_probe_reaches(const struct disk *disk, uint64_t offset)
{
	return disk->probed_raw && offset < DISK_PROBE_SIZE;
}

/*
 * Would the image still probe as raw after len bytes at offset became iov's
 * bytes (or zeroes, when iov is NULL: a discard or write-zeroes)? 0 if so,
 * or if the image is not a probed raw one; else -EPERM, and the first
 * refusal on the disk prints one line saying why. -errno if the first
 * bytes cannot be read.
 */
int disk_probe_keeps_raw(struct disk *disk, const struct iovec *iov, int n, uint64_t offset,
			 uint64_t len);

#endif
