/*
 * virtio-mmio register file (virtio 1.2 §4.2.2). Registers are 32 bits
 * wide; config space (from 0x100) is accessed at its natural widths.
 * Register writes that the spec forbids in the current state are ignored.
 */
#include "virtio/mmio.h"

#include <errno.h>
#include <linux/virtio_config.h>
#include <linux/virtio_mmio.h>
#include <string.h>
#include <sys/epoll.h>
#include <unistd.h>

#include "vmm/bus.h"

#define VIRTIO_MMIO_MAGIC 0x74726976 /* "virt" */
#define VIRTIO_MMIO_MODERN 2

static struct virtq *selected_queue(struct virtio_mmio *m)
{
	return m->queue_sel < m->vdev->ops->nr_queues ? &m->vdev->queues[m->queue_sel] : NULL;
}

static uint32_t read_queue_register(struct virtio_mmio *m, uint64_t offset)
{
	struct virtq *vq = selected_queue(m);

	if (!vq)
		return 0;
	switch (offset) {
	case VIRTIO_MMIO_QUEUE_NUM_MAX: return m->vdev->ops->queue_size;
	case VIRTIO_MMIO_QUEUE_READY: return vq->ready;
	case VIRTIO_MMIO_QUEUE_NUM: return vq->size;
	case VIRTIO_MMIO_QUEUE_DESC_LOW: return (uint32_t)vq->desc_gpa;
	case VIRTIO_MMIO_QUEUE_DESC_HIGH: return (uint32_t)(vq->desc_gpa >> 32);
	case VIRTIO_MMIO_QUEUE_AVAIL_LOW: return (uint32_t)vq->avail_gpa;
	case VIRTIO_MMIO_QUEUE_AVAIL_HIGH: return (uint32_t)(vq->avail_gpa >> 32);
	case VIRTIO_MMIO_QUEUE_USED_LOW: return (uint32_t)vq->used_gpa;
	case VIRTIO_MMIO_QUEUE_USED_HIGH: return (uint32_t)(vq->used_gpa >> 32);
	default: return 0;
	}
}

static uint32_t read_register(struct virtio_mmio *m, uint64_t offset)
{
	struct virtio_device *vdev = m->vdev;

	switch (offset) {
	case VIRTIO_MMIO_MAGIC_VALUE: return VIRTIO_MMIO_MAGIC;
	case VIRTIO_MMIO_VERSION: return VIRTIO_MMIO_MODERN;
	case VIRTIO_MMIO_DEVICE_ID: return vdev->ops->device_id;
	case VIRTIO_MMIO_VENDOR_ID: return VIRTIO_MMIO_VENDOR;
	case VIRTIO_MMIO_DEVICE_FEATURES:
		return m->device_features_sel > 1
			       ? 0 : (uint32_t)(vdev->device_features >> (32 * m->device_features_sel));
	case VIRTIO_MMIO_INTERRUPT_STATUS: return atomic_load(&vdev->interrupt_status);
	case VIRTIO_MMIO_STATUS: return vdev->status;
	case VIRTIO_MMIO_CONFIG_GENERATION: return vdev->config_generation;
	case VIRTIO_MMIO_SHM_LEN_LOW:
	case VIRTIO_MMIO_SHM_LEN_HIGH: return UINT32_MAX; /* no shared memory regions */
	default: return read_queue_register(m, offset);
	}
}

/* Low or high half of a 64-bit queue address. */
static void set_half(uint64_t *addr, uint32_t value, bool high)
{
	if (high)
		*addr = (*addr & 0xffffffffULL) | ((uint64_t)value << 32);
	else
		*addr = (*addr & ~0xffffffffULL) | value;
}

/* Queue layout registers: only while the queue is not ready and the driver not running. */
static void write_queue_register(struct virtio_mmio *m, uint64_t offset, uint32_t value)
{
	struct virtq *vq = selected_queue(m);

	if (!vq || (m->vdev->status & VIRTIO_CONFIG_S_DRIVER_OK))
		return;
	if (offset == VIRTIO_MMIO_QUEUE_READY) {
		vq->ready = value & 1;
		return;
	}
	if (vq->ready)
		return;
	switch (offset) {
	case VIRTIO_MMIO_QUEUE_NUM:
		if (value && value <= m->vdev->ops->queue_size && !(value & (value - 1)))
			vq->size = (uint16_t)value;
		break;
	case VIRTIO_MMIO_QUEUE_DESC_LOW:
	case VIRTIO_MMIO_QUEUE_DESC_HIGH:
		set_half(&vq->desc_gpa, value, offset == VIRTIO_MMIO_QUEUE_DESC_HIGH);
		break;
	case VIRTIO_MMIO_QUEUE_AVAIL_LOW:
	case VIRTIO_MMIO_QUEUE_AVAIL_HIGH:
		set_half(&vq->avail_gpa, value, offset == VIRTIO_MMIO_QUEUE_AVAIL_HIGH);
		break;
	case VIRTIO_MMIO_QUEUE_USED_LOW:
	case VIRTIO_MMIO_QUEUE_USED_HIGH:
		set_half(&vq->used_gpa, value, offset == VIRTIO_MMIO_QUEUE_USED_HIGH);
		break;
	}
}

static void write_driver_features(struct virtio_mmio *m, uint32_t value)
{
	struct virtio_device *vdev = m->vdev;
	unsigned int shift = 32 * m->driver_features_sel;

	if (m->driver_features_sel > 1 || (vdev->status & VIRTIO_CONFIG_S_FEATURES_OK))
		return;
	vdev->driver_features = (vdev->driver_features & ~(0xffffffffULL << shift)) |
				((uint64_t)value << shift);
}

static void write_register(struct virtio_mmio *m, uint64_t offset, uint32_t value)
{
	switch (offset) {
	case VIRTIO_MMIO_DEVICE_FEATURES_SEL: m->device_features_sel = value; break;
	case VIRTIO_MMIO_DRIVER_FEATURES_SEL: m->driver_features_sel = value; break;
	case VIRTIO_MMIO_DRIVER_FEATURES: write_driver_features(m, value); break;
	case VIRTIO_MMIO_QUEUE_SEL: m->queue_sel = value; break;
	case VIRTIO_MMIO_INTERRUPT_ACK: atomic_fetch_and(&m->vdev->interrupt_status, ~value); break;
	case VIRTIO_MMIO_STATUS: virtio_write_status(m->vdev, value); break;
	default: write_queue_register(m, offset, value); break;
	}
}

static bool config_access_ok(struct virtio_mmio *m, uint64_t offset, uint32_t size)
{
	uint64_t config_offset = offset - VIRTIO_MMIO_CONFIG;

	return offset >= VIRTIO_MMIO_CONFIG && config_offset + size <= m->vdev->ops->config_size;
}

static void mmio_read(void *opaque, uint64_t offset, void *data, uint32_t size)
{
	struct virtio_mmio *m = opaque;
	uint32_t value;

	memset(data, 0, size);
	if (offset >= VIRTIO_MMIO_CONFIG) {
		if (!config_access_ok(m, offset, size))
			return;
		pthread_mutex_lock(&m->vdev->lock);
		m->vdev->ops->config_read(m->vdev, (uint32_t)(offset - VIRTIO_MMIO_CONFIG), data,
					  size);
		pthread_mutex_unlock(&m->vdev->lock);
		return;
	}
	if (size != 4 || (offset & 3))
		return; /* §4.2.2.2: registers are read 32 bits at a time */
	if (offset == VIRTIO_MMIO_INTERRUPT_STATUS) {
		value = read_register(m, offset); /* lock-free: see device.h */
	} else {
		pthread_mutex_lock(&m->vdev->lock);
		value = read_register(m, offset);
		pthread_mutex_unlock(&m->vdev->lock);
	}
	memcpy(data, &value, sizeof(value));
}

static void mmio_write(void *opaque, uint64_t offset, const void *data, uint32_t size)
{
	struct virtio_mmio *m = opaque;
	struct virtio_device *vdev = m->vdev;
	uint32_t value;

	if (offset >= VIRTIO_MMIO_CONFIG) {
		if (!config_access_ok(m, offset, size) || !vdev->ops->config_write)
			return;
		pthread_mutex_lock(&vdev->lock);
		vdev->ops->config_write(vdev, (uint32_t)(offset - VIRTIO_MMIO_CONFIG), data, size);
		pthread_mutex_unlock(&vdev->lock);
		return;
	}
	if (size != 4 || (offset & 3))
		return;
	memcpy(&value, data, sizeof(value));
	if (offset == VIRTIO_MMIO_QUEUE_NOTIFY) {
		virtio_notify(vdev, value); /* no ioeventfd caught it */
		return;
	}
	pthread_mutex_lock(&vdev->lock);
	write_register(m, offset, value);
	pthread_mutex_unlock(&vdev->lock);
}

static const struct bus_ops virtio_mmio_ops = {
	.read = mmio_read,
	.write = mmio_write,
};

static void on_queue_kick(void *opaque, uint32_t events)
{
	struct virtio_mmio_notifier *n = opaque;
	uint64_t count;

	(void)events;
	if (read(n->fd, &count, sizeof(count)) < 0)
		return;
	virtio_notify(n->transport->vdev, n->queue);
}

int virtio_mmio_register(struct virtio_mmio *m, struct virtio_device *vdev, struct bus *mmio,
			 uint64_t base, const int *notify_fds, struct event_loop *loop)
{
	memset(m, 0, sizeof(*m));
	m->vdev = vdev;
	m->loop = loop;
	for (unsigned int q = 0; notify_fds && q < vdev->ops->nr_queues; q++) {
		struct virtio_mmio_notifier *n = &m->notifiers[q];
		int err;

		*n = (struct virtio_mmio_notifier){ m, q, notify_fds[q], { on_queue_kick, n } };
		if (n->fd < 0)
			continue;
		err = event_loop_add(loop, n->fd, EPOLLIN, &n->handler);
		if (err)
			return err;
	}
	return bus_register(mmio, base, VIRTIO_MMIO_WINDOW, &virtio_mmio_ops, m);
}

int virtio_mmio_watch_queue(struct virtio_mmio *m, unsigned int q, bool on)
{
	struct virtio_mmio_notifier *n;

	if (q >= m->vdev->ops->nr_queues || !m->notifiers[q].transport ||
	    m->notifiers[q].fd < 0 || !m->loop)
		return -EINVAL;
	n = &m->notifiers[q];
	return on ? event_loop_add(m->loop, n->fd, EPOLLIN, &n->handler)
		  : event_loop_remove(m->loop, n->fd);
}
