/*
 * Fuzzes the device lifecycle through the virtio-mmio registers: the input
 * is a program that a hostile driver runs against a virtio-blk and a
 * virtio-net device at once. It writes any register with any value in any
 * state (status, features, queue layout, QueueReady), reads any register,
 * lays out rings anywhere in fake RAM (the top included), writes
 * descriptors, avail entries and avail->idx itself, kicks any queue
 * (nonexistent ones too), and resets; between its steps the disk's engine
 * completes requests (io_uring, so they arrive on the event loop; the sync
 * engine where io_uring is refused or the input asks), the network peer
 * delivers frames, fills up or dies, and the blk batch timer fires (in
 * real time: a turn of the loop may wait for it).
 *
 * The NIC may have vhost-net: /dev/vhost-net is played by the target (the
 * core's open64() and ioctl() reach __wrap_* below through the linker's
 * --wrap), a kernel that checks what it is handed and fails the start
 * ioctl the input says.
 *
 * Checked after every step (a violation aborts):
 *   - nothing outside fake RAM is touched (ASan, and the page after RAM);
 *   - a status read shows no bit cleared unless the program wrote 0;
 *   - while DRIVER_OK reads set, every queue's size, addresses and ready
 *     read back as they did when it was first seen set;
 *   - no fd is added to the event loop twice or removed when absent;
 *   - vhost has the rings only while the device says so and DRIVER_OK is
 *     set, only rings whole inside guest RAM, none changed under it; its
 *     call fd is watched and the transport ignores the kicks exactly then.
 *
 * Input (missing bytes read as zero):
 *   0  bit 0 blk on the sync engine, bit 1 the NIC has vhost-net,
 *      bit 2 the NIC knows its kick eventfds (vhost needs them)
 *   then steps, an opcode byte each: bit 7 the device (0 blk, 1 net),
 *   bits 4-6 an argument a, bits 0-3 what:
 *   0 write    offset/4 (1), value (4)
 *   1 read     offset (2), width 1 << (a & 3)
 *   2 status   value (1)
 *   3 queue    queue a: size (1: bit 4 set, the byte itself; else 1 << low 4 bits),
 *              where (1: 0xff the top of RAM, else its 512-byte block); QueueReady 1
 *   4 start    an honest start: bits of (1) drop EVENT_IDX (0), INDIRECT (1), MRG_RXBUF (2),
 *              bits 4-6 log2 of the queues' size; rings stacked from the top of RAM
 *   5 desc     queue a: index (1), address offset in RAM (3), length (2), flags (1), next (1)
 *   6 avail    queue a: publish head (1)
 *   7 idx      queue a: avail->idx = (2)
 *   8 request  blk: a & 3 read/write/flush/get-id, sector (1), sectors (1 & 7);
 *              net: a & 1 TX frame / RX buffer, length (2); a & 4: no kick
 *   9 kick     queue (1)
 *   10 pump    the loop's ready handlers; a & 1: wait up to WAIT_MS first (MAX_WAITS a run)
 *   11 peer    a & 3: 0 a frame arrives (3 length, 12 header), 1 full once, 2 dead
 *   12 vhost   the vhost start ioctl that many (1) from now fails; 0 none
 *   13 poke    RAM offset (3), length (1 & 31), the bytes
 *   14-15 reset
 */
#include <errno.h>
#include <fcntl.h>
#include <stdarg.h>
#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <string.h>
#include <sys/eventfd.h>
#include <unistd.h>

#include <linux/vhost.h>
#include <linux/virtio_blk.h>
#include <linux/virtio_config.h>
#include <linux/virtio_mmio.h>
#include <linux/virtio_net.h>
#include <linux/virtio_ring.h>

#include "disk/disk.h"
#include "net/vhost.h"
#include "virtio/blk.h"
#include "virtio/net.h"
#include "fake_net.h"
#include "fuzz_disk.h"
#include "fuzz_input.h"
#include "fuzz_support.h"
#include "virtio_harness.h"

#define RAM_SIZE (128u << 10)
#define DISK_SIZE (64u << 10)
#define MAX_OPS 512
#define MAX_WAITS 2
#define WAIT_MS 11 /* past the blk batch window's 10 ms ceiling */
#define SLOTS 8	   /* requests' buffers, by head, at the bottom of RAM */
#define SLOT_SIZE 0x1100
#define MAX_FDS 1024
#define F(bit) (1ULL << (bit))

int LLVMFuzzerInitialize(int *argc, char ***argv);
int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

/* --- the kernel behind /dev/vhost-net ---------------------------------------------- */

/* What vhost-net offers: the transport's ring features and mergeable RX buffers. */
#define FAKE_VHOST_FEATURES                                                             \
	(F(VIRTIO_F_VERSION_1) | F(VIRTIO_RING_F_EVENT_IDX) | F(VIRTIO_RING_F_INDIRECT_DESC) | \
	 F(VIRTIO_NET_F_MRG_RXBUF))

struct fake_vhost_ring {
	uint32_t num;
	uint64_t desc, avail, used; /* host addresses */
	int backend;		    /* -1: the kernel does not use the ring */
};

/*
 * What the host side sees, reset per run: the kernel behind the one
 * /dev/vhost-net the process opens, and the fds on the event loop.
 */
static struct {
	int fd;		      /* what "/dev/vhost-net" opened as; -1: closed */
	unsigned int fail_in; /* the start ioctl that many from now fails; 0: none */
	struct vhost_memory_region mem[GUEST_MEM_MAX_REGIONS];
	uint32_t nr_mem;
	struct fake_vhost_ring ring[VHOST_NET_RINGS];
	int call_fd; /* the last one the device gave; -1: none */
	bool kick_watched[VHOST_NET_RINGS]; /* the transport reads the guest's kicks */
	bool watched[MAX_FDS];		     /* fds on the event loop */
} host;

int __real_open64(const char *path, int flags, ...);
int __wrap_open64(const char *path, int flags, ...);
int __real_ioctl(int fd, unsigned long request, ...);
int __wrap_ioctl(int fd, unsigned long request, ...);
int __real_event_loop_add(struct event_loop *loop, int fd, uint32_t events,
			  struct event_handler *handler);
int __wrap_event_loop_add(struct event_loop *loop, int fd, uint32_t events,
			  struct event_handler *handler);
int __real_event_loop_remove(struct event_loop *loop, int fd);
int __wrap_event_loop_remove(struct event_loop *loop, int fd);

int __wrap_open64(const char *path, int flags, ...)
{
	va_list ap;
	int mode;

	va_start(ap, flags);
	mode = (flags & O_CREAT) || (flags & O_TMPFILE) == O_TMPFILE ? va_arg(ap, int) : 0;
	va_end(ap);
	if (strcmp(path, "/dev/vhost-net"))
		return __real_open64(path, flags, mode);
	host.fd = __real_open64("/dev/null", flags);
	return host.fd;
}

/* Is [addr, addr + len) inside one region of the memory table? */
static bool vhost_mapped(uint64_t addr, uint64_t len)
{
	for (uint32_t i = 0; i < host.nr_mem; i++) {
		const struct vhost_memory_region *r = &host.mem[i];

		if (addr >= r->userspace_addr && len <= r->memory_size &&
		    addr - r->userspace_addr <= r->memory_size - len)
			return true;
	}
	return false;
}

static void vhost_check_ring(const struct fake_vhost_ring *r)
{
	uint64_t n = r->num;

	if (n == 0 || n > VIRTQ_MAX_SIZE || (n & (n - 1)))
		fuzz_fail("vhost was handed a ring of an impossible size");
	if (!vhost_mapped(r->desc, 16 * n) || !vhost_mapped(r->avail, 6 + 2 * n) ||
	    !vhost_mapped(r->used, 6 + 8 * n))
		fuzz_fail("vhost was handed a ring outside guest RAM");
}

/* A ring's layout only while the kernel does not use it (the kernel says EBUSY). */
static struct fake_vhost_ring *vhost_idle_ring(unsigned int index)
{
	if (index >= VHOST_NET_RINGS)
		fuzz_fail("vhost was given a ring index it does not have");
	if (host.ring[index].backend >= 0)
		fuzz_fail("a ring was changed while vhost used it");
	return &host.ring[index];
}

static int vhost_ioctl(unsigned long request, void *arg)
{
	const struct vhost_vring_file *file = arg;
	const struct vhost_vring_addr *addr = arg;
	const struct vhost_memory *table = arg;
	/* Stopping (unbinding) always works, as in the kernel: only starting fails. */
	bool stopping = request == VHOST_GET_VRING_BASE ||
			((request == VHOST_SET_VRING_KICK || request == VHOST_SET_VRING_CALL ||
			  request == VHOST_NET_SET_BACKEND) && file->fd < 0);

	if (!stopping && host.fail_in && --host.fail_in == 0) {
		errno = EIO;
		return -1;
	}
	switch (request) {
	case VHOST_SET_OWNER:
	case VHOST_SET_FEATURES:
	case VHOST_GET_VRING_BASE:
	case VHOST_SET_VRING_KICK:
		return 0;
	case VHOST_GET_FEATURES:
		*(uint64_t *)arg = FAKE_VHOST_FEATURES;
		return 0;
	case VHOST_SET_MEM_TABLE:
		if (table->nregions > GUEST_MEM_MAX_REGIONS)
			fuzz_fail("vhost was handed more memory regions than guest RAM has");
		host.nr_mem = table->nregions;
		memcpy(host.mem, table->regions, sizeof(table->regions[0]) * table->nregions);
		return 0;
	case VHOST_SET_VRING_NUM:
		vhost_idle_ring(((const struct vhost_vring_state *)arg)->index)->num =
			((const struct vhost_vring_state *)arg)->num;
		return 0;
	case VHOST_SET_VRING_BASE:
		vhost_idle_ring(((const struct vhost_vring_state *)arg)->index);
		return 0;
	case VHOST_SET_VRING_ADDR: {
		struct fake_vhost_ring *r = vhost_idle_ring(addr->index);

		r->desc = addr->desc_user_addr;
		r->avail = addr->avail_user_addr;
		r->used = addr->used_user_addr;
		return 0;
	}
	case VHOST_SET_VRING_CALL:
		if (file->fd >= 0)
			host.call_fd = file->fd;
		return 0;
	case VHOST_NET_SET_BACKEND:
		if (file->index >= VHOST_NET_RINGS)
			fuzz_fail("vhost was given a ring index it does not have");
		if (file->fd >= 0)
			vhost_check_ring(&host.ring[file->index]);
		host.ring[file->index].backend = file->fd;
		return 0;
	}
	errno = ENOTTY;
	return -1;
}

int __wrap_ioctl(int fd, unsigned long request, ...)
{
	va_list ap;
	void *arg;

	va_start(ap, request);
	arg = va_arg(ap, void *);
	va_end(ap);
	if (host.fd >= 0 && fd == host.fd)
		return vhost_ioctl(request, arg);
	return __real_ioctl(fd, request, arg);
}

int __wrap_event_loop_add(struct event_loop *loop, int fd, uint32_t events,
			  struct event_handler *handler)
{
	int err = __real_event_loop_add(loop, fd, events, handler);

	if (err == -EEXIST)
		fuzz_fail("an fd was added to the event loop twice");
	if (!err && fd < MAX_FDS)
		host.watched[fd] = true;
	return err;
}

int __wrap_event_loop_remove(struct event_loop *loop, int fd)
{
	int err = __real_event_loop_remove(loop, fd);

	if (err == -ENOENT)
		fuzz_fail("an fd that was not on the event loop was removed from it");
	if (!err && fd < MAX_FDS)
		host.watched[fd] = false;
	return err;
}

static void host_reset(void)
{
	memset(&host, 0, sizeof(host));
	host.fd = host.call_fd = -1;
	for (unsigned int i = 0; i < VHOST_NET_RINGS; i++) {
		host.ring[i].backend = -1;
		host.kick_watched[i] = true;
	}
}

/* virtio_net_kicks.watch: the transport stops or resumes reading queue q's kicks. */
static int watch_kicks(void *opaque, unsigned int q, bool on)
{
	(void)opaque;
	if (q >= VHOST_NET_RINGS || host.kick_watched[q] == on)
		fuzz_fail("the transport was told twice to start or stop reading kicks");
	host.kick_watched[q] = on;
	return 0;
}

/* --- the devices and the driver's view of them ------------------------------------- */

/* What the registers of one queue read back. */
struct layout {
	uint32_t ready, num;
	uint64_t desc, avail, used;
};

struct dev {
	struct harness h; /* h.queues: the layout the driver wrote, whatever the device kept */
	unsigned int nr_queues;
	uint32_t queue_sel; /* the last QueueSel written */
	uint32_t status;    /* read back after the last step */
	bool reset;	    /* 0 was written to Status during this step */
	bool layout_known;  /* layout[] was read with DRIVER_OK set */
	struct layout layout[VIRTIO_MAX_QUEUES];
};

struct run {
	struct dev dev[2]; /* blk, net */
	struct event_loop loop;
	struct virtio_blk *blk;
	struct fake_net fake;
	struct virtio_net *net;
	struct vhost_net *vhost;
	int kick_fds[VHOST_NET_RINGS];
	unsigned int waits; /* pumps that waited, of MAX_WAITS */
};

static struct disk *disks[2]; /* io_uring where the host allows it, sync */

int LLVMFuzzerInitialize(int *argc, char ***argv)
{
	disks[0] = fuzz_disk_open(false, DISK_SIZE);
	disk_engine_start(disks[0], DISK_ENGINE_IO_URING, DISK_ENGINE_DEPTH);
	disks[1] = fuzz_disk_open(false, DISK_SIZE);
	return 0;
}

/* Where the driver keeps the ring address that a QueueDesc/Avail/Used register sets. */
static uint64_t *driver_ring_addr(struct harness_queue *hq, uint64_t offset)
{
	switch (offset & ~4ULL) { /* the high half sits 4 bytes after the low one */
	case VIRTIO_MMIO_QUEUE_DESC_LOW: return &hq->desc_gpa;
	case VIRTIO_MMIO_QUEUE_AVAIL_LOW: return &hq->avail_gpa;
	case VIRTIO_MMIO_QUEUE_USED_LOW: return &hq->used_gpa;
	default: return NULL;
	}
}

/* Every register write of the program: the driver remembers what it wrote. */
static void reg_write(struct dev *d, uint64_t offset, uint32_t value)
{
	struct harness_queue *hq = d->queue_sel < VIRTIO_MAX_QUEUES ? &d->h.queues[d->queue_sel]
								    : NULL;
	uint64_t *addr = hq ? driver_ring_addr(hq, offset) : NULL;

	if (offset == VIRTIO_MMIO_STATUS)
		d->reset |= value == 0;
	else if (offset == VIRTIO_MMIO_QUEUE_SEL)
		d->queue_sel = value;
	else if (hq && offset == VIRTIO_MMIO_QUEUE_NUM)
		hq->size = (uint16_t)value;
	else if (addr)
		*addr = offset & 4 ? (*addr & 0xffffffffULL) | (uint64_t)value << 32
				   : (*addr & ~0xffffffffULL) | value;
	harness_write_reg(&d->h, offset, value);
}

static void reg_write_addr(struct dev *d, uint64_t low, uint64_t gpa)
{
	reg_write(d, low, (uint32_t)gpa);
	reg_write(d, low + 4, (uint32_t)(gpa >> 32));
}

static uint64_t ram_end(const struct dev *d)
{
	return HARNESS_RAM_GPA + d->h.ram_size;
}

/* Programs queue q (size n, rings from desc on, §2.7's alignments) and sets it ready. */
static void program_queue(struct dev *d, unsigned int q, uint32_t n, uint64_t desc,
			  uint64_t avail, uint64_t used)
{
	reg_write(d, VIRTIO_MMIO_QUEUE_SEL, q);
	reg_write(d, VIRTIO_MMIO_QUEUE_NUM, n);
	reg_write_addr(d, VIRTIO_MMIO_QUEUE_DESC_LOW, desc);
	reg_write_addr(d, VIRTIO_MMIO_QUEUE_AVAIL_LOW, avail);
	reg_write_addr(d, VIRTIO_MMIO_QUEUE_USED_LOW, used);
	reg_write(d, VIRTIO_MMIO_QUEUE_READY, 1);
	d->h.queues[q & (VIRTIO_MAX_QUEUES - 1)].next_desc = 0;
}

/* Queue q with its used ring ending as close to end as §2.7 allows; returns where it starts. */
static uint64_t program_queue_below(struct dev *d, unsigned int q, uint32_t n, uint64_t end)
{
	uint64_t used = (end - (6 + 8ULL * n)) & ~3ULL;
	uint64_t avail = (used - (6 + 2ULL * n)) & ~1ULL;
	uint64_t desc = (avail - 16ULL * n) & ~15ULL;

	program_queue(d, q, n, desc, avail, used);
	return desc;
}

static void op_queue(struct dev *d, struct input *in, unsigned int q)
{
	uint8_t size = get8(in), where = get8(in);
	uint32_t n = size & 0x10 ? size : 1u << (size & 15);
	uint64_t desc = HARNESS_RAM_GPA + where * 512ULL;

	if (where == 0xff)
		program_queue_below(d, q, n, ram_end(d));
	else
		program_queue(d, q, n, desc, (desc + 16ULL * n),
			      (desc + 16ULL * n + 6 + 2ULL * n + 3) & ~3ULL);
}

/* What Linux does at probe, with the rings stacked at the top of RAM. */
static void op_start(struct dev *d, struct input *in)
{
	uint8_t b = get8(in);
	uint64_t wanted = ~0ULL, end = ram_end(d);

	if (b & 1)
		wanted &= ~F(VIRTIO_RING_F_EVENT_IDX);
	if (b & 2)
		wanted &= ~F(VIRTIO_RING_F_INDIRECT_DESC);
	if (b & 4)
		wanted &= ~F(VIRTIO_NET_F_MRG_RXBUF);
	d->reset = true; /* harness_negotiate() writes 0 first */
	harness_negotiate(&d->h, wanted);
	for (unsigned int q = 0; q < d->nr_queues; q++)
		end = program_queue_below(d, q, 1u << ((b >> 4) & 7), end);
	harness_driver_ok(&d->h);
}

/* The driver's queue q, when its size is one a ring can have; else NULL. */
static struct harness_queue *driver_queue(struct dev *d, unsigned int q)
{
	struct harness_queue *hq = &d->h.queues[q];

	return hq->size && !(hq->size & (hq->size - 1)) ? hq : NULL;
}

/* Host pointer to [gpa, gpa + len) of fake RAM, NULL when not all of it is RAM. */
static void *ram(struct dev *d, uint64_t gpa, uint64_t len)
{
	return guest_mem_ptr(&d->h.mem, gpa, len);
}

static void write_desc(struct dev *d, unsigned int q, uint16_t index, uint64_t addr,
		       uint32_t len, uint16_t flags, uint16_t next)
{
	struct harness_queue *hq = driver_queue(d, q);
	struct vring_desc *desc = hq ? ram(d, hq->desc_gpa + 16ULL * (index & (hq->size - 1)), 16)
				     : NULL;

	if (desc)
		*desc = (struct vring_desc){ .addr = addr, .len = len, .flags = flags,
					     .next = next };
}

/* Puts head in the next avail entry and moves avail->idx past it. */
static void publish(struct dev *d, unsigned int q, uint16_t head)
{
	struct harness_queue *hq = driver_queue(d, q);
	struct vring_avail *avail = hq ? ram(d, hq->avail_gpa, 4 + 2ULL * hq->size) : NULL;
	uint16_t idx;

	if (!avail)
		return;
	idx = avail->idx;
	avail->ring[idx & (hq->size - 1)] = head;
	__atomic_store_n(&avail->idx, (uint16_t)(idx + 1), __ATOMIC_RELEASE);
}

static void op_desc(struct dev *d, struct input *in, unsigned int q)
{
	uint16_t index = get8(in);
	uint64_t addr = HARNESS_RAM_GPA + get_n(in, 3) % (d->h.ram_size + 8192);
	uint32_t len = get_n(in, 2);
	uint16_t flags = get8(in) & (VRING_DESC_F_NEXT | VRING_DESC_F_WRITE |
				     VRING_DESC_F_INDIRECT);

	write_desc(d, q, index, addr, len, flags, get8(in));
}

static void op_avail_idx(struct dev *d, struct input *in, unsigned int q)
{
	struct harness_queue *hq = driver_queue(d, q);
	struct vring_avail *avail = hq ? ram(d, hq->avail_gpa, 4) : NULL;
	uint16_t idx = get_n(in, 2);

	if (avail)
		__atomic_store_n(&avail->idx, idx, __ATOMIC_RELEASE);
}

/* The next free descriptors and the buffer slot of the chain that starts there. */
static bool next_chain(struct dev *d, unsigned int q, unsigned int n, uint16_t *head,
		       uint64_t *slot)
{
	struct harness_queue *hq = driver_queue(d, q);

	if (!hq)
		return false;
	*head = hq->next_desc & (hq->size - 1);
	hq->next_desc = (uint16_t)(hq->next_desc + n);
	*slot = HARNESS_RAM_GPA + (*head % SLOTS) * SLOT_SIZE;
	return true;
}

/*
 * A virtio-blk request in two descriptors, so it fits a queue of 2:
 * the header (and a write's data) readable, a read's data and the status
 * byte writable.
 */
static void blk_request(struct dev *d, struct input *in, uint8_t a)
{
	static const uint32_t types[] = { VIRTIO_BLK_T_IN, VIRTIO_BLK_T_OUT, VIRTIO_BLK_T_FLUSH,
					  VIRTIO_BLK_T_GET_ID };
	uint32_t type = types[a & 3];
	struct virtio_blk_outhdr hdr = { .type = type, .sector = get8(in) };
	uint32_t data = (get8(in) & 7) * 512u;
	uint32_t readable = sizeof(hdr) + (type == VIRTIO_BLK_T_OUT ? data : 0);
	uint32_t writable = 1 + (type == VIRTIO_BLK_T_IN ? data : 0) +
			    (type == VIRTIO_BLK_T_GET_ID ? VIRTIO_BLK_ID_BYTES : 0);
	uint16_t head, size;
	uint64_t slot;

	if (!next_chain(d, 0, 2, &head, &slot))
		return;
	size = d->h.queues[0].size;
	memcpy(ram(d, slot, sizeof(hdr)), &hdr, sizeof(hdr));
	write_desc(d, 0, head, slot, readable, VRING_DESC_F_NEXT, (head + 1) & (size - 1));
	write_desc(d, 0, head + 1, slot + readable, writable, VRING_DESC_F_WRITE, 0);
	publish(d, 0, head);
	if (!(a & 4))
		harness_kick(&d->h, 0);
}

/* An RX buffer (queue 0) or a TX frame with a plain header (queue 1) in one descriptor. */
static void net_request(struct dev *d, struct input *in, uint8_t a)
{
	unsigned int q = a & 1;
	uint32_t len = get_n(in, 2) % (SLOT_SIZE - NET_HDR_LEN) + (q ? NET_HDR_LEN : 0);
	uint16_t head;
	uint64_t slot;

	if (!next_chain(d, q, 1, &head, &slot))
		return;
	memset(ram(d, slot, NET_HDR_LEN), 0, NET_HDR_LEN);
	write_desc(d, q, head, slot, len, q ? 0 : VRING_DESC_F_WRITE, 0);
	publish(d, q, head);
	if (!(a & 4))
		harness_kick(&d->h, q);
}

static void op_poke(struct dev *d, struct input *in)
{
	uint64_t gpa = HARNESS_RAM_GPA + get_n(in, 3) % d->h.ram_size;
	uint32_t len = get8(in) & 31;
	uint8_t *p = ram(d, gpa, len);

	for (uint32_t i = 0; i < len; i++) {
		uint8_t b = get8(in);

		if (p)
			p[i] = b;
	}
}

static void op_read(struct dev *d, struct input *in, uint8_t a)
{
	uint64_t offset = get_n(in, 2) % VIRTIO_MMIO_WINDOW, value;
	uint32_t width = 1u << (a & 3);

	if (offset + width <= VIRTIO_MMIO_WINDOW)
		bus_read(&d->h.bus, HARNESS_MMIO_BASE + offset, &value, width);
}

static void op_peer(struct run *r, struct input *in, uint8_t a)
{
	switch (a & 3) {
	case 0: fake_net_deliver(&r->fake, in); break;
	case 1: r->fake.eagain = true; break;
	case 2: r->fake.dead = true; break;
	}
}

static void step(struct run *r, struct input *in)
{
	uint8_t op = get8(in), a = (op >> 4) & 7;
	struct dev *d = &r->dev[op >> 7];

	switch (op & 15) {
	case 0: {
		uint64_t offset = (get8(in) * 4u) % VIRTIO_MMIO_WINDOW;

		reg_write(d, offset, get_n(in, 4));
		break;
	}
	case 1: op_read(d, in, a); break;
	case 2: reg_write(d, VIRTIO_MMIO_STATUS, get8(in)); break;
	case 3: op_queue(d, in, a); break;
	case 4: op_start(d, in); break;
	case 5: op_desc(d, in, a); break;
	case 6: publish(d, a, get8(in)); break;
	case 7: op_avail_idx(d, in, a); break;
	case 8:
		if (d == &r->dev[0])
			blk_request(d, in, a);
		else
			net_request(d, in, a);
		break;
	case 9: reg_write(d, VIRTIO_MMIO_QUEUE_NOTIFY, get8(in)); break;
	case 10:
		fuzz_pump(&r->loop, (a & 1) && r->waits < MAX_WAITS ? WAIT_MS : 0);
		r->waits += a & 1;
		break;
	case 11: op_peer(r, in, a); break;
	case 12: host.fail_in = get8(in); break;
	case 13: op_poke(d, in); break;
	default: reg_write(d, VIRTIO_MMIO_STATUS, 0); break;
	}
}

/* --- the invariants ----------------------------------------------------------------- */

static void read_layouts(struct dev *d, struct layout *out)
{
	for (unsigned int q = 0; q < d->nr_queues; q++) {
		struct harness *h = &d->h;

		harness_write_reg(h, VIRTIO_MMIO_QUEUE_SEL, q);
		out[q] = (struct layout){
			.ready = harness_read_reg(h, VIRTIO_MMIO_QUEUE_READY),
			.num = harness_read_reg(h, VIRTIO_MMIO_QUEUE_NUM),
			.desc = harness_read_reg(h, VIRTIO_MMIO_QUEUE_DESC_LOW) |
				(uint64_t)harness_read_reg(h, VIRTIO_MMIO_QUEUE_DESC_HIGH) << 32,
			.avail = harness_read_reg(h, VIRTIO_MMIO_QUEUE_AVAIL_LOW) |
				 (uint64_t)harness_read_reg(h, VIRTIO_MMIO_QUEUE_AVAIL_HIGH) << 32,
			.used = harness_read_reg(h, VIRTIO_MMIO_QUEUE_USED_LOW) |
				(uint64_t)harness_read_reg(h, VIRTIO_MMIO_QUEUE_USED_HIGH) << 32,
		};
	}
	harness_write_reg(&d->h, VIRTIO_MMIO_QUEUE_SEL, d->queue_sel); /* as the program left it */
}

static void check_device(struct dev *d)
{
	uint32_t status = harness_status(&d->h);
	struct layout now[VIRTIO_MAX_QUEUES];

	if ((d->status & ~status) && !d->reset)
		fuzz_fail("a status bit was cleared without a reset");
	if (d->reset || !(status & VIRTIO_CONFIG_S_DRIVER_OK))
		d->layout_known = false;
	if (status & VIRTIO_CONFIG_S_DRIVER_OK) {
		read_layouts(d, now);
		if (d->layout_known && memcmp(now, d->layout, sizeof(now[0]) * d->nr_queues))
			fuzz_fail("a queue's layout changed while DRIVER_OK was set");
		memcpy(d->layout, now, sizeof(now[0]) * d->nr_queues);
		d->layout_known = true;
	}
	d->status = status;
	d->reset = false;
}

static void check_vhost(struct run *r)
{
	bool bound = host.ring[0].backend >= 0 || host.ring[1].backend >= 0;

	if (bound != virtio_net_vhost_active(r->net))
		fuzz_fail("the device and vhost disagree on who has the rings");
	if (bound && !virtio_running(virtio_net_device(r->net)))
		fuzz_fail("vhost has the rings while the device is not running");
	if (host.call_fd >= 0 && host.call_fd < MAX_FDS && host.watched[host.call_fd] != bound)
		fuzz_fail("vhost's call fd is watched while vhost lacks the rings, or the reverse");
	for (unsigned int q = 0; q < VHOST_NET_RINGS; q++)
		if (host.kick_watched[q] == bound)
			fuzz_fail("kicks read while vhost has the rings, or the reverse");
}

/* --- the run ------------------------------------------------------------------------ */

static void setup(struct run *r, uint8_t cfg)
{
	static const uint8_t mac[6] = { 0x52, 0x54, 0x00, 0x12, 0x34, 0x56 };
	char err[256];

	host_reset();
	if (event_loop_init(&r->loop) < 0)
		fuzz_fail("event_loop_init");
	harness_init(&r->dev[0].h, RAM_SIZE);
	r->blk = virtio_blk_create(disks[cfg & 1], "fuzz", &r->dev[0].h.mem, &r->loop);
	if (!r->blk)
		fuzz_fail("virtio_blk_create");
	harness_attach(&r->dev[0].h, virtio_blk_device(r->blk));
	r->dev[0].nr_queues = 1;

	fake_net_init(&r->fake);
	r->fake.features = ~0ULL; /* the program negotiates anything: no header check */
	if (cfg & 2) {
		r->vhost = vhost_net_open(err, sizeof(err));
		if (!r->vhost)
			fuzz_fail(err);
		r->fake.be.vhost = r->vhost;
	}
	harness_init(&r->dev[1].h, RAM_SIZE);
	r->net = virtio_net_create(&r->fake.be, mac, "net0", &r->dev[1].h.mem, &r->loop);
	if (!r->net)
		fuzz_fail("virtio_net_create");
	harness_attach(&r->dev[1].h, virtio_net_device(r->net));
	r->dev[1].nr_queues = 2;
	for (unsigned int q = 0; q < VHOST_NET_RINGS; q++) {
		r->kick_fds[q] = eventfd(0, EFD_NONBLOCK | EFD_CLOEXEC);
		if (r->kick_fds[q] < 0)
			fuzz_fail("eventfd");
	}
	if (cfg & 4)
		virtio_net_set_kicks(r->net, &(struct virtio_net_kicks){
			.kick_fds = { r->kick_fds[0], r->kick_fds[1] }, .watch = watch_kicks });
}

static void teardown(struct run *r)
{
	virtio_net_destroy(r->net);
	vhost_net_close(r->vhost);
	fake_net_destroy(&r->fake);
	for (unsigned int q = 0; q < VHOST_NET_RINGS; q++)
		close(r->kick_fds[q]);
	virtio_blk_destroy(r->blk);
	harness_destroy(&r->dev[0].h);
	harness_destroy(&r->dev[1].h);
	event_loop_destroy(&r->loop);
	host.fd = -1;
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	static struct run run;
	struct run *r = &run;
	struct input in = { data, size };

	memset(r, 0, sizeof(*r));
	setup(r, get8(&in));
	for (unsigned int ops = 0; ops < MAX_OPS && in.left; ops++) {
		step(r, &in);
		check_device(&r->dev[0]);
		check_device(&r->dev[1]);
		if (r->vhost)
			check_vhost(r);
	}
	teardown(r);
	return 0;
}
