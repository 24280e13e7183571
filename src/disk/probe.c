/* Format probing and the probed-raw write rule: see probe.h. */
#include "disk/probe.h"

#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "disk/qcow2.h"
#include "vmm/iov.h"

#define PROBE_ALIGN 4096 /* the read may go to an O_DIRECT descriptor */

enum disk_format disk_probe(const void *head, size_t len)
{
	return qcow2_probe(head, len) ? DISK_FORMAT_QCOW2 : DISK_FORMAT_RAW;
}

/* Reads what probing sees into head (DISK_PROBE_SIZE bytes, aligned); bytes read or -errno. */
static ssize_t probe_read(int fd, uint8_t *head)
{
	ssize_t got;

	do
		got = pread(fd, head, DISK_PROBE_SIZE, 0);
	while (got < 0 && errno == EINTR);
	return got < 0 ? -errno : got;
}

int disk_probe_fd(int fd, enum disk_format *format)
{
	uint8_t *head;
	ssize_t got;

	if (posix_memalign((void **)&head, PROBE_ALIGN, DISK_PROBE_SIZE))
		return -ENOMEM;
	got = probe_read(fd, head);
	if (got >= 0)
		*format = disk_probe(head, (size_t)got);
	free(head);
	return got < 0 ? (int)got : 0;
}

static const char *format_name(enum disk_format format)
{
	return format == DISK_FORMAT_QCOW2 ? "qcow2" : "raw";
}

int disk_probe_keeps_raw(struct disk *disk, const struct iovec *iov, int n, uint64_t offset,
			 uint64_t len)
{
	enum disk_format after;
	size_t seen, cover;
	uint8_t *head;
	ssize_t got;

	if (!disk_probe_reaches(disk, offset) || len == 0)
		return 0;
	if (posix_memalign((void **)&head, PROBE_ALIGN, DISK_PROBE_SIZE))
		return -ENOMEM;
	got = probe_read(disk->fd, head);
	if (got < 0) {
		free(head);
		return (int)got;
	}
	/* The first bytes as they would be after the write: what the next open probes. */
	memset(head + got, 0, DISK_PROBE_SIZE - (size_t)got);
	cover = len < DISK_PROBE_SIZE - offset ? (size_t)len : DISK_PROBE_SIZE - (size_t)offset;
	if (iov)
		iov_read(iov, (unsigned int)n, 0, head + offset, cover);
	else
		memset(head + offset, 0, cover);
	seen = (size_t)got > offset + cover ? (size_t)got : (size_t)offset + cover;
	after = disk_probe(head, seen);
	free(head);
	if (after == DISK_FORMAT_RAW)
		return 0;
	if (!disk->probe_refusal_told)
		fprintf(stderr, "vireo: disk '%s': refused a write that would make the image look "
				"like %s (its format was probed as raw; give format=raw to allow "
				"it)\n", disk->path, format_name(after));
	disk->probe_refusal_told = true;
	return -EPERM;
}
