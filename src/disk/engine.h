/*
 * I/O engines: how a disk's reads, writes and flushes reach the host.
 *
 *   sync      the calls run at once on the I/O thread (preadv/pwritev/fdatasync);
 *   io_uring  requests are queued to an io_uring and complete later: many in
 *             flight, one eventfd telling the I/O thread that some finished.
 *
 * io_uring moves everything for images whose guest offsets are file offsets
 * (raw). A format (qcow2) hands it the reads and writes its map() op can
 * place from memory alone; the rest run synchronously through the format's
 * own code, once the requests in flight are done, so that no cluster moves
 * under a transfer. A ring takes only the reads, writes and flushes it is
 * made for, on the files registered with it (see engine.c): the seccomp
 * sandbox cannot see inside it. A host that refuses io_uring (old kernel, sysctl,
 * seccomp) falls back to sync with one notice.
 */
#ifndef VIREO_DISK_ENGINE_H
#define VIREO_DISK_ENGINE_H

#include <stdbool.h>
#include <stdint.h>
#include <sys/types.h>
#include <sys/uio.h>

struct disk;
struct io_uring;

/* Where a request's bytes lie in a host file. */
struct disk_extent {
	int fd;
	uint64_t offset;
};

#define DISK_ENGINE_DEPTH 256 /* requests in flight per disk: one per virtqueue entry */

enum disk_engine_kind {
	DISK_ENGINE_IO_URING, /* the default */
	DISK_ENGINE_SYNC,
};

enum disk_io_op {
	DISK_IO_READ,
	DISK_IO_WRITE,
	DISK_IO_FLUSH,
};

/* One request; stays owned by the caller until done() runs. */
struct disk_io {
	enum disk_io_op op;
	const struct iovec *iov;
	int nr_iov;
	uint64_t offset;
	/* result: bytes moved (or 0 for a flush), or -errno. Runs on the I/O thread. */
	void (*done)(struct disk_io *io, ssize_t result);
	struct disk_extent where; /* the engine's: where an io_uring transfer goes */
};

/* Chooses the disk's engine; prints the one-line notice when io_uring is refused. */
void disk_engine_start(struct disk *disk, enum disk_engine_kind kind, unsigned int depth);
void disk_engine_stop(struct disk *disk);

/* Queues io (io_uring) or performs it at once (sync); done() always runs, maybe inside. */
void disk_submit(struct disk *disk, struct disk_io *io);

/* The disk's io_uring, or NULL (sync): tests submit what the engine never would. */
struct io_uring *disk_engine_ring(struct disk *disk);

/* Readable when requests completed (-1 for sync): then call disk_reap(). */
int disk_completion_fd(const struct disk *disk);
void disk_reap(struct disk *disk);

/* Waits until every submitted request completed (device reset, shutdown). */
void disk_drain(struct disk *disk);

/*
 * Before a discard or write-zeroes, which may move a format's clusters: waits
 * for the requests in flight (nothing to wait for on a passthrough disk).
 */
void disk_quiesce(struct disk *disk);

#endif
