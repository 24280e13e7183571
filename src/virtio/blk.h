/* virtio-blk: a guest disk backed by a struct disk (virtio 1.2 §5.2). */
#ifndef VIREO_VIRTIO_BLK_H
#define VIREO_VIRTIO_BLK_H

#include "virtio/device.h"

struct disk;
struct event_loop;

/*
 * Creates the device over an opened disk (it does not own it). With an
 * asynchronous engine, completions are watched on loop.
 */
struct virtio_blk *virtio_blk_create(struct disk *disk, const char *serial,
				     const struct guest_mem *mem, struct event_loop *loop);
struct virtio_device *virtio_blk_device(struct virtio_blk *blk);
void virtio_blk_destroy(struct virtio_blk *blk);

#endif
