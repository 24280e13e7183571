/*
 * virtio-blk (virtio 1.2 §5.2). A request is a 16-byte header the device
 * reads, data in either direction, and a status byte, the last byte the
 * device writes. Requests are parsed by bytes (§2.7.4.1), so any split of
 * them into descriptors works. Data moves between the guest's buffers and
 * the image with vectored I/O, no bounce copy.
 */
#include "virtio/blk.h"

#include <errno.h>
#include <linux/virtio_blk.h>
#include <linux/virtio_ids.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/epoll.h>
#include <sys/timerfd.h>
#include <unistd.h>

#include "disk/disk.h"
#include "virtio/irq_batch.h"
#include "vmm/clock.h"
#include "vmm/event_loop.h"

#define BLK_QUEUE_SIZE 256
#define BLK_MAX_IOV BLK_QUEUE_SIZE	/* a chain never has more buffers than the queue */
#define BLK_SIZE_MAX (1u << 20)	/* largest data segment we accept in one descriptor */
#define BLK_SEG_MAX (BLK_QUEUE_SIZE - 2) /* data segments: the header and the status take two */
#define BLK_MAX_SEGMENTS 32		/* discard / write-zeroes ranges per request */
#define BLK_DISCARD_ALIGN_SECTORS 8	/* 4 KiB: what hole punching works in */
#define BLK_MAX_RANGE_SECTORS (UINT32_MAX / DISK_SECTOR_SIZE)

/* One request from pop to push; reads and writes may be in flight with an engine. */
struct blk_request {
	struct disk_io io;
	struct virtio_blk *blk;
	struct virtq_req req;
	uint8_t *status;	/* the last byte the driver gave us to write */
	struct blk_request *next_free;
	struct iovec iov[BLK_MAX_IOV];
};

struct virtio_blk {
	struct virtio_device vdev;
	struct disk *disk;
	char serial[VIRTIO_BLK_ID_BYTES];
	struct virtio_blk_config config;
	struct blk_request *free_requests; /* recycled, so a busy queue allocates nothing */
	unsigned int nr_requests;	   /* allocated, free or in flight */
	bool interrupt_pending;		   /* pushed since the last interrupt decision */
	bool starved;			   /* every request in flight: pop again on a completion */
	struct irq_batch batch;		   /* whether the interrupt waits for more requests */
	int batch_timer_fd;		   /* fires when the batch window may close */
	bool batch_timer_armed;
	struct event_loop *loop;
	struct event_handler completion_handler;
	struct event_handler batch_timer_handler;
	unsigned long bad_requests;
};

static void blk_config_read(struct virtio_device *vdev, uint32_t offset, void *data,
			    uint32_t size)
{
	struct virtio_blk *blk = vdev->priv;

	memcpy(data, (uint8_t *)&blk->config + offset, size);
}

static struct blk_request *blk_request_get(struct virtio_blk *blk)
{
	struct blk_request *r = blk->free_requests;

	if (r) {
		blk->free_requests = r->next_free;
	} else {
		if (blk->nr_requests == BLK_QUEUE_SIZE)
			return NULL; /* more in flight than the ring can hold: impossible */
		r = malloc(sizeof(*r));
		if (!r)
			return NULL;
		blk->nr_requests++;
	}
	r->blk = blk;
	virtq_req_init(&r->req, r->iov, BLK_MAX_IOV);
	return r;
}

static void blk_request_put(struct virtio_blk *blk, struct blk_request *r)
{
	r->next_free = blk->free_requests;
	blk->free_requests = r;
}

/* Writes the status, returns the request to the driver, recycles it. */
static void blk_complete(struct blk_request *r, uint8_t status, uint32_t written)
{
	struct virtio_blk *blk = r->blk;

	if (status != VIRTIO_BLK_S_OK)
		blk->bad_requests++;
	/* Finished after the device stopped (NEEDS_RESET): the driver resets, nothing to tell. */
	if (virtio_running(&blk->vdev)) {
		*r->status = status;
		virtq_push(&blk->vdev.queues[0], r->req.head, written);
		blk->interrupt_pending = true;
	}
	blk_request_put(blk, r);
}

static void blk_io_done(struct disk_io *io, ssize_t result)
{
	struct blk_request *r = (struct blk_request *)io;
	struct virtq_req *req = &r->req;

	if (result < 0) {
		fprintf(stderr, "vireo: disk '%s': %s at byte %llu failed: %s\n",
			r->blk->disk->path,
			io->op == DISK_IO_READ ? "read" : io->op == DISK_IO_WRITE ? "write" : "flush",
			(unsigned long long)io->offset, strerror((int)-result));
		blk_complete(r, VIRTIO_BLK_S_IOERR, 1);
		return;
	}
	blk_complete(r, VIRTIO_BLK_S_OK, io->op == DISK_IO_READ ? req->writable_len : 1);
}

/* Is [sector, sector + bytes) inside the disk? (no overflow possible) */
static bool blk_range_ok(const struct virtio_blk *blk, uint64_t sector, uint64_t bytes)
{
	uint64_t sectors = blk->disk->size / DISK_SECTOR_SIZE;

	return sector <= sectors && bytes / DISK_SECTOR_SIZE <= sectors - sector &&
	       bytes % DISK_SECTOR_SIZE == 0;
}

/* The limits the config space announces (§5.2.4): size_max per segment, seg_max segments. */
static bool blk_segments_ok(const struct iovec *data, unsigned int n)
{
	if (n > BLK_SEG_MAX)
		return false;
	for (unsigned int i = 0; i < n; i++)
		if (data[i].iov_len > BLK_SIZE_MAX)
			return false;
	return true;
}

/*
 * Starts a read or write: the data iovecs are the request's own, sliced in
 * place past the header (writes) or before the status byte (reads).
 */
static void blk_rw(struct blk_request *r, uint64_t sector, bool write)
{
	struct virtio_blk *blk = r->blk;
	struct virtq_req *req = &r->req;
	uint64_t len = write ? req->readable_len - sizeof(struct virtio_blk_outhdr)
			     : req->writable_len - 1u;
	unsigned int n;

	if ((write && blk->disk->readonly) || !blk_range_ok(blk, sector, len)) {
		blk_complete(r, VIRTIO_BLK_S_IOERR, 1);
		return;
	}
	if (write)
		n = iov_slice(req->readable, req->nr_readable, sizeof(struct virtio_blk_outhdr), len,
			      req->readable, req->nr_readable);
	else
		n = iov_slice(req->writable, req->nr_writable, 0, len, req->writable,
			      req->nr_writable);
	if (!blk_segments_ok(write ? req->readable : req->writable, n)) {
		blk_complete(r, VIRTIO_BLK_S_IOERR, 1);
		return;
	}
	if (len == 0) {
		blk_complete(r, VIRTIO_BLK_S_OK, write ? 1 : req->writable_len);
		return;
	}
	r->io = (struct disk_io){
		.op = write ? DISK_IO_WRITE : DISK_IO_READ,
		.iov = write ? req->readable : req->writable,
		.nr_iov = (int)n,
		.offset = sector * DISK_SECTOR_SIZE,
		.done = blk_io_done,
	};
	disk_submit(blk->disk, &r->io);
}

/* One discard or write-zeroes range (§5.2.6.2): flags other than unmap are reserved. */
static uint8_t blk_range_op(struct virtio_blk *blk, uint32_t type,
			    const struct virtio_blk_discard_write_zeroes *range)
{
	bool unmap = range->flags & VIRTIO_BLK_WRITE_ZEROES_FLAG_UNMAP;
	uint64_t bytes = (uint64_t)range->num_sectors * DISK_SECTOR_SIZE;
	uint64_t offset = range->sector * DISK_SECTOR_SIZE;
	int err;

	if ((range->flags & ~VIRTIO_BLK_WRITE_ZEROES_FLAG_UNMAP) ||
	    (type == VIRTIO_BLK_T_DISCARD && unmap))
		return VIRTIO_BLK_S_UNSUPP;
	if (!blk_range_ok(blk, range->sector, bytes))
		return VIRTIO_BLK_S_IOERR;
	if (bytes == 0)
		return VIRTIO_BLK_S_OK;
	if (type == VIRTIO_BLK_T_DISCARD)
		err = blk->disk->ops->discard(blk->disk, offset, bytes);
	else
		err = blk->disk->ops->write_zeroes(blk->disk, offset, bytes, unmap);
	if (err == -EOPNOTSUPP && type == VIRTIO_BLK_T_DISCARD)
		return VIRTIO_BLK_S_OK; /* discard is a hint */
	return err ? VIRTIO_BLK_S_IOERR : VIRTIO_BLK_S_OK;
}

static uint8_t blk_ranges(struct virtio_blk *blk, const struct virtq_req *req, uint32_t type)
{
	size_t payload = req->readable_len - sizeof(struct virtio_blk_outhdr);
	size_t count = payload / sizeof(struct virtio_blk_discard_write_zeroes);

	if (blk->disk->readonly)
		return VIRTIO_BLK_S_IOERR;
	if (count == 0 || count > BLK_MAX_SEGMENTS ||
	    payload % sizeof(struct virtio_blk_discard_write_zeroes))
		return VIRTIO_BLK_S_UNSUPP;
	/*
	 * Discards run on the I/O thread at once. On a raw image the reads and writes
	 * in flight are the guest's to order; a format may move clusters under them.
	 */
	disk_quiesce(blk->disk);
	for (size_t i = 0; i < count; i++) {
		struct virtio_blk_discard_write_zeroes range;
		uint8_t status;

		iov_read(req->readable, req->nr_readable,
			 sizeof(struct virtio_blk_outhdr) + i * sizeof(range), &range, sizeof(range));
		status = blk_range_op(blk, type, &range);
		if (status != VIRTIO_BLK_S_OK)
			return status;
	}
	return VIRTIO_BLK_S_OK;
}

/* GET_ID: up to 20 bytes of serial, NUL-padded when shorter (§5.2.6). */
static uint32_t blk_get_id(struct virtio_blk *blk, const struct virtq_req *req)
{
	size_t len = req->writable_len - 1u;

	if (len > VIRTIO_BLK_ID_BYTES)
		len = VIRTIO_BLK_ID_BYTES;
	return (uint32_t)iov_write(req->writable, req->nr_writable, 0, blk->serial, len) + 1;
}

static uint8_t *blk_status_byte(const struct virtq_req *req)
{
	const struct iovec *last = &req->writable[req->nr_writable - 1];

	return (uint8_t *)last->iov_base + last->iov_len - 1;
}

/* Serves a popped request: at once, or later through the disk's engine. */
static void blk_start(struct blk_request *r)
{
	struct virtio_blk *blk = r->blk;
	struct virtq_req *req = &r->req;
	struct virtio_blk_outhdr hdr;

	if (req->writable_len < 1) {
		/* Nowhere to put a status: return the buffers untouched. */
		blk->bad_requests++;
		virtq_push(&blk->vdev.queues[0], req->head, 0);
		blk->interrupt_pending = true;
		blk_request_put(blk, r);
		return;
	}
	r->status = blk_status_byte(req);
	if (iov_read(req->readable, req->nr_readable, 0, &hdr, sizeof(hdr)) < sizeof(hdr)) {
		blk_complete(r, VIRTIO_BLK_S_IOERR, 1);
	} else if (hdr.type == VIRTIO_BLK_T_IN || hdr.type == VIRTIO_BLK_T_OUT) {
		blk_rw(r, hdr.sector, hdr.type == VIRTIO_BLK_T_OUT);
	} else if (hdr.type == VIRTIO_BLK_T_FLUSH) {
		r->io = (struct disk_io){ .op = DISK_IO_FLUSH, .done = blk_io_done };
		disk_submit(blk->disk, &r->io);
	} else if (hdr.type == VIRTIO_BLK_T_GET_ID) {
		blk_complete(r, VIRTIO_BLK_S_OK, blk_get_id(blk, req));
	} else if (hdr.type == VIRTIO_BLK_T_DISCARD || hdr.type == VIRTIO_BLK_T_WRITE_ZEROES) {
		blk_complete(r, blk_ranges(blk, req, hdr.type), 1);
	} else {
		blk_complete(r, VIRTIO_BLK_S_UNSUPP, 1);
	}
}

static void blk_interrupt_if_pending(struct virtio_blk *blk)
{
	if (blk->interrupt_pending && virtio_running(&blk->vdev)) {
		blk->interrupt_pending = false;
		virtio_queue_interrupt(&blk->vdev, 0);
	}
}

static void blk_arm_batch_timer(struct virtio_blk *blk)
{
	uint64_t deadline = irq_batch_deadline(&blk->batch);
	struct itimerspec when = { .it_value = clock_timespec(deadline) };

	blk->batch_timer_armed = timerfd_settime(blk->batch_timer_fd, TFD_TIMER_ABSTIME, &when,
						 NULL) == 0;
	if (!blk->batch_timer_armed) /* no timer, no waiting: interrupt as before */
		irq_batch_init(&blk->batch);
}

/* Interrupts now, or leaves it to the batch window's timer. */
static void blk_interrupt_or_hold(struct virtio_blk *blk)
{
	if (irq_batch_holding(&blk->batch) && !blk->batch_timer_armed)
		blk_arm_batch_timer(blk);
	if (!irq_batch_holding(&blk->batch))
		blk_interrupt_if_pending(blk);
}

/* The batch window's timer (I/O thread): close it, or wait for its new deadline. */
static void blk_on_batch_timer(void *opaque, uint32_t events)
{
	struct virtio_blk *blk = opaque;
	uint64_t expirations;

	(void)events;
	if (read(blk->batch_timer_fd, &expirations, sizeof(expirations)) < 0)
		return; /* EAGAIN: re-armed meanwhile, it fires again */
	pthread_mutex_lock(&blk->vdev.lock);
	blk->batch_timer_armed = false;
	irq_batch_expired(&blk->batch, clock_now_ns());
	blk_interrupt_or_hold(blk); /* closed: interrupt; else wait for the new deadline */
	pthread_mutex_unlock(&blk->vdev.lock);
}

/*
 * Pops and starts what the driver made available, counting them into
 * *popped, until the ring is empty with notifications on. False when the
 * requests ran out (a driver re-posting buffers still in flight): a
 * completion resumes.
 */
static bool blk_pop_all(struct virtio_blk *blk, struct virtq *vq, unsigned int *popped)
{
	for (;;) {
		struct blk_request *r = blk_request_get(blk);
		int rc;

		if (!r) {
			/* Wait for a completion instead of spinning on the ring. */
			blk->starved = true;
			return false;
		}
		rc = virtq_pop_or_enable_notify(vq, &r->req);
		if (rc == 1) {
			(*popped)++;
			blk_start(r);
			continue;
		}
		blk_request_put(blk, r);
		if (rc != -EBADMSG)
			return true; /* empty, or broken (the transport resets the device) */
		blk->bad_requests++; /* already returned to the driver */
		blk->interrupt_pending = true;
	}
}

/*
 * Serves the queue until the driver adds nothing more, then interrupts
 * once, unless a batch window holds the interrupt for more requests to come
 * (see irq_batch.h). Requests the engine finished at once (reads from the
 * page cache) are reaped before that, so they share the one interrupt and
 * need no trip through the event loop.
 */
static void blk_queue_notify(struct virtio_device *vdev, unsigned int q)
{
	struct virtio_blk *blk = vdev->priv;
	unsigned int popped = 0;

	blk_pop_all(blk, &vdev->queues[q], &popped);
	disk_reap(blk->disk);
	if (popped && blk->batch_timer_fd >= 0) /* no event loop (tests): no batching */
		irq_batch_arrived(&blk->batch, popped, clock_now_ns());
	blk_interrupt_or_hold(blk);
}

/* The engine finished some requests (I/O thread). */
static void blk_on_completion(void *opaque, uint32_t events)
{
	struct virtio_blk *blk = opaque;

	(void)events;
	pthread_mutex_lock(&blk->vdev.lock);
	disk_reap(blk->disk);
	blk->starved = false;
	/* What the driver queued since goes first: its completions share the interrupt. */
	if (virtio_running(&blk->vdev))
		blk_queue_notify(&blk->vdev, 0);
	pthread_mutex_unlock(&blk->vdev.lock);
}

/* Device reset (vdev->lock held): every request in flight completes first. */
static void blk_reset(struct virtio_device *vdev)
{
	struct virtio_blk *blk = vdev->priv;

	disk_drain(blk->disk);
	blk->interrupt_pending = false;
	blk->starved = false;
	irq_batch_init(&blk->batch); /* a timer still armed finds nothing to do */
}

static const struct virtio_device_ops blk_ops = {
	.name = "virtio-blk",
	.device_id = VIRTIO_ID_BLOCK,
	.nr_queues = 1,
	.queue_size = BLK_QUEUE_SIZE,
	.config_size = sizeof(struct virtio_blk_config),
	.config_read = blk_config_read,
	.queue_notify = blk_queue_notify,
	.reset = blk_reset,
};

static uint64_t blk_features(const struct disk *disk)
{
	uint64_t features = (1ULL << VIRTIO_BLK_F_SIZE_MAX) | (1ULL << VIRTIO_BLK_F_SEG_MAX) |
			    (1ULL << VIRTIO_BLK_F_BLK_SIZE) | (1ULL << VIRTIO_BLK_F_FLUSH);

	if (disk->readonly)
		return features | (1ULL << VIRTIO_BLK_F_RO);
	return features | (1ULL << VIRTIO_BLK_F_DISCARD) | (1ULL << VIRTIO_BLK_F_WRITE_ZEROES);
}

static void blk_fill_config(struct virtio_blk *blk)
{
	struct virtio_blk_config *c = &blk->config;

	c->capacity = blk->disk->size / DISK_SECTOR_SIZE;
	c->size_max = BLK_SIZE_MAX;
	c->seg_max = BLK_SEG_MAX;
	c->blk_size = DISK_SECTOR_SIZE;
	c->max_discard_sectors = BLK_MAX_RANGE_SECTORS;
	c->max_discard_seg = BLK_MAX_SEGMENTS;
	c->discard_sector_alignment = BLK_DISCARD_ALIGN_SECTORS;
	c->max_write_zeroes_sectors = BLK_MAX_RANGE_SECTORS;
	c->max_write_zeroes_seg = BLK_MAX_SEGMENTS;
	c->write_zeroes_may_unmap = 1;
}

/* Watches the engine's completions and the batch timer; without a loop, neither. */
static int blk_watch(struct virtio_blk *blk, struct event_loop *loop)
{
	int completion_fd = disk_completion_fd(blk->disk);

	blk->loop = loop;
	blk->batch_timer_fd = -1;
	if (!loop)
		return 0;
	blk->completion_handler = (struct event_handler){ blk_on_completion, blk };
	if (completion_fd >= 0 &&
	    event_loop_add(loop, completion_fd, EPOLLIN, &blk->completion_handler) < 0)
		return -1;
	blk->batch_timer_fd = timerfd_create(CLOCK_MONOTONIC, TFD_NONBLOCK | TFD_CLOEXEC);
	blk->batch_timer_handler = (struct event_handler){ blk_on_batch_timer, blk };
	if (blk->batch_timer_fd < 0)
		return -1;
	return event_loop_add(loop, blk->batch_timer_fd, EPOLLIN, &blk->batch_timer_handler);
}

struct virtio_blk *virtio_blk_create(struct disk *disk, const char *serial,
				     const struct guest_mem *mem, struct event_loop *loop)
{
	struct virtio_blk *blk = calloc(1, sizeof(*blk));

	if (!blk)
		return NULL;
	blk->disk = disk;
	if (serial) /* 20 bytes, not NUL-terminated when it fills them */
		memcpy(blk->serial, serial, strnlen(serial, sizeof(blk->serial)));
	blk_fill_config(blk);
	irq_batch_init(&blk->batch);
	virtio_device_init(&blk->vdev, &blk_ops, blk, mem, blk_features(disk));
	if (blk_watch(blk, loop) < 0) {
		virtio_blk_destroy(blk);
		return NULL;
	}
	return blk;
}

struct virtio_device *virtio_blk_device(struct virtio_blk *blk)
{
	return &blk->vdev;
}

void virtio_blk_destroy(struct virtio_blk *blk)
{
	int completion_fd = disk_completion_fd(blk->disk);

	disk_drain(blk->disk);
	if (completion_fd >= 0 && blk->loop)
		event_loop_remove(blk->loop, completion_fd);
	if (blk->batch_timer_fd >= 0) {
		event_loop_remove(blk->loop, blk->batch_timer_fd);
		close(blk->batch_timer_fd);
	}
	while (blk->free_requests) {
		struct blk_request *r = blk->free_requests;

		blk->free_requests = r->next_free;
		free(r);
	}
	virtio_device_destroy(&blk->vdev);
	free(blk);
}
