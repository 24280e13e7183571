/*
 * The virtio driver harness: see virtio_harness.h. The sequences mirror
 * Linux's drivers/virtio/virtio_mmio.c (vm_setup_vq, vm_finalize_features)
 * and virtio_ring.c (split rings), so a device that satisfies the harness
 * has met the driver it will meet in a guest.
 */
#include "virtio_harness.h"

#include <errno.h>
#include <linux/virtio_config.h>
#include <linux/virtio_mmio.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/eventfd.h>
#include <sys/mman.h>
#include <unistd.h>

static void harness_fail(const char *what)
{
	fprintf(stderr, "virtio harness: %s\n", what);
	abort();
}

void harness_init(struct harness *h, uint64_t ram_size)
{
	memset(h, 0, sizeof(*h));
	h->ram_size = ram_size ? ram_size : HARNESS_RAM_SIZE;
	/*
	 * A page nobody may touch right after RAM, as a real guest's RAM ends
	 * where the VMM's own memory begins: a device that writes past the end
	 * crashes the test instead of scribbling on the heap unnoticed.
	 */
	h->map_size = ((h->ram_size + 4095) & ~4095ULL) + 4096;
	h->map = mmap(NULL, h->map_size, PROT_READ | PROT_WRITE, MAP_PRIVATE | MAP_ANONYMOUS, -1, 0);
	if (h->map == MAP_FAILED || mprotect(h->map + h->map_size - 4096, 4096, PROT_NONE))
		harness_fail("out of memory for fake RAM");
	h->ram = h->map + (h->map_size - 4096 - h->ram_size);
	guest_mem_init_empty(&h->mem);
	if (guest_mem_add_region(&h->mem, HARNESS_RAM_GPA, h->ram_size, h->ram))
		harness_fail("cannot describe fake RAM");
	bus_init(&h->bus);
	h->irq_fd = eventfd(0, EFD_CLOEXEC | EFD_NONBLOCK);
	if (h->irq_fd < 0)
		harness_fail("cannot create the interrupt eventfd");
	h->alloc_next = HARNESS_RAM_GPA;
}

void harness_attach(struct harness *h, struct virtio_device *vdev)
{
	h->vdev = vdev;
	vdev->irq.edge_fd = h->irq_fd;
	if (virtio_mmio_register(&h->mmio, vdev, &h->bus, HARNESS_MMIO_BASE, NULL, NULL))
		harness_fail("cannot register the virtio-mmio window");
}

void harness_destroy(struct harness *h)
{
	bus_destroy(&h->bus);
	close(h->irq_fd);
	munmap(h->map, h->map_size);
	memset(h, 0, sizeof(*h));
	h->irq_fd = -1;
}

uint64_t harness_alloc(struct harness *h, uint64_t len, uint64_t align)
{
	uint64_t gpa = (h->alloc_next + align - 1) & ~(align - 1);

	if (gpa + len > HARNESS_RAM_GPA + h->ram_size)
		harness_fail("fake RAM exhausted");
	h->alloc_next = gpa + len;
	memset(harness_ptr(h, gpa), 0, len);
	return gpa;
}

void *harness_ptr(struct harness *h, uint64_t gpa)
{
	if (gpa < HARNESS_RAM_GPA || gpa - HARNESS_RAM_GPA >= h->ram_size)
		harness_fail("pointer outside fake RAM");
	return h->ram + (gpa - HARNESS_RAM_GPA);
}

uint32_t harness_read_reg(struct harness *h, uint64_t offset)
{
	uint32_t value = 0xdeadbeef;

	if (!bus_read(&h->bus, HARNESS_MMIO_BASE + offset, &value, 4))
		harness_fail("register read outside the window");
	return value;
}

void harness_write_reg(struct harness *h, uint64_t offset, uint32_t value)
{
	if (!bus_write(&h->bus, HARNESS_MMIO_BASE + offset, &value, 4))
		harness_fail("register write outside the window");
}

void harness_config_read(struct harness *h, uint32_t offset, void *data, uint32_t size)
{
	if (!bus_read(&h->bus, HARNESS_MMIO_BASE + VIRTIO_MMIO_CONFIG + offset, data, size))
		harness_fail("config read outside the window");
}

void harness_add_status(struct harness *h, uint32_t bits)
{
	harness_write_reg(h, VIRTIO_MMIO_STATUS, harness_status(h) | bits);
}

uint32_t harness_status(struct harness *h)
{
	return harness_read_reg(h, VIRTIO_MMIO_STATUS);
}

uint64_t harness_device_features(struct harness *h)
{
	uint64_t features;

	harness_write_reg(h, VIRTIO_MMIO_DEVICE_FEATURES_SEL, 1);
	features = (uint64_t)harness_read_reg(h, VIRTIO_MMIO_DEVICE_FEATURES) << 32;
	harness_write_reg(h, VIRTIO_MMIO_DEVICE_FEATURES_SEL, 0);
	return features | harness_read_reg(h, VIRTIO_MMIO_DEVICE_FEATURES);
}

void harness_write_driver_features(struct harness *h, uint64_t features)
{
	harness_write_reg(h, VIRTIO_MMIO_DRIVER_FEATURES_SEL, 1);
	harness_write_reg(h, VIRTIO_MMIO_DRIVER_FEATURES, (uint32_t)(features >> 32));
	harness_write_reg(h, VIRTIO_MMIO_DRIVER_FEATURES_SEL, 0);
	harness_write_reg(h, VIRTIO_MMIO_DRIVER_FEATURES, (uint32_t)features);
}

int harness_negotiate(struct harness *h, uint64_t wanted)
{
	harness_write_reg(h, VIRTIO_MMIO_STATUS, 0);
	memset(h->queues, 0, sizeof(h->queues));
	harness_add_status(h, VIRTIO_CONFIG_S_ACKNOWLEDGE);
	harness_add_status(h, VIRTIO_CONFIG_S_DRIVER);
	h->features = harness_device_features(h) & wanted;
	harness_write_driver_features(h, h->features);
	harness_add_status(h, VIRTIO_CONFIG_S_FEATURES_OK);
	return harness_status(h) & VIRTIO_CONFIG_S_FEATURES_OK ? 0 : -1;
}

static void write_addr(struct harness *h, uint64_t low_reg, uint64_t high_reg, uint64_t gpa)
{
	harness_write_reg(h, low_reg, (uint32_t)gpa);
	harness_write_reg(h, high_reg, (uint32_t)(gpa >> 32));
}

void harness_setup_queue_at(struct harness *h, unsigned int q, uint16_t size, uint64_t desc,
			    uint64_t avail, uint64_t used)
{
	struct harness_queue *hq = &h->queues[q];

	if (q >= VIRTIO_MAX_QUEUES)
		harness_fail("no such queue");
	harness_write_reg(h, VIRTIO_MMIO_QUEUE_SEL, q);
	if (harness_read_reg(h, VIRTIO_MMIO_QUEUE_READY))
		harness_fail("queue already set up");
	*hq = (struct harness_queue){ .size = size, .desc_gpa = desc, .avail_gpa = avail,
				      .used_gpa = used };
	harness_write_reg(h, VIRTIO_MMIO_QUEUE_NUM, size);
	write_addr(h, VIRTIO_MMIO_QUEUE_DESC_LOW, VIRTIO_MMIO_QUEUE_DESC_HIGH, desc);
	write_addr(h, VIRTIO_MMIO_QUEUE_AVAIL_LOW, VIRTIO_MMIO_QUEUE_AVAIL_HIGH, avail);
	write_addr(h, VIRTIO_MMIO_QUEUE_USED_LOW, VIRTIO_MMIO_QUEUE_USED_HIGH, used);
	harness_write_reg(h, VIRTIO_MMIO_QUEUE_READY, 1);
}

void harness_setup_queue(struct harness *h, unsigned int q, uint16_t size)
{
	uint32_t max;
	uint64_t desc, avail, used;

	harness_write_reg(h, VIRTIO_MMIO_QUEUE_SEL, q);
	max = harness_read_reg(h, VIRTIO_MMIO_QUEUE_NUM_MAX);
	if (max == 0)
		harness_fail("the device has no such queue");
	if (size > max)
		size = (uint16_t)max;
	/* §2.7: alignments 16, 2 and 4; each ring has its event index after it. */
	desc = harness_alloc(h, 16ULL * size, 16);
	avail = harness_alloc(h, 4 + 2ULL * size + 2, 2);
	used = harness_alloc(h, 4 + 8ULL * size + 2, 4);
	harness_setup_queue_at(h, q, size, desc, avail, used);
}

void harness_driver_ok(struct harness *h)
{
	harness_add_status(h, VIRTIO_CONFIG_S_DRIVER_OK);
}

int harness_start(struct harness *h, uint64_t wanted, unsigned int nr_queues, uint16_t size)
{
	int err = harness_negotiate(h, wanted);

	for (unsigned int q = 0; q < nr_queues; q++)
		harness_setup_queue(h, q, size);
	harness_driver_ok(h);
	return err;
}

static struct harness_queue *queue(struct harness *h, unsigned int q)
{
	if (q >= VIRTIO_MAX_QUEUES || !h->queues[q].size)
		harness_fail("queue not set up");
	return &h->queues[q];
}

struct vring_desc *harness_desc(struct harness *h, unsigned int q, uint16_t index)
{
	struct harness_queue *hq = queue(h, q);

	if (index >= hq->size)
		harness_fail("descriptor index past the table");
	return (struct vring_desc *)harness_ptr(h, hq->desc_gpa + 16ULL * index);
}

struct vring_avail *harness_avail(struct harness *h, unsigned int q)
{
	return harness_ptr(h, queue(h, q)->avail_gpa);
}

struct vring_used *harness_used(struct harness *h, unsigned int q)
{
	return harness_ptr(h, queue(h, q)->used_gpa);
}

uint16_t *harness_used_event(struct harness *h, unsigned int q)
{
	return &harness_avail(h, q)->ring[queue(h, q)->size];
}

uint16_t *harness_avail_event(struct harness *h, unsigned int q)
{
	return (uint16_t *)&harness_used(h, q)->ring[queue(h, q)->size];
}

void harness_set_desc(struct harness *h, unsigned int q, uint16_t index, uint64_t addr,
		      uint32_t len, uint16_t flags, uint16_t next)
{
	*harness_desc(h, q, index) =
		(struct vring_desc){ .addr = addr, .len = len, .flags = flags, .next = next };
}

void harness_publish(struct harness *h, unsigned int q, uint16_t head)
{
	struct harness_queue *hq = queue(h, q);
	struct vring_avail *avail = harness_avail(h, q);

	avail->ring[hq->avail_idx & (hq->size - 1)] = head;
	hq->avail_idx++;
	/* The entry is visible before the index that covers it (virtio_wmb). */
	__atomic_store_n(&avail->idx, hq->avail_idx, __ATOMIC_RELEASE);
}

/* Writes bufs as a chain at table[first..], indices wrapping at size. */
static void write_chain(struct vring_desc *table, uint16_t size, uint16_t first,
			const struct harness_buf *bufs, unsigned int n)
{
	uint16_t idx = first;

	for (unsigned int i = 0; i < n; i++) {
		uint16_t next = (uint16_t)((idx + 1) % size);

		table[idx] = (struct vring_desc){
			.addr = bufs[i].gpa,
			.len = bufs[i].len,
			.flags = (uint16_t)((bufs[i].writable ? VRING_DESC_F_WRITE : 0) |
					    (i + 1 < n ? VRING_DESC_F_NEXT : 0)),
			.next = i + 1 < n ? next : 0,
		};
		idx = next;
	}
}

uint16_t harness_add(struct harness *h, unsigned int q, const struct harness_buf *bufs,
		     unsigned int n)
{
	struct harness_queue *hq = queue(h, q);
	uint16_t head = hq->next_desc;

	if (n == 0 || n > hq->size)
		harness_fail("a chain needs 1 to queue-size buffers");
	write_chain(harness_desc(h, q, 0), hq->size, head, bufs, n);
	hq->next_desc = (uint16_t)((head + n) % hq->size);
	harness_publish(h, q, head);
	return head;
}

uint16_t harness_add_indirect(struct harness *h, unsigned int q, const struct harness_buf *bufs,
			      unsigned int n)
{
	struct harness_queue *hq = queue(h, q);
	uint16_t head = hq->next_desc;
	uint64_t table;

	if (n == 0 || n > UINT16_MAX)
		harness_fail("an indirect table needs 1 to 65535 buffers");
	table = harness_alloc(h, 16ULL * n, 16);
	write_chain(harness_ptr(h, table), (uint16_t)n, 0, bufs, n);
	harness_set_desc(h, q, head, table, 16 * n, VRING_DESC_F_INDIRECT, 0);
	hq->next_desc = (uint16_t)((head + 1) % hq->size);
	harness_publish(h, q, head);
	return head;
}

void harness_kick(struct harness *h, unsigned int q)
{
	harness_write_reg(h, VIRTIO_MMIO_QUEUE_NOTIFY, q);
}

uint16_t harness_pending_used(struct harness *h, unsigned int q)
{
	struct harness_queue *hq = queue(h, q);

	return (uint16_t)(__atomic_load_n(&harness_used(h, q)->idx, __ATOMIC_ACQUIRE) -
			  hq->last_used);
}

bool harness_get_used(struct harness *h, unsigned int q, uint32_t *id, uint32_t *len)
{
	struct harness_queue *hq = queue(h, q);
	struct vring_used_elem *elem;

	if (harness_pending_used(h, q) == 0)
		return false;
	elem = &harness_used(h, q)->ring[hq->last_used & (hq->size - 1)];
	*id = elem->id;
	*len = elem->len;
	hq->last_used++;
	return true;
}

unsigned int harness_interrupts(struct harness *h)
{
	uint64_t count = 0;

	if (read(h->irq_fd, &count, sizeof(count)) != sizeof(count))
		return 0; /* EAGAIN: none */
	return (unsigned int)count;
}

uint32_t harness_ack_interrupt(struct harness *h)
{
	uint32_t status = harness_read_reg(h, VIRTIO_MMIO_INTERRUPT_STATUS);

	harness_write_reg(h, VIRTIO_MMIO_INTERRUPT_ACK, status);
	return status;
}
