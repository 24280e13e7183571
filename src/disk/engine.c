/* I/O engines: see engine.h. */
#include "disk/engine.h"

#include <errno.h>
#include <limits.h>
#include <liburing.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/eventfd.h>
#include <sys/syscall.h>
#include <unistd.h>

#include "disk/disk.h"
#include "disk/image_file.h"
#include "disk/probe.h"
#include "vmm/iov.h"

/* Fixed-file slots: the image and the files of its backing chain that reads reach. */
#define URING_FILES 17

struct disk_uring {
	struct io_uring ring;
	int event_fd;	    /* io_uring signals it on every completion */
	unsigned int depth; /* ring entries: the most requests in flight */
	unsigned int in_flight;
	int files[URING_FILES]; /* the fd in each fixed-file slot; -1: free */
};

static ssize_t sync_io(struct disk *disk, const struct disk_io *io)
{
	switch (io->op) {
	case DISK_IO_READ: return disk->ops->readv(disk, io->iov, io->nr_iov, io->offset);
	case DISK_IO_WRITE: return disk->ops->writev(disk, io->iov, io->nr_iov, io->offset);
	case DISK_IO_FLUSH: return disk->ops->flush(disk);
	}
	return -EINVAL;
}

/*
 * liburing 2.3 (Debian 12) declares io_uring_register_restrictions() and
 * io_uring_enable_rings() but its library does not export them.
 */
static int uring_register(struct io_uring *ring, unsigned int op, const void *arg,
			  unsigned int nr)
{
	return syscall(__NR_io_uring_register, ring->ring_fd, op, arg, nr) < 0 ? -errno : 0;
}

/*
 * A ring's requests are system calls that no seccomp filter sees, so the ring
 * is restricted before it is enabled: the three operations this engine
 * submits, each on a fixed file, and no register operation but adding a file
 * to the table (a backing file, the first time a read reaches it) and
 * emptying it when the disk closes.
 */
static int uring_restrict(struct disk_uring *u, int fd)
{
	static const struct io_uring_restriction allowed[] = {
		{ .opcode = IORING_RESTRICTION_SQE_OP, .sqe_op = IORING_OP_READV },
		{ .opcode = IORING_RESTRICTION_SQE_OP, .sqe_op = IORING_OP_WRITEV },
		{ .opcode = IORING_RESTRICTION_SQE_OP, .sqe_op = IORING_OP_FSYNC },
		{ .opcode = IORING_RESTRICTION_SQE_FLAGS_REQUIRED, .sqe_flags = IOSQE_FIXED_FILE },
		{ .opcode = IORING_RESTRICTION_REGISTER_OP,
		  .register_op = IORING_REGISTER_FILES_UPDATE },
		{ .opcode = IORING_RESTRICTION_REGISTER_OP, .register_op = IORING_UNREGISTER_FILES },
	};
	int err;

	for (int i = 0; i < URING_FILES; i++)
		u->files[i] = -1;
	u->files[0] = fd;
	err = io_uring_register_files(&u->ring, u->files, URING_FILES);
	if (!err)
		err = uring_register(&u->ring, IORING_REGISTER_RESTRICTIONS, allowed,
				     sizeof(allowed) / sizeof(allowed[0]));
	return err ? err : uring_register(&u->ring, IORING_REGISTER_ENABLE_RINGS, NULL, 0);
}

/* fd's fixed-file slot, filled on fd's first use; -1 when the table is full. */
static int uring_file_slot(struct disk_uring *u, int fd)
{
	int slot = -1;

	for (int i = 0; i < URING_FILES; i++) {
		if (u->files[i] == fd)
			return i;
		if (u->files[i] < 0 && slot < 0)
			slot = i;
	}
	if (slot < 0 || io_uring_register_files_update(&u->ring, (unsigned int)slot, &fd, 1) != 1)
		return -1;
	u->files[slot] = fd;
	return slot;
}

static struct disk_uring *uring_create(int fd, unsigned int depth, int *err)
{
	struct disk_uring *u = calloc(1, sizeof(*u));

	if (!u) {
		*err = -ENOMEM;
		return NULL;
	}
	u->depth = depth;
	*err = io_uring_queue_init(depth, &u->ring, IORING_SETUP_R_DISABLED);
	if (*err < 0) {
		free(u);
		return NULL;
	}
	u->event_fd = eventfd(0, EFD_CLOEXEC | EFD_NONBLOCK);
	*err = u->event_fd < 0 ? -errno : io_uring_register_eventfd(&u->ring, u->event_fd);
	if (*err >= 0)
		*err = uring_restrict(u, fd);
	if (*err < 0) {
		if (u->event_fd >= 0)
			close(u->event_fd);
		io_uring_queue_exit(&u->ring);
		free(u);
		return NULL;
	}
	return u;
}

void disk_engine_start(struct disk *disk, enum disk_engine_kind kind, unsigned int depth)
{
	int err = 0;

	if (kind != DISK_ENGINE_IO_URING || !(disk->passthrough || disk->ops->map))
		return;
	disk->uring = uring_create(disk->fd, depth, &err);
	if (!disk->uring)
		fprintf(stderr, "vireo: disk '%s': io_uring is not available here (%s); using the "
				"sync engine\n", disk->path, strerror(-err));
}

void disk_engine_stop(struct disk *disk)
{
	struct disk_uring *u = disk->uring;

	if (!u)
		return;
	disk_drain(disk);
	/*
	 * The table holds the image open, and with it its lock, until the ring
	 * is torn down, which the kernel finishes later: let go of it now.
	 */
	io_uring_unregister_files(&u->ring);
	close(u->event_fd);
	io_uring_queue_exit(&u->ring);
	free(u);
	disk->uring = NULL;
}

static void uring_prepare(struct io_uring_sqe *sqe, struct disk_io *io, int fd)
{
	switch (io->op) {
	case DISK_IO_READ:
		io_uring_prep_readv(sqe, fd, io->iov, (unsigned int)io->nr_iov, io->where.offset);
		break;
	case DISK_IO_WRITE:
		io_uring_prep_writev(sqe, fd, io->iov, (unsigned int)io->nr_iov, io->where.offset);
		break;
	case DISK_IO_FLUSH:
		io_uring_prep_fsync(sqe, fd, IORING_FSYNC_DATASYNC);
		break;
	}
	io_uring_sqe_set_flags(sqe, IOSQE_FIXED_FILE); /* fd is a slot */
	io_uring_sqe_set_data(sqe, io);
}

/*
 * May io go to the ring, and where? Everything on a passthrough disk; what
 * map() places. Never a write that may change what format probing sees:
 * the format's own writev checks those (disk/probe.h).
 */
static bool uring_takes(struct disk *disk, struct disk_io *io)
{
	if (io->op == DISK_IO_WRITE && disk_probe_reaches(disk, io->offset))
		return false;
	io->where = (struct disk_extent){ disk->fd, io->offset };
	return disk->passthrough || (io->op != DISK_IO_FLUSH && disk->ops->map(disk, io, &io->where));
}

void disk_submit(struct disk *disk, struct disk_io *io)
{
	struct disk_uring *u = disk->uring;
	struct io_uring_sqe *sqe;
	int slot;

	if (!u || !uring_takes(disk, io) || (slot = uring_file_slot(u, io->where.fd)) < 0) {
		disk_drain(disk); /* what the format does now must not move data under a transfer */
		io->done(io, sync_io(disk, io));
		return;
	}
	/* The ring has as many entries as the queue has buffers, but be safe. */
	while (!(sqe = io_uring_get_sqe(&u->ring))) {
		io_uring_submit(&u->ring);
		disk_reap(disk);
	}
	uring_prepare(sqe, io, slot);
	u->in_flight++;
	io_uring_submit(&u->ring);
}

struct io_uring *disk_engine_ring(struct disk *disk)
{
	return disk->uring ? &disk->uring->ring : NULL;
}

int disk_completion_fd(const struct disk *disk)
{
	return disk->uring ? disk->uring->event_fd : -1;
}

/*
 * A short read or write (rare: a signal, a file that shrank, a format's last
 * cluster that ends past the end of its file) is finished synchronously at
 * the same place; what lies past the end of the file reads as zeroes, as it
 * does through the formats' own code.
 */
static ssize_t finish_short(struct disk_io *io, ssize_t result)
{
	struct iovec rest[IOV_MAX];
	size_t want = 0;
	unsigned int k;
	ssize_t got;

	if (result < 0 || io->op == DISK_IO_FLUSH)
		return result;
	for (int i = 0; i < io->nr_iov; i++)
		want += io->iov[i].iov_len;
	if ((size_t)result == want)
		return result;
	k = iov_slice(io->iov, (unsigned int)io->nr_iov, (size_t)result, want - (size_t)result, rest,
		      IOV_MAX);
	got = fd_transfer(io->where.fd, rest, (int)k, io->where.offset + (uint64_t)result,
			  io->op == DISK_IO_WRITE);
	if (got < 0)
		return got;
	iov_zero(io->iov, (unsigned int)io->nr_iov, (size_t)result + (size_t)got,
		 want - (size_t)result - (size_t)got);
	return (ssize_t)want;
}

void disk_reap(struct disk *disk)
{
	struct disk_uring *u = disk->uring;
	struct io_uring_cqe *cqe;
	uint64_t count;

	if (!u)
		return;
	if (read(u->event_fd, &count, sizeof(count)) < 0 && errno != EAGAIN)
		return;
	while (io_uring_peek_cqe(&u->ring, &cqe) == 0) {
		struct disk_io *io = io_uring_cqe_get_data(cqe);
		ssize_t result = cqe->res;

		io_uring_cqe_seen(&u->ring, cqe);
		u->in_flight--;
		io->done(io, finish_short(io, result));
	}
}

void disk_drain(struct disk *disk)
{
	struct disk_uring *u = disk->uring;
	struct io_uring_cqe *cqe;

	while (u && u->in_flight > 0) {
		int err = io_uring_wait_cqe(&u->ring, &cqe);

		/* A signal (vcpu_kick() on the vCPU thread that resets a device) ends the wait only. */
		if (err < 0 && err != -EINTR)
			return;
		disk_reap(disk);
	}
}

void disk_quiesce(struct disk *disk)
{
	if (!disk->passthrough)
		disk_drain(disk);
}
