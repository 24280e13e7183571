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

#include "disk/disk.h"

#define BLK_QUEUE_SIZE 256
#define BLK_SIZE_MAX (1u << 20)	/* largest data segment we accept in one descriptor */
#define BLK_MAX_SEGMENTS 32		/* discard / write-zeroes ranges per request */
#define BLK_DISCARD_ALIGN_SECTORS 8	/* 4 KiB: what hole punching works in */
#define BLK_MAX_RANGE_SECTORS (UINT32_MAX / DISK_SECTOR_SIZE)

struct virtio_blk {
	struct virtio_device vdev;
	struct disk *disk;
	char serial[VIRTIO_BLK_ID_BYTES];
	struct virtio_blk_config config;
	struct virtq_req req;			/* the request being served */
	struct iovec data[VIRTQ_MAX_SIZE];	/* its data buffers, sliced from req */
	unsigned long bad_requests;
};

static void blk_config_read(struct virtio_device *vdev, uint32_t offset, void *data,
			    uint32_t size)
{
	struct virtio_blk *blk = vdev->priv;

	memcpy(data, (uint8_t *)&blk->config + offset, size);
}

/* Is [sector, sector + bytes) inside the disk? (no overflow possible) */
static bool blk_range_ok(const struct virtio_blk *blk, uint64_t sector, uint64_t bytes)
{
	uint64_t sectors = blk->disk->size / DISK_SECTOR_SIZE;

	return sector <= sectors && bytes / DISK_SECTOR_SIZE <= sectors - sector &&
	       bytes % DISK_SECTOR_SIZE == 0;
}

static uint8_t blk_rw(struct virtio_blk *blk, uint64_t sector, bool write)
{
	struct virtq_req *req = &blk->req;
	uint64_t len = write ? req->readable_len - sizeof(struct virtio_blk_outhdr)
			     : req->writable_len - 1u;
	unsigned int n;
	ssize_t done;

	if (write && blk->disk->readonly)
		return VIRTIO_BLK_S_IOERR;
	if (!blk_range_ok(blk, sector, len))
		return VIRTIO_BLK_S_IOERR;
	if (write)
		n = iov_slice(req->readable, req->nr_readable, sizeof(struct virtio_blk_outhdr), len,
			      blk->data, VIRTQ_MAX_SIZE);
	else
		n = iov_slice(req->writable, req->nr_writable, 0, len, blk->data, VIRTQ_MAX_SIZE);
	if (len == 0)
		return VIRTIO_BLK_S_OK;
	done = write ? blk->disk->ops->writev(blk->disk, blk->data, (int)n, sector * 512)
		     : blk->disk->ops->readv(blk->disk, blk->data, (int)n, sector * 512);
	if (done < 0) {
		fprintf(stderr, "vireo: disk '%s': %s at sector %llu failed: %s\n",
			blk->disk->path, write ? "write" : "read", (unsigned long long)sector,
			strerror((int)-done));
		return VIRTIO_BLK_S_IOERR;
	}
	return VIRTIO_BLK_S_OK;
}

/* One discard or write-zeroes range (§5.2.6.2): flags other than unmap are reserved. */
static uint8_t blk_range_op(struct virtio_blk *blk, uint32_t type,
			    const struct virtio_blk_discard_write_zeroes *r)
{
	bool unmap = r->flags & VIRTIO_BLK_WRITE_ZEROES_FLAG_UNMAP;
	uint64_t bytes = (uint64_t)r->num_sectors * DISK_SECTOR_SIZE;
	int err;

	if ((r->flags & ~VIRTIO_BLK_WRITE_ZEROES_FLAG_UNMAP) ||
	    (type == VIRTIO_BLK_T_DISCARD && unmap))
		return VIRTIO_BLK_S_UNSUPP;
	if (!blk_range_ok(blk, r->sector, bytes))
		return VIRTIO_BLK_S_IOERR;
	if (type == VIRTIO_BLK_T_DISCARD)
		err = blk->disk->ops->discard(blk->disk, r->sector * 512, bytes);
	else
		err = blk->disk->ops->write_zeroes(blk->disk, r->sector * 512, bytes, unmap);
	if (err == -EOPNOTSUPP && type == VIRTIO_BLK_T_DISCARD)
		return VIRTIO_BLK_S_OK; /* discard is a hint */
	return err ? VIRTIO_BLK_S_IOERR : VIRTIO_BLK_S_OK;
}

static uint8_t blk_ranges(struct virtio_blk *blk, uint32_t type)
{
	struct virtq_req *req = &blk->req;
	size_t payload = req->readable_len - sizeof(struct virtio_blk_outhdr);
	size_t count = payload / sizeof(struct virtio_blk_discard_write_zeroes);

	if (blk->disk->readonly)
		return VIRTIO_BLK_S_IOERR;
	if (count == 0 || count > BLK_MAX_SEGMENTS ||
	    payload % sizeof(struct virtio_blk_discard_write_zeroes))
		return VIRTIO_BLK_S_UNSUPP;
	for (size_t i = 0; i < count; i++) {
		struct virtio_blk_discard_write_zeroes r;
		uint8_t status;

		iov_read(req->readable, req->nr_readable,
			 sizeof(struct virtio_blk_outhdr) + i * sizeof(r), &r, sizeof(r));
		status = blk_range_op(blk, type, &r);
		if (status != VIRTIO_BLK_S_OK)
			return status;
	}
	return VIRTIO_BLK_S_OK;
}

/* GET_ID: up to 20 bytes of serial, NUL-padded when shorter (§5.2.6). */
static uint8_t blk_get_id(struct virtio_blk *blk, uint32_t *written)
{
	struct virtq_req *req = &blk->req;
	size_t len = req->writable_len - 1u;

	if (len > VIRTIO_BLK_ID_BYTES)
		len = VIRTIO_BLK_ID_BYTES;
	*written += (uint32_t)iov_write(req->writable, req->nr_writable, 0, blk->serial, len);
	return VIRTIO_BLK_S_OK;
}

/* Serves blk->req; returns the bytes written into the driver's buffers. */
static uint32_t blk_handle(struct virtio_blk *blk)
{
	struct virtq_req *req = &blk->req;
	struct virtio_blk_outhdr hdr;
	uint32_t written = 1; /* the status byte */
	uint8_t status;

	if (req->writable_len < 1)
		return 0; /* nowhere to put a status: nothing we can answer */
	if (iov_read(req->readable, req->nr_readable, 0, &hdr, sizeof(hdr)) < sizeof(hdr)) {
		status = VIRTIO_BLK_S_IOERR;
	} else if (hdr.type == VIRTIO_BLK_T_IN) {
		status = blk_rw(blk, hdr.sector, false);
		if (status == VIRTIO_BLK_S_OK)
			written = req->writable_len;
	} else if (hdr.type == VIRTIO_BLK_T_OUT) {
		status = blk_rw(blk, hdr.sector, true);
	} else if (hdr.type == VIRTIO_BLK_T_FLUSH) {
		status = blk->disk->ops->flush(blk->disk) ? VIRTIO_BLK_S_IOERR : VIRTIO_BLK_S_OK;
	} else if (hdr.type == VIRTIO_BLK_T_GET_ID) {
		status = blk_get_id(blk, &written);
	} else if (hdr.type == VIRTIO_BLK_T_DISCARD || hdr.type == VIRTIO_BLK_T_WRITE_ZEROES) {
		status = blk_ranges(blk, hdr.type);
	} else {
		status = VIRTIO_BLK_S_UNSUPP;
	}
	if (status != VIRTIO_BLK_S_OK)
		blk->bad_requests++;
	iov_write(req->writable, req->nr_writable, req->writable_len - 1u, &status, 1);
	return written;
}

static void blk_queue_notify(struct virtio_device *vdev, unsigned int q)
{
	struct virtio_blk *blk = vdev->priv;
	struct virtq *vq = &vdev->queues[q];
	int rc;

	do {
		virtq_disable_notify(vq);
		while ((rc = virtq_pop(vq, &blk->req)) != 0) {
			if (rc == -EINVAL)
				return; /* the ring is broken: the transport resets the device */
			if (rc == 1)
				virtq_push(vq, blk->req.head, blk_handle(blk));
			else
				blk->bad_requests++;
		}
		virtio_queue_interrupt(vdev, q);
	} while (virtq_enable_notify(vq));
}

static const struct virtio_device_ops blk_ops = {
	.name = "virtio-blk",
	.device_id = VIRTIO_ID_BLOCK,
	.nr_queues = 1,
	.queue_size = BLK_QUEUE_SIZE,
	.config_size = sizeof(struct virtio_blk_config),
	.config_read = blk_config_read,
	.queue_notify = blk_queue_notify,
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
	c->seg_max = BLK_QUEUE_SIZE - 2; /* the header and the status take two */
	c->blk_size = DISK_SECTOR_SIZE;
	c->max_discard_sectors = BLK_MAX_RANGE_SECTORS;
	c->max_discard_seg = BLK_MAX_SEGMENTS;
	c->discard_sector_alignment = BLK_DISCARD_ALIGN_SECTORS;
	c->max_write_zeroes_sectors = BLK_MAX_RANGE_SECTORS;
	c->max_write_zeroes_seg = BLK_MAX_SEGMENTS;
	c->write_zeroes_may_unmap = 1;
}

struct virtio_blk *virtio_blk_create(struct disk *disk, const char *serial,
				     const struct guest_mem *mem)
{
	struct virtio_blk *blk = calloc(1, sizeof(*blk));

	if (!blk)
		return NULL;
	blk->disk = disk;
	if (serial) /* 20 bytes, not NUL-terminated when it fills them */
		memcpy(blk->serial, serial, strnlen(serial, sizeof(blk->serial)));
	blk_fill_config(blk);
	virtio_device_init(&blk->vdev, &blk_ops, blk, mem, blk_features(disk));
	return blk;
}

struct virtio_device *virtio_blk_device(struct virtio_blk *blk)
{
	return &blk->vdev;
}

void virtio_blk_destroy(struct virtio_blk *blk)
{
	virtio_device_destroy(&blk->vdev);
	free(blk);
}
