/*
 * evil-virtio: a hostile virtio-mmio driver, run inside a real Linux guest
 * under Vireo (the guest tier's hostile-driver scenario; see
 * tests/guest/scenarios/hostile-driver.sh).
 *
 * It takes a virtio-blk disk or a virtio-net NIC away from the guest
 * kernel (unbinds it from virtio-mmio), maps the device's registers and a
 * reserved stretch of guest RAM through /dev/mem, and drives the device
 * itself the way a malicious guest kernel could:
 *
 *   defect1  rings of size 2 whose used ring ends at the very top of guest
 *            RAM; two requests (frames) complete; then status 0xB (DRIVER_OK
 *            cleared without a reset), QueueReady 0, QueueNum 256,
 *            QueueReady 1; then more work reaches the queue. A device that
 *            kept serving the queue with the new size would write its used
 *            entries past the end of guest RAM, into the VMM's own memory.
 *   garbage  random status values, queue registers written in every state,
 *            notifies of queues that do not exist, descriptors outside RAM,
 *            a descriptor loop, avail.idx jumping past the queue size.
 *   reinit   a reset and a clean initialisation that must work again: blk
 *            writes one sector and reads it back, net gets an ARP reply and
 *            a UDP datagram sent through the guest's honest NIC.
 *
 * The reserved RAM comes from the guest's command line (memmap=SIZE$ADDR,
 * so it is not System RAM and STRICT_DEVMEM lets /dev/mem map it); the
 * ring layout of defect1 needs it to end exactly where guest RAM ends.
 *
 * usage: evil-virtio blk SERIAL RESERVED_ADDR RESERVED_SIZE SECTOR
 *        evil-virtio net MAC RESERVED_ADDR RESERVED_SIZE UDP_PORT
 *
 * SECTOR: the only sector of the disk the program writes (reinit).
 * UDP_PORT: forwarded by the host to this NIC (hostfwd); the program sends
 * datagrams to 10.0.2.2:UDP_PORT through the guest's own network stack.
 *
 * Output: "EVIL ..." lines on stdout; the scenario asserts on the
 * "EVIL-<KIND>-<PHASE> ..." result lines. Exit status 0 when every phase
 * ran (whatever its result), 1 when the set-up failed.
 *
 * Only the register layout and constants of the virtio 1.2 spec and the
 * kernel's UAPI headers are used; nothing here trusts the device.
 */
#define _GNU_SOURCE
#include <arpa/inet.h>
#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <inttypes.h>
#include <limits.h>
#include <linux/virtio_blk.h>
#include <linux/virtio_config.h>
#include <linux/virtio_ids.h>
#include <linux/virtio_mmio.h>
#include <linux/virtio_net.h>
#include <linux/virtio_ring.h>
#include <netinet/in.h>
#include <stdarg.h>
#include <stdbool.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>
#include <sys/socket.h>
#include <time.h>
#include <unistd.h>

#define PAGE 4096ULL
#define MMIO_MAGIC 0x74726976 /* "virt" */
#define RING_MAX 256	      /* the largest ring this program lays out */
#define SECTOR_SIZE 512
#define NET_HDR_LEN sizeof(struct virtio_net_hdr_v1)
#define NET_BUF 2048
#define BIG_SEG (1u << 20)     /* the defect1 request kept in flight: 40 segments of 1 MiB */
#define BIG_SEGS 40
#define BIG_READ ((uint64_t)BIG_SEG * BIG_SEGS)
#define BIG_TABLE 0x300000ULL  /* its indirect table (offset in the reserved RAM) */

/* Where things go in the reserved RAM (offsets from its start). */
#define AREA_RINGS 0x0		/* four ring sets of RING_MAX, 16 KiB each */
#define AREA_RING_SET 0x4000ULL
#define AREA_SLOTS 0x100000ULL	/* request buffers: 8 KiB each */
#define AREA_SLOT 0x2000ULL
#define AREA_NSLOTS 64
#define AREA_BIG 0x1000000ULL	/* 16 MiB in: the big read's buffer */
#define TOP_RINGS 0x2000ULL	/* defect1's rings: the last 8 KiB of RAM */

struct ring {
	unsigned int q;
	uint16_t size;
	uint64_t desc, avail, used; /* guest-physical */
	uint16_t next_avail;	    /* the avail.idx this driver publishes next */
	uint16_t used_seen;	    /* used.idx consumed so far */
};

struct dev {
	const char *kind; /* "blk" or "net": the prefix of result lines */
	char platform[64];
	uint64_t window;
	volatile uint32_t *regs;
	uint32_t device_id;
	uint32_t queue_sel; /* the last QueueSel written: saves an exit in a race */
};

static uint8_t *res_map;	/* the reserved RAM, mapped */
static uint64_t res_gpa, res_size, ram_end;
static uint64_t rng_state = 0x9e3779b97f4a7c15ULL;

/* --- small things ------------------------------------------------------------------ */

static void say(const char *fmt, ...)
{
	va_list ap;

	va_start(ap, fmt);
	vprintf(fmt, ap);
	va_end(ap);
	putchar('\n');
	fflush(stdout);
}

static void die(const char *fmt, ...)
{
	va_list ap;

	fputs("EVIL-SETUP-FAILED ", stdout);
	va_start(ap, fmt);
	vprintf(fmt, ap);
	va_end(ap);
	putchar('\n');
	exit(1);
}

static uint64_t rnd(void)
{
	rng_state ^= rng_state << 13;
	rng_state ^= rng_state >> 7;
	rng_state ^= rng_state << 17;
	return rng_state;
}

static uint64_t now_ms(void)
{
	struct timespec ts;

	clock_gettime(CLOCK_MONOTONIC, &ts);
	return (uint64_t)ts.tv_sec * 1000 + (uint64_t)ts.tv_nsec / 1000000;
}

static void pause_us(long us)
{
	struct timespec ts = { us / 1000000, (us % 1000000) * 1000 };

	nanosleep(&ts, NULL);
}

static void barrier(void)
{
	__atomic_thread_fence(__ATOMIC_SEQ_CST);
}

/* A guest-physical address inside the reserved RAM, as a pointer. */
static void *at(uint64_t gpa)
{
	if (gpa < res_gpa || gpa >= res_gpa + res_size)
		die("internal: address %#" PRIx64 " is not in the reserved RAM", gpa);
	return res_map + (gpa - res_gpa);
}

static volatile uint16_t *u16_at(uint64_t gpa)
{
	return at(gpa);
}

static uint64_t slot(unsigned int i)
{
	return res_gpa + AREA_SLOTS + (i % AREA_NSLOTS) * AREA_SLOT;
}

static char *read_line(const char *path, char *buf, size_t len)
{
	FILE *f = fopen(path, "r");

	if (!f)
		return NULL;
	if (!fgets(buf, (int)len, f)) {
		fclose(f);
		return NULL;
	}
	fclose(f);
	buf[strcspn(buf, "\n")] = 0;
	return buf;
}

static void write_file(const char *path, const char *text)
{
	FILE *f = fopen(path, "w");

	if (!f || fputs(text, f) < 0 || fclose(f) != 0)
		die("cannot write '%s' to %s: %s", text, path, strerror(errno));
}

/* --- finding and taking the device --------------------------------------------------- */

/*
 * The platform device behind a sysfs device link (.../LNRO0005:01/virtio1):
 * the virtio device's parent.
 */
static void platform_of(const char *link, char *out, size_t len)
{
	char path[PATH_MAX], *slash;

	if (!realpath(link, path))
		die("no %s: %s", link, strerror(errno));
	slash = strrchr(path, '/');
	if (!slash)
		die("odd device path %s", path);
	*slash = 0;
	slash = strrchr(path, '/');
	slash = slash ? slash + 1 : path;
	if (strlen(slash) >= len)
		die("odd platform device name %s", slash);
	memcpy(out, slash, strlen(slash) + 1);
}

/*
 * The platform device of the entry of dir (/sys/block, /sys/class/net) whose
 * attribute attr (serial, address) reads want.
 */
static void find_device(const char *dir, const char *attr, const char *want, char *platform,
			size_t len)
{
	char path[PATH_MAX], buf[64];
	struct dirent *e;
	DIR *dd = opendir(dir);

	if (!dd)
		die("cannot read %s: %s", dir, strerror(errno));
	while ((e = readdir(dd))) {
		snprintf(path, sizeof(path), "%s/%s/%s", dir, e->d_name, attr);
		if (e->d_name[0] == '.' || !read_line(path, buf, sizeof(buf)) ||
		    strcasecmp(buf, want) != 0)
			continue;
		snprintf(path, sizeof(path), "%s/%s/device", dir, e->d_name);
		platform_of(path, platform, len);
		say("EVIL: %s %s is %s on %s", attr, want, e->d_name, platform);
		closedir(dd);
		return;
	}
	die("nothing in %s has %s %s", dir, attr, want);
}

/* The device's window: its line in /proc/iomem ("d0001000-d00011ff : LNRO0005:01"). */
static uint64_t window_of(const char *platform)
{
	FILE *f = fopen("/proc/iomem", "r");
	char line[256];
	uint64_t start = 0;

	if (!f)
		die("cannot read /proc/iomem: %s", strerror(errno));
	while (fgets(line, sizeof(line), f)) {
		char *name = strstr(line, " : ");

		if (!name)
			continue;
		name += 3;
		name[strcspn(name, "\n")] = 0;
		if (strcmp(name, platform) == 0) {
			start = strtoull(line + strspn(line, " "), NULL, 16);
			break;
		}
	}
	fclose(f);
	if (!start)
		die("%s has no window in /proc/iomem", platform);
	return start;
}

static void *map_phys(uint64_t gpa, uint64_t len)
{
	int fd = open("/dev/mem", O_RDWR | O_SYNC);
	void *p;

	if (fd < 0)
		die("cannot open /dev/mem: %s", strerror(errno));
	p = mmap(NULL, len, PROT_READ | PROT_WRITE, MAP_SHARED, fd, (off_t)gpa);
	close(fd);
	if (p == MAP_FAILED)
		die("cannot map %#" PRIx64 "+%#" PRIx64 " from /dev/mem: %s", gpa, len,
		    strerror(errno));
	return p;
}

static void take_device(struct dev *d, uint32_t want_id)
{
	char path[PATH_MAX];

	snprintf(path, sizeof(path), "/sys/bus/platform/drivers/virtio-mmio/%s", d->platform);
	if (access(path, F_OK) == 0)
		write_file("/sys/bus/platform/drivers/virtio-mmio/unbind", d->platform);
	d->window = window_of(d->platform);
	d->regs = map_phys(d->window, PAGE);
	if (d->regs[VIRTIO_MMIO_MAGIC_VALUE / 4] != MMIO_MAGIC)
		die("%s at %#" PRIx64 ": no virtio-mmio magic", d->platform, d->window);
	d->device_id = d->regs[VIRTIO_MMIO_DEVICE_ID / 4];
	if (d->device_id != want_id)
		die("%s: device id %u, not %u", d->platform, d->device_id, want_id);
	say("EVIL %s: %s unbound, window %#" PRIx64 ", version %u", d->kind, d->platform,
	    d->window, d->regs[VIRTIO_MMIO_VERSION / 4]);
}

/* --- registers and rings ------------------------------------------------------------ */

static uint32_t rd(struct dev *d, unsigned int off)
{
	return d->regs[off / 4];
}

static void wr(struct dev *d, unsigned int off, uint32_t v)
{
	barrier();
	d->regs[off / 4] = v;
	barrier();
	if (off == VIRTIO_MMIO_QUEUE_SEL)
		d->queue_sel = v;
}

static uint32_t status(struct dev *d)
{
	return rd(d, VIRTIO_MMIO_STATUS);
}

static void set_status(struct dev *d, uint32_t s)
{
	wr(d, VIRTIO_MMIO_STATUS, s);
}

static void reset(struct dev *d)
{
	uint64_t t = now_ms();

	set_status(d, 0);
	while (status(d) != 0 && now_ms() - t < 2000)
		pause_us(100);
	if (status(d) != 0)
		say("EVIL %s: status still %#x after a reset", d->kind, status(d));
}

/* Reset, ACKNOWLEDGE, DRIVER, VERSION_1 and the bits of low, FEATURES_OK. True if accepted. */
static bool negotiate_with(struct dev *d, uint32_t low)
{
	reset(d);
	set_status(d, VIRTIO_CONFIG_S_ACKNOWLEDGE);
	set_status(d, VIRTIO_CONFIG_S_ACKNOWLEDGE | VIRTIO_CONFIG_S_DRIVER);
	wr(d, VIRTIO_MMIO_DEVICE_FEATURES_SEL, 1);
	if (!(rd(d, VIRTIO_MMIO_DEVICE_FEATURES) & (1u << (VIRTIO_F_VERSION_1 - 32))))
		die("%s: the device does not offer VERSION_1", d->kind);
	wr(d, VIRTIO_MMIO_DRIVER_FEATURES_SEL, 1);
	wr(d, VIRTIO_MMIO_DRIVER_FEATURES, 1u << (VIRTIO_F_VERSION_1 - 32));
	wr(d, VIRTIO_MMIO_DEVICE_FEATURES_SEL, 0);
	if ((rd(d, VIRTIO_MMIO_DEVICE_FEATURES) & low) != low)
		die("%s: the device does not offer features %#x", d->kind, low);
	wr(d, VIRTIO_MMIO_DRIVER_FEATURES_SEL, 0);
	wr(d, VIRTIO_MMIO_DRIVER_FEATURES, low);
	set_status(d, VIRTIO_CONFIG_S_ACKNOWLEDGE | VIRTIO_CONFIG_S_DRIVER |
			      VIRTIO_CONFIG_S_FEATURES_OK);
	return status(d) & VIRTIO_CONFIG_S_FEATURES_OK;
}

static bool negotiate(struct dev *d)
{
	return negotiate_with(d, 0);
}

static void driver_ok(struct dev *d)
{
	set_status(d, VIRTIO_CONFIG_S_ACKNOWLEDGE | VIRTIO_CONFIG_S_DRIVER |
			      VIRTIO_CONFIG_S_FEATURES_OK | VIRTIO_CONFIG_S_DRIVER_OK);
}

static bool running(struct dev *d)
{
	uint32_t s = status(d);

	return (s & VIRTIO_CONFIG_S_DRIVER_OK) && !(s & VIRTIO_CONFIG_S_NEEDS_RESET);
}

static void set_addr(struct dev *d, unsigned int low, uint64_t gpa)
{
	wr(d, low, (uint32_t)gpa);
	wr(d, low + 4, (uint32_t)(gpa >> 32));
}

/* A ring set of the reserved area (0..3), laid out for RING_MAX entries. */
static void ring_in_set(struct ring *r, unsigned int q, uint16_t size, unsigned int set)
{
	uint64_t base = res_gpa + AREA_RINGS + set * AREA_RING_SET;

	*r = (struct ring){ .q = q, .size = size, .desc = base, .avail = base + 0x1000,
			    .used = base + 0x2000 };
}

/*
 * defect1's layout: room for RING_MAX descriptors and avail entries in the
 * last 8 KiB, and a used ring of `size` ending where RAM ends (less the 2
 * bytes that its 4-byte alignment costs: 4 + 8 * 2 + 2 = 22 bytes).
 */
static void ring_at_top(struct ring *r, unsigned int q, uint16_t size)
{
	uint64_t used_len = 4 + sizeof(struct vring_used_elem) * size + 2;

	*r = (struct ring){ .q = q, .size = size, .desc = ram_end - TOP_RINGS,
			    .avail = ram_end - TOP_RINGS / 2,
			    .used = (ram_end - used_len) & ~3ULL };
}

static void ring_clear(struct ring *r)
{
	memset(at(r->desc), 0, sizeof(struct vring_desc) * RING_MAX);
	memset(at(r->avail), 0, 4 + 2 * RING_MAX + 2);
	memset(at(r->used), 0, ram_end - r->used < 0x2000 ? ram_end - r->used : 4 + 8 * RING_MAX + 2);
	r->next_avail = r->used_seen = 0;
}

static bool queue_setup(struct dev *d, struct ring *r)
{
	ring_clear(r);
	wr(d, VIRTIO_MMIO_QUEUE_SEL, r->q);
	if (rd(d, VIRTIO_MMIO_QUEUE_NUM_MAX) < r->size || rd(d, VIRTIO_MMIO_QUEUE_READY))
		return false;
	wr(d, VIRTIO_MMIO_QUEUE_NUM, r->size);
	set_addr(d, VIRTIO_MMIO_QUEUE_DESC_LOW, r->desc);
	set_addr(d, VIRTIO_MMIO_QUEUE_AVAIL_LOW, r->avail);
	set_addr(d, VIRTIO_MMIO_QUEUE_USED_LOW, r->used);
	wr(d, VIRTIO_MMIO_QUEUE_READY, 1);
	return rd(d, VIRTIO_MMIO_QUEUE_READY) == 1;
}

static struct vring_desc *desc(struct ring *r, unsigned int i)
{
	return (struct vring_desc *)at(r->desc) + i;
}

static void set_desc(struct ring *r, unsigned int i, uint64_t addr, uint32_t len, uint16_t flags,
		     uint16_t next)
{
	struct vring_desc *dd = desc(r, i);

	dd->addr = addr;
	dd->len = len;
	dd->flags = flags;
	dd->next = next;
}

static volatile uint16_t *avail_idx(struct ring *r)
{
	return u16_at(r->avail + 2);
}

/* The avail entry for position pos, with the ring size the driver chooses to believe. */
static volatile uint16_t *avail_entry(struct ring *r, uint16_t pos, uint16_t size)
{
	return u16_at(r->avail + 4 + 2 * (pos & (size - 1)));
}

static uint16_t used_idx(struct ring *r)
{
	return *u16_at(r->used + 2);
}

static struct vring_used_elem used_elem(struct ring *r, uint16_t pos)
{
	return ((struct vring_used_elem *)at(r->used + 4))[pos & (r->size - 1)];
}

/* Puts head in the avail ring and publishes it; notify says whether to kick. */
static void post(struct dev *d, struct ring *r, uint16_t head, bool notify)
{
	*avail_entry(r, r->next_avail, r->size) = head;
	barrier();
	*avail_idx(r) = ++r->next_avail;
	barrier();
	if (notify)
		wr(d, VIRTIO_MMIO_QUEUE_NOTIFY, r->q);
}

/* Waits until used.idx reaches want; false after ms milliseconds. */
static bool wait_used(struct ring *r, uint16_t want, unsigned int ms)
{
	uint64_t t = now_ms();

	while ((uint16_t)(used_idx(r) - want) > 0x8000) {
		if (now_ms() - t > ms)
			return false;
		pause_us(200);
	}
	return true;
}

static bool wait_needs_reset(struct dev *d, unsigned int ms)
{
	uint64_t t = now_ms();

	while (!(status(d) & VIRTIO_CONFIG_S_NEEDS_RESET)) {
		if (now_ms() - t > ms)
			return false;
		pause_us(500);
	}
	return true;
}

/* --- blk requests ------------------------------------------------------------------- */

/*
 * A request in slot s, with its chain at descriptors i, i + 1 (and i + 2):
 * T_IN reads len bytes followed by the status byte into one writable buffer
 * (two descriptors fit a ring of size 2); T_OUT sends the header, then the
 * data from its own page-aligned buffer (a disk opened with O_DIRECT wants
 * aligned memory), then takes the status; other types read the header and
 * write `len` bytes plus the status. Returns the guest address of the
 * status byte.
 */
static uint64_t blk_chain(struct ring *r, unsigned int i, unsigned int s, uint32_t type,
			  uint64_t sector, uint32_t len)
{
	uint64_t base = slot(s);
	struct virtio_blk_outhdr *h = at(base);
	uint64_t status_gpa;

	h->type = type;
	h->ioprio = 0;
	h->sector = sector;
	if (type == VIRTIO_BLK_T_OUT) {
		status_gpa = base + AREA_SLOT - 1;
		set_desc(r, i, base, sizeof(*h), VRING_DESC_F_NEXT, i + 1);
		set_desc(r, i + 1, base + 0x1000, len, VRING_DESC_F_NEXT, i + 2);
		set_desc(r, i + 2, status_gpa, 1, VRING_DESC_F_WRITE, 0);
	} else {
		status_gpa = base + 0x1000 + len;
		set_desc(r, i, base, sizeof(*h), VRING_DESC_F_NEXT, i + 1);
		set_desc(r, i + 1, base + 0x1000, len + 1, VRING_DESC_F_WRITE, 0);
	}
	*(volatile uint8_t *)at(status_gpa) = 0xee; /* not a status the device writes */
	return status_gpa;
}

static uint8_t *slot_data(unsigned int s)
{
	return at(slot(s) + 0x1000);
}

/* --- net frames --------------------------------------------------------------------- */

static const uint8_t evil_mac[6] = { 0x52, 0x54, 0x00, 0xee, 0x66, 0x01 };
static const uint8_t guest_ip[4] = { 10, 0, 2, 15 };
static const uint8_t slirp_ip[4] = { 10, 0, 2, 2 };

/* An ARP request for 10.0.2.2 from 10.0.2.15, after a zeroed virtio-net header. */
static uint32_t arp_request(uint8_t *buf)
{
	uint8_t *f = buf + NET_HDR_LEN;

	memset(buf, 0, NET_HDR_LEN + 60);
	memset(f, 0xff, 6);
	memcpy(f + 6, evil_mac, 6);
	f[12] = 0x08, f[13] = 0x06;		 /* ARP */
	f[14] = 0x00, f[15] = 0x01;		 /* Ethernet */
	f[16] = 0x08, f[17] = 0x00;		 /* IPv4 */
	f[18] = 6, f[19] = 4, f[20] = 0, f[21] = 1; /* request */
	memcpy(f + 22, evil_mac, 6);
	memcpy(f + 28, guest_ip, 4);
	memcpy(f + 38, slirp_ip, 4);
	return NET_HDR_LEN + 60; /* padded to the Ethernet minimum */
}

static bool is_arp_reply(const uint8_t *buf, uint32_t len)
{
	const uint8_t *f = buf + NET_HDR_LEN;

	return len >= NET_HDR_LEN + 42 && f[12] == 0x08 && f[13] == 0x06 && f[21] == 2 &&
	       memcmp(f + 28, slirp_ip, 4) == 0;
}

/* Whether a received frame carries the UDP payload text. */
static bool has_payload(const uint8_t *buf, uint32_t len, const char *text)
{
	size_t n = strlen(text);

	for (uint32_t i = NET_HDR_LEN; i + n <= len; i++) {
		if (memcmp(buf + i, text, n) == 0)
			return true;
	}
	return false;
}

/* Datagrams to 10.0.2.2:port through the guest kernel's own stack (the honest NIC). */
static int send_udp(uint16_t port, const char *text, int count)
{
	struct sockaddr_in to = { .sin_family = AF_INET, .sin_port = htons(port) };
	int fd = socket(AF_INET, SOCK_DGRAM, 0), sent = 0;

	if (fd < 0)
		return 0;
	inet_pton(AF_INET, "10.0.2.2", &to.sin_addr);
	for (int i = 0; i < count; i++) {
		if (sendto(fd, text, strlen(text), 0, (struct sockaddr *)&to, sizeof(to)) > 0)
			sent++;
		pause_us(2000);
	}
	close(fd);
	return sent;
}

/* RX descriptor i: a 2 KiB buffer of its own. */
static void rx_desc(struct ring *r, unsigned int i)
{
	set_desc(r, i, slot(i % 32), NET_BUF, VRING_DESC_F_WRITE, 0);
}

/* TX descriptor i: one buffer, header and frame, in slot 32 + i. */
static void tx_desc(struct ring *r, unsigned int i, uint32_t len)
{
	set_desc(r, i, slot(32 + i % 32), len, 0, 0);
}

/* --- defect 1 ----------------------------------------------------------------------- */

/* The big read's header, indirect table and status, 2 and 3 MiB into the reserved RAM. */
static void big_read_table(void)
{
	struct vring_desc *t = at(res_gpa + BIG_TABLE);
	uint64_t hdr = res_gpa + 0x200000;

	*(struct virtio_blk_outhdr *)at(hdr) =
		(struct virtio_blk_outhdr){ .type = VIRTIO_BLK_T_IN, .sector = 0 };
	t[0] = (struct vring_desc){ hdr, sizeof(struct virtio_blk_outhdr), VRING_DESC_F_NEXT, 1 };
	for (unsigned int i = 1; i <= BIG_SEGS; i++)
		t[i] = (struct vring_desc){ res_gpa + AREA_BIG + (i - 1) * BIG_SEG, BIG_SEG,
					    VRING_DESC_F_WRITE | VRING_DESC_F_NEXT, (uint16_t)(i + 1) };
	t[BIG_SEGS + 1] = (struct vring_desc){ hdr + 512, 1, VRING_DESC_F_WRITE, 0 };
}

/* The ring grows under the device (see the top of the file), in as few exits as can be. */
static void shrink_grow(struct dev *d, struct ring *r)
{
	set_status(d, VIRTIO_CONFIG_S_ACKNOWLEDGE | VIRTIO_CONFIG_S_DRIVER |
			      VIRTIO_CONFIG_S_FEATURES_OK); /* 0xB: DRIVER_OK cleared, no reset */
	if (d->queue_sel != r->q)
		wr(d, VIRTIO_MMIO_QUEUE_SEL, r->q);
	wr(d, VIRTIO_MMIO_QUEUE_READY, 0);
	wr(d, VIRTIO_MMIO_QUEUE_NUM, RING_MAX);
	wr(d, VIRTIO_MMIO_QUEUE_READY, 1);
}

/* How many used entries the device wrote past the end of guest RAM, by used.idx. */
static int past_end(struct ring *r, uint16_t used)
{
	uint64_t first = r->used + 4;
	int n = 0;

	for (uint16_t i = 2; i != used && n < RING_MAX; i++, n++) {
		if (first + (uint64_t)(i % RING_MAX) * 8 + 8 <= ram_end)
			break;
	}
	return n;
}

/*
 * blk: two reads complete; a 40 MiB read (slow: the disk is opened with
 * O_DIRECT; 40 segments in an indirect table) is popped; the ring grows to
 * 256 and 250 GET_ID requests follow in the avail ring. Notifies are
 * ignored once DRIVER_OK is gone, so what reaches the grown ring is the big
 * read's completion: it pushes its own entry and pops the rest. The race
 * with that completion is tried up to 6 times; an attempt counts when the
 * read was still in flight after the ring grew.
 */
static void blk_defect1(struct dev *d)
{
	const uint16_t flood = RING_MAX - 6;
	struct ring r;
	int counted = 0, worst = 0;
	uint16_t worst_used = 0;

	for (int attempt = 1; attempt <= 6 && counted < 2; attempt++) {
		uint16_t after, marker = 0x8000;
		uint64_t t;
		bool popped;

		ring_at_top(&r, 0, 2);
		if (!negotiate_with(d, 1u << VIRTIO_RING_F_INDIRECT_DESC) || !queue_setup(d, &r))
			die("blk defect1: the device refused the set-up (status %#x)", status(d));
		driver_ok(d);
		blk_chain(&r, 0, 0, VIRTIO_BLK_T_IN, 0, SECTOR_SIZE);
		post(d, &r, 0, true);
		if (!wait_used(&r, 1, 5000))
			die("blk defect1: the first read never completed (status %#x)", status(d));
		post(d, &r, 0, true);
		if (!wait_used(&r, 2, 5000))
			die("blk defect1: the second read never completed (status %#x)", status(d));

		/*
		 * The big read: descriptor 0 (a ring of 2 has only 0 and 1) points to an
		 * indirect table of the header, 1 MiB segments (the size_max that the
		 * device announces) and the status. used.flags tells when the device is
		 * popping it, holding the device's lock: the status write that follows
		 * then waits for the read to be submitted, and no longer.
		 */
		big_read_table();
		set_desc(&r, 0, res_gpa + BIG_TABLE, sizeof(struct vring_desc) * (BIG_SEGS + 2),
			 VRING_DESC_F_INDIRECT, 0);
		blk_chain(&r, 4, 1, VIRTIO_BLK_T_GET_ID, 0, VIRTIO_BLK_ID_BYTES);
		*u16_at(r.used) = marker;
		post(d, &r, 0, true);
		t = now_ms();
		while (*u16_at(r.used) == marker && now_ms() - t < 200)
			;
		popped = *u16_at(r.used) != marker;
		shrink_grow(d, &r);
		/* The flood: avail entries 3.. as a ring of 256 sees them, then the index. */
		for (uint16_t i = 0; i < flood; i++)
			*avail_entry(&r, (uint16_t)(3 + i), RING_MAX) = 4;
		barrier();
		*avail_idx(&r) = (uint16_t)(3 + flood);
		after = used_idx(&r);
		if (after != 2) {
			say("EVIL blk defect1 attempt %d: the big read completed before the ring grew "
			    "(used.idx %u, status %#x): not counted", attempt, after, status(d));
			reset(d);
			continue;
		}
		counted++;
		if (!popped)
			say("EVIL blk defect1 attempt %d: the device left used.flags alone", attempt);
		/* The big read completes, and whatever the device does with the rest. */
		t = now_ms();
		while (used_idx(&r) == 2 && now_ms() - t < 5000)
			pause_us(500);
		pause_us(500000);
		after = used_idx(&r);
		say("EVIL blk defect1 attempt %d: ring grown with the big read in flight; "
		    "used.idx %u, status %#x, %d used entries past the end of RAM", attempt, after,
		    status(d), past_end(&r, after));
		if (past_end(&r, after) > worst || attempt == 1) {
			worst = past_end(&r, after);
			worst_used = after;
		}
		reset(d);
	}
	if (!counted)
		say("EVIL-BLK-DEFECT1 untested: the big read never stayed in flight");
	else if (worst)
		say("EVIL-BLK-DEFECT1 overflow: used.idx reached %u, %d entries past the end of RAM",
		    worst_used, worst);
	else
		say("EVIL-BLK-DEFECT1 contained (%d attempts counted)", counted);
}

/*
 * net: RX ring of 2 at the top; two ARP replies arrive; a third buffer is
 * posted before the second reply so the device keeps watching the backend;
 * the ring grows to 256 with 200 buffers in it; then datagrams come in
 * from the host (sent through the guest's honest NIC and forwarded back).
 */
static void net_defect1(struct dev *d, uint16_t port)
{
	struct ring rx, tx;
	uint16_t after;
	uint32_t len;
	int sent;

	ring_at_top(&rx, 0, 2);
	ring_in_set(&tx, 1, 16, 1);
	if (!negotiate(d) || !queue_setup(d, &rx) || !queue_setup(d, &tx))
		die("net defect1: the device refused the set-up (status %#x)", status(d));
	driver_ok(d);
	rx_desc(&rx, 0);
	rx_desc(&rx, 1);
	post(d, &rx, 0, false);
	post(d, &rx, 1, true);
	len = arp_request(at(slot(32)));
	tx_desc(&tx, 0, len);
	post(d, &tx, 0, true);
	if (!wait_used(&rx, 1, 5000))
		die("net defect1: no ARP reply (status %#x)", status(d));
	post(d, &rx, 0, true); /* the first reply's buffer again: 2 outstanding */
	post(d, &tx, 0, true);
	if (!wait_used(&rx, 2, 5000))
		die("net defect1: no second ARP reply (status %#x)", status(d));
	say("EVIL net defect1: two frames arrived in a ring of 2 at the top of RAM");

	for (uint16_t i = 0; i < 200; i++) {
		rx_desc(&rx, 3 + i);
		*avail_entry(&rx, (uint16_t)(2 + i), RING_MAX) = (uint16_t)(3 + i);
	}
	shrink_grow(d, &rx);
	barrier();
	*avail_idx(&rx) = 2 + 200;
	wr(d, VIRTIO_MMIO_QUEUE_NOTIFY, rx.q);
	sent = send_udp(port, "vireo-evil-defect1", 64);
	pause_us(2000000);
	after = used_idx(&rx);
	say("EVIL net defect1: ring grown, %d datagrams sent; used.idx %u, status %#x, "
	    "%d used entries past the end of RAM", sent, after, status(d), past_end(&rx, after));
	if (!sent)
		say("EVIL-NET-DEFECT1 untested: no datagram could be sent");
	else if (past_end(&rx, after))
		say("EVIL-NET-DEFECT1 overflow: used.idx reached %u, %d entries past the end of RAM",
		    after, past_end(&rx, after));
	else
		say("EVIL-NET-DEFECT1 contained");
	reset(d);
}

/* --- garbage ------------------------------------------------------------------------ */

/* An address the device must never touch: outside RAM, or across its end. */
static uint64_t bad_addr(unsigned int i)
{
	static const uint64_t fixed[] = {
		0, /* replaced by ram_end below */
		0xd0000000ULL,		 /* the virtio-mmio windows */
		0xfec00000ULL,		 /* the IOAPIC */
		0xfffffffffffff000ULL,	 /* wraps */
		0x100000000ULL,		 /* above 4 GiB: no RAM with this --memory */
		0x8000000000000000ULL,
	};
	uint64_t a = fixed[i % (sizeof(fixed) / sizeof(fixed[0]))];

	return a ? a : ram_end - 8; /* 8 bytes of RAM, the rest beyond */
}

/* A random address for queue registers: outside RAM or inside the reserved RAM only. */
static uint64_t wild_addr(void)
{
	switch (rnd() % 4) {
	case 0: return bad_addr((unsigned int)rnd());
	case 1: return res_gpa + (rnd() % res_size);
	case 2: return ram_end + (rnd() % 0x1000);
	default: return rnd() | 0x8000000000000000ULL;
	}
}

/* Register chaos in the device's current state. */
static void poke_registers(struct dev *d)
{
	static const uint32_t sels[] = { 0, 1, 2, 7, 8, 0xffff, 0xffffffffu };
	static const uint32_t nums[] = { 0, 1, 3, 256, 1024, 2048, 65535, 0xffffffffu };

	for (unsigned int s = 0; s < sizeof(sels) / sizeof(sels[0]); s++) {
		wr(d, VIRTIO_MMIO_QUEUE_SEL, sels[s]);
		wr(d, VIRTIO_MMIO_QUEUE_NUM, nums[rnd() % (sizeof(nums) / sizeof(nums[0]))]);
		set_addr(d, VIRTIO_MMIO_QUEUE_DESC_LOW, wild_addr());
		set_addr(d, VIRTIO_MMIO_QUEUE_AVAIL_LOW, wild_addr());
		set_addr(d, VIRTIO_MMIO_QUEUE_USED_LOW, wild_addr());
		wr(d, VIRTIO_MMIO_QUEUE_READY, (uint32_t)rnd());
		wr(d, VIRTIO_MMIO_QUEUE_NOTIFY, sels[s]);
	}
	for (unsigned int off = 0; off < 0x100; off += 4)
		(void)rd(d, off);
	wr(d, VIRTIO_MMIO_QUEUE_NOTIFY, (uint32_t)rnd());
	wr(d, VIRTIO_MMIO_INTERRUPT_ACK, (uint32_t)rnd());
	wr(d, VIRTIO_MMIO_DEVICE_FEATURES_SEL, (uint32_t)rnd());
	(void)rd(d, VIRTIO_MMIO_DEVICE_FEATURES);
	wr(d, VIRTIO_MMIO_DRIVER_FEATURES_SEL, (uint32_t)(rnd() % 4));
	wr(d, VIRTIO_MMIO_DRIVER_FEATURES, (uint32_t)rnd());
	wr(d, VIRTIO_MMIO_QUEUE_PFN, (uint32_t)rnd()); /* legacy registers: not ours */
	wr(d, VIRTIO_MMIO_GUEST_PAGE_SIZE, (uint32_t)rnd());
	/* Narrow and unaligned register accesses, and config space past its end. */
	((volatile uint8_t *)d->regs)[VIRTIO_MMIO_STATUS] = 0xff;
	((volatile uint16_t *)d->regs)[VIRTIO_MMIO_QUEUE_NUM / 2] = 0xffff;
	((volatile uint8_t *)d->regs)[VIRTIO_MMIO_QUEUE_READY + 1] = 1;
	for (unsigned int off = VIRTIO_MMIO_CONFIG; off < 0x200; off += 4) {
		(void)rd(d, off);
		wr(d, off, (uint32_t)rnd());
	}
}

/* The device is running with ring r; a chain at head 0 is posted and must come back. */
static const char *ring_case(struct dev *d, struct ring *r, const char *what)
{
	uint16_t want = (uint16_t)(r->next_avail + 1);

	post(d, r, 0, true);
	if (!wait_used(r, want, 3000))
		return running(d) ? "not returned" : "needs reset";
	say("EVIL %s garbage: %s: returned, %u bytes, status %#x", d->kind, what,
	    used_elem(r, (uint16_t)(want - 1)).len, status(d));
	return NULL;
}

/* A clean start with ring r (and other, the second queue, if any). */
static void start_clean(struct dev *d, struct ring *r, struct ring *other)
{
	if (!negotiate(d) || !queue_setup(d, r) || (other && !queue_setup(d, other)))
		die("%s garbage: the device refused a clean set-up (status %#x)", d->kind,
		    status(d));
	driver_ok(d);
}

/*
 * The garbage phase on ring r of size ring_size; other, if not NULL, is a
 * second queue set up beside it each time (net's RX queue, empty).
 */
static void garbage(struct dev *d, struct ring *r, struct ring *other, uint32_t ring_size)
{
	static const uint32_t statuses[] = { 0xff, VIRTIO_CONFIG_S_FAILED,
					     VIRTIO_CONFIG_S_NEEDS_RESET, VIRTIO_CONFIG_S_DRIVER_OK,
					     VIRTIO_CONFIG_S_FEATURES_OK, 0xffffffffu, 0x8b, 0x4f };
	unsigned int needs_reset = 0, returned = 0, cases = 0;
	const char *why;

	/* Random status values and queue registers in every state, from reset to running. */
	for (int round = 0; round < 4; round++) {
		reset(d);
		poke_registers(d);
		set_status(d, VIRTIO_CONFIG_S_ACKNOWLEDGE);
		poke_registers(d);
		set_status(d, VIRTIO_CONFIG_S_ACKNOWLEDGE | VIRTIO_CONFIG_S_DRIVER);
		poke_registers(d);
		if (negotiate(d)) {
			poke_registers(d);
			driver_ok(d);
			poke_registers(d);
		}
		for (unsigned int i = 0; i < sizeof(statuses) / sizeof(statuses[0]); i++) {
			set_status(d, i % 2 ? (uint32_t)rnd() : statuses[i]);
			poke_registers(d);
		}
		needs_reset += !!(status(d) & VIRTIO_CONFIG_S_NEEDS_RESET);
	}
	say("EVIL %s garbage: register chaos done (NEEDS_RESET seen %u times, status %#x)",
	    d->kind, needs_reset, status(d));

	/* Broken chains on a running queue: each must come back, the device going on. */
	for (unsigned int c = 0; c < 9; c++) {
		const char *what;

		start_clean(d, r, other);
		if (d->device_id == VIRTIO_ID_BLOCK)
			blk_chain(r, 0, 2, VIRTIO_BLK_T_IN, 0, SECTOR_SIZE);
		else
			tx_desc(r, 0, arp_request(at(slot(32))));
		switch (c) {
		case 0: case 1: case 2: case 3: case 4: case 5:
			what = "a buffer outside RAM";
			desc(r, d->device_id == VIRTIO_ID_BLOCK ? 1 : 0)->addr = bad_addr(c);
			break;
		case 6:
			what = "a descriptor loop";
			set_desc(r, 0, slot(2), 16, VRING_DESC_F_NEXT, 1);
			set_desc(r, 1, slot(2) + 16, 16, VRING_DESC_F_NEXT, 0);
			break;
		case 7:
			what = "a next index past the ring";
			desc(r, 0)->flags |= VRING_DESC_F_NEXT;
			desc(r, 0)->next = (uint16_t)(ring_size + 7);
			break;
		default:
			what = "an indirect table nobody negotiated";
			set_desc(r, 0, slot(3), 16 * 4, VRING_DESC_F_INDIRECT, 0);
			break;
		}
		why = ring_case(d, r, what);
		cases++;
		if (why)
			say("EVIL %s garbage: %s: %s (status %#x)", d->kind, what, why, status(d));
		else
			returned++;
	}

	/* A ring broken whole: avail.idx jumps past the size, a head past the ring. */
	for (int c = 0; c < 2; c++) {
		bool nr;

		start_clean(d, r, other);
		if (c == 0) {
			for (unsigned int i = 0; i < ring_size + 40; i++)
				*avail_entry(r, (uint16_t)i, (uint16_t)ring_size) = 0;
			*avail_idx(r) = (uint16_t)(ring_size + 40);
		} else {
			*avail_entry(r, 0, (uint16_t)ring_size) = 999;
			*avail_idx(r) = 1;
		}
		barrier();
		wr(d, VIRTIO_MMIO_QUEUE_NOTIFY, r->q);
		nr = wait_needs_reset(d, 3000);
		say("EVIL %s garbage: %s: %s (status %#x, used.idx %u)", d->kind,
		    c ? "a head past the ring" : "avail.idx ahead by more than the size",
		    nr ? "the device needs a reset" : "no NEEDS_RESET", status(d), used_idx(r));
	}
	reset(d);
	say("EVIL-%s-GARBAGE done: %u of %u broken chains returned", d->kind[0] == 'b' ? "BLK" : "NET",
	    returned, cases);
}

/* --- after the attacks: a clean driver ---------------------------------------------- */

static void blk_reinit(struct dev *d, uint64_t sector)
{
	struct ring r;
	uint8_t *data;
	uint64_t st;

	ring_in_set(&r, 0, 16, 2);
	if (!negotiate(d) || !queue_setup(d, &r)) {
		say("EVIL-BLK-REINIT fail: the set-up was refused (status %#x)", status(d));
		return;
	}
	driver_ok(d);
	st = blk_chain(&r, 0, 4, VIRTIO_BLK_T_OUT, sector, SECTOR_SIZE);
	data = slot_data(4);
	memset(data, 0, SECTOR_SIZE);
	for (unsigned int i = 0; i < SECTOR_SIZE; i += 32)
		snprintf((char *)data + i, 32, "vireo-evil-sector-%07u", i / 32);
	post(d, &r, 0, true);
	if (!wait_used(&r, 1, 5000) || *(uint8_t *)at(st) != VIRTIO_BLK_S_OK) {
		say("EVIL-BLK-REINIT fail: the write did not complete (status byte %#x, device %#x)",
		    *(uint8_t *)at(st), status(d));
		return;
	}
	st = blk_chain(&r, 3, 5, VIRTIO_BLK_T_IN, sector, SECTOR_SIZE);
	memset(slot_data(5), 0, SECTOR_SIZE);
	post(d, &r, 3, true);
	if (!wait_used(&r, 2, 5000) || *(uint8_t *)at(st) != VIRTIO_BLK_S_OK) {
		say("EVIL-BLK-REINIT fail: the read did not complete (status byte %#x, device %#x)",
		    *(uint8_t *)at(st), status(d));
		return;
	}
	if (memcmp(slot_data(5), data, SECTOR_SIZE) != 0) {
		say("EVIL-BLK-REINIT fail: sector %" PRIu64 " reads back different bytes", sector);
		return;
	}
	reset(d);
	say("EVIL-BLK-REINIT ok: sector %" PRIu64 " written and read back after a reset", sector);
}

/*
 * Scans the RX used entries from r->used_seen for a frame that pleases
 * match, giving each buffer back (frames held back while the device needed
 * a reset may come first).
 */
static bool net_receive(struct dev *d, struct ring *r, unsigned int ms,
			bool (*match)(const uint8_t *, uint32_t, const char *), const char *arg)
{
	uint64_t t = now_ms();

	while (now_ms() - t < ms) {
		while (r->used_seen != used_idx(r)) {
			struct vring_used_elem e = used_elem(r, r->used_seen++);
			bool found;

			if (e.id >= r->size)
				continue;
			found = e.len <= NET_BUF && match(at(desc(r, e.id)->addr), e.len, arg);
			post(d, r, (uint16_t)e.id, true); /* the buffer goes back for the next frame */
			if (found)
				return true;
		}
		pause_us(1000);
	}
	return false;
}

static bool match_arp(const uint8_t *buf, uint32_t len, const char *arg)
{
	(void)arg;
	return is_arp_reply(buf, len);
}

static void net_reinit(struct dev *d, uint16_t port)
{
	struct ring rx, tx;
	bool arp, udp;

	ring_in_set(&rx, 0, 32, 2);
	ring_in_set(&tx, 1, 16, 3);
	if (!negotiate(d) || !queue_setup(d, &rx) || !queue_setup(d, &tx)) {
		say("EVIL-NET-REINIT fail: the set-up was refused (status %#x)", status(d));
		return;
	}
	driver_ok(d);
	for (unsigned int i = 0; i < 32; i++) {
		rx_desc(&rx, i);
		post(d, &rx, (uint16_t)i, false);
	}
	wr(d, VIRTIO_MMIO_QUEUE_NOTIFY, rx.q);
	tx_desc(&tx, 0, arp_request(at(slot(32))));
	post(d, &tx, 0, true);
	arp = net_receive(d, &rx, 5000, match_arp, NULL);
	udp = send_udp(port, "vireo-evil-reinit", 3) && net_receive(d, &rx, 5000, has_payload,
								     "vireo-evil-reinit");
	if (arp && udp)
		say("EVIL-NET-REINIT ok: an ARP reply and a datagram from the host arrived after a "
		    "reset");
	else
		say("EVIL-NET-REINIT fail: ARP reply %s, datagram %s (status %#x, used.idx %u)",
		    arp ? "arrived" : "missing", udp ? "arrived" : "missing", status(d),
		    used_idx(&rx));
	reset(d);
}

/*
 * Takes every frame the backend still holds (those that came while the
 * device needed a reset), so that what follows starts from an empty link.
 */
static void net_drain(struct dev *d)
{
	struct ring rx, tx;
	uint16_t seen;
	int quiet = 0;

	ring_in_set(&rx, 0, 32, 2);
	ring_in_set(&tx, 1, 16, 3);
	if (!negotiate(d) || !queue_setup(d, &rx) || !queue_setup(d, &tx))
		die("net: the device refused a clean set-up (status %#x)", status(d));
	driver_ok(d);
	for (unsigned int i = 0; i < 32; i++) {
		rx_desc(&rx, i);
		post(d, &rx, (uint16_t)i, false);
	}
	wr(d, VIRTIO_MMIO_QUEUE_NOTIFY, rx.q);
	while (quiet < 10) {
		seen = rx.used_seen;
		while (rx.used_seen != used_idx(&rx))
			post(d, &rx, (uint16_t)(used_elem(&rx, rx.used_seen++).id % 32), true);
		quiet = rx.used_seen == seen ? quiet + 1 : 0;
		pause_us(100000);
	}
	say("EVIL net: %u frames held back were drained", rx.used_seen);
	reset(d);
}

/*
 * DRIVER_OK with the TX queue ready and the RX queue never set up, then a
 * frame for the guest: there is no RX ring to put it in, and the device must
 * not act as if there were.
 */
static void net_rx_unready(struct dev *d, uint16_t port)
{
	struct ring tx;
	int sent;

	ring_in_set(&tx, 1, 16, 3);
	if (!negotiate(d) || !queue_setup(d, &tx))
		die("net: the device refused a clean set-up (status %#x)", status(d));
	driver_ok(d);
	sent = send_udp(port, "vireo-evil-no-rx-queue", 8);
	pause_us(1000000);
	say("EVIL-NET-RXQ-UNREADY survived: %d datagrams came with no RX queue (status %#x)", sent,
	    status(d));
	reset(d);
}

/* --- main --------------------------------------------------------------------------- */

/* The reserved RAM must not be System RAM and must end where RAM ends. */
static void map_reserved(const char *addr, const char *size)
{
	res_gpa = strtoull(addr, NULL, 0);
	res_size = strtoull(size, NULL, 0);
	ram_end = res_gpa + res_size;
	if (res_size < AREA_BIG + BIG_READ + TOP_RINGS + PAGE || res_gpa % PAGE || res_size % PAGE)
		die("the reserved RAM %s+%s is too small or not page aligned", addr, size);
	res_map = map_phys(res_gpa, res_size);
	memset(res_map, 0, res_size);
}

int main(int argc, char **argv)
{
	struct dev d = { 0 };
	struct ring r, rx;

	if (argc != 6 || (strcmp(argv[1], "blk") && strcmp(argv[1], "net"))) {
		fprintf(stderr, "usage: evil-virtio blk SERIAL RESERVED_ADDR RESERVED_SIZE SECTOR\n"
				"       evil-virtio net MAC RESERVED_ADDR RESERVED_SIZE UDP_PORT\n");
		return 2;
	}
	d.kind = argv[1];
	map_reserved(argv[3], argv[4]);
	if (strcmp(d.kind, "blk") == 0) {
		find_device("/sys/block", "serial", argv[2], d.platform, sizeof(d.platform));
		take_device(&d, VIRTIO_ID_BLOCK);
		blk_defect1(&d);
		ring_in_set(&r, 0, 16, 0);
		garbage(&d, &r, NULL, 16);
		blk_reinit(&d, strtoull(argv[5], NULL, 0));
	} else {
		uint16_t port = (uint16_t)strtoul(argv[5], NULL, 0);

		find_device("/sys/class/net", "address", argv[2], d.platform, sizeof(d.platform));
		take_device(&d, VIRTIO_ID_NET);
		net_defect1(&d, port);
		net_drain(&d);
		ring_in_set(&r, 1, 16, 0); /* garbage goes on the TX queue */
		ring_in_set(&rx, 0, 16, 1);
		garbage(&d, &r, &rx, 16);
		net_reinit(&d, port);
		net_rx_unready(&d, port);
	}
	say("EVIL-%s-DONE", strcmp(d.kind, "blk") == 0 ? "BLK" : "NET");
	return 0;
}
