/*
 * virtio-console (virtio 1.2 §5.3), one port and no multiport: the guest's
 * hvc0. Queue 0 (receiveq) carries the user's input to the guest, queue 1
 * (transmitq) the guest's output to out_fd. No features, no config space.
 *
 * Output never blocks the I/O thread, and nothing the guest prints is lost
 * to a full out_fd (a terminal on hold, a pipe nobody reads): the request
 * waits, unused, until out_fd has room, and the guest's driver waits with
 * it. A write error (the reader went away) drops the bytes. A terminal or
 * pipe is made non-blocking for as long as the device lives.
 *
 * Input follows the serial port's contract (devices/serial.h), fed by the
 * I/O thread through vmm/console.c:
 *
 *	n = virtio_console_receive(vcon, buf, len);
 *	if (n < len) {
 *		// The guest has no receive buffer posted (or its driver is not
 *		// running): keep buf[n..len), wait for virtio_console_room_fd()
 *		// to be readable, read its counter, offer the rest again.
 *	}
 *
 * The room fd is an eventfd, signalled after a short receive once the
 * driver posts receive buffers (kicks queue 0) or starts the device.
 *
 * Without multiport the driver never says when its port is ready: Linux
 * posts receive buffers before it has registered the port, and drops what
 * arrives in between. Input typed while the guest's driver is probing the
 * device can be lost that way; input typed later is not.
 */
#ifndef VIREO_VIRTIO_CONSOLE_H
#define VIREO_VIRTIO_CONSOLE_H

#include <stddef.h>
#include <stdint.h>

#include "virtio/device.h"

struct event_loop;

/* Output per turn of the I/O thread, before the other devices and signals are served. */
#define VIRTIO_CONSOLE_TX_BYTES (64 << 10)
#define VIRTIO_CONSOLE_TX_REQUESTS 64 /* however small they are */

/*
 * out_fd (-1 discards output) stays the caller's; the device watches it on
 * loop. NULL with errno set on failure.
 */
struct virtio_console *virtio_console_create(const struct guest_mem *mem,
					     struct event_loop *loop, int out_fd);
struct virtio_device *virtio_console_device(struct virtio_console *vcon);

/*
 * Copies input into the guest's posted receive buffers and returns how
 * many bytes were taken (I/O thread; takes vdev->lock).
 */
size_t virtio_console_receive(struct virtio_console *vcon, const uint8_t *buf, size_t len);

/* The eventfd signalled when the guest posts receive buffers after a short receive. */
int virtio_console_room_fd(const struct virtio_console *vcon);

/* Frees the device and its eventfds, and gives out_fd its flags back; does not close it. */
void virtio_console_destroy(struct virtio_console *vcon);

#endif
