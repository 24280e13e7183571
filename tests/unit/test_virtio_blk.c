/*
 * virtio-blk (virtio 1.2 §5.2) over a raw image in a real temporary file,
 * driven through the harness: every request type, what a read-only disk
 * refuses, requests that reach past the disk or overflow, requests split
 * across descriptors at any byte, config space and features. Then
 * disk_open()'s errors and image locking.
 *
 * The image starts with a known pattern (pattern_byte()), so a test can
 * tell what a request changed and that nothing else moved.
 */
#include <errno.h>
#include <fcntl.h>
#include <pthread.h>
#include <setjmp.h>
#include <stdarg.h>
#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <signal.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <unistd.h>

#include <cmocka.h>

#include <linux/falloc.h>
#include <linux/virtio_blk.h>
#include <linux/virtio_config.h>
#include <linux/virtio_ids.h>
#include <linux/virtio_mmio.h>

#include "disk/disk.h"
#include "disk/engine.h"
#include "virtio/blk.h"
#include "vmm/event_loop.h"
#include "virtio_harness.h"
#include "recorded_io.h"

#define IMAGE_SIZE (2u << 20) /* 4096 sectors: room for a request over size_max */
#define IMAGE_SECTORS (IMAGE_SIZE / 512)
#define SERIAL "vireo-test-serial"
#define F(bit) (1ULL << (bit))
#define STATUS_UNSET 0xee

struct ctx {
	struct harness h;
	char path[256];
	struct disk *disk;
	struct virtio_blk *blk;
	uint8_t *original; /* the image's first contents */
};

static uint8_t pattern_byte(uint64_t offset)
{
	return (uint8_t)((offset * 7 + offset / 512 + 13) % 251);
}

/* A temporary file of size bytes filled with the pattern; its path goes to path. */
static void make_image(char *path, size_t path_len, size_t size)
{
	const char *dir = getenv("TMPDIR") ? getenv("TMPDIR") : "/tmp";
	uint8_t *data = malloc(size ? size : 1);
	int fd;

	assert_non_null(data);
	snprintf(path, path_len, "%s/vireo-blk-test-XXXXXX", dir);
	fd = mkstemp(path);
	assert_true(fd >= 0);
	for (size_t i = 0; i < size; i++)
		data[i] = pattern_byte(i);
	assert_int_equal(write(fd, data, size), (ssize_t)size);
	assert_int_equal(fsync(fd), 0);
	close(fd);
	free(data);
}

static struct disk *open_image(const char *path, bool readonly)
{
	struct disk_config cfg = { .path = path, .readonly = readonly };
	char err[256] = "";
	struct disk *disk = disk_open(&cfg, err, sizeof(err));

	if (!disk)
		fail_msg("disk_open: %s", err);
	return disk;
}

/* Opens the image and starts a blk device on it, negotiating everything it offers. */
static void start_blk(struct ctx *c, bool readonly, const char *serial)
{
	c->disk = open_image(c->path, readonly);
	c->blk = virtio_blk_create(c->disk, serial, &c->h.mem, NULL); /* sync engine */
	assert_non_null(c->blk);
	harness_attach(&c->h, virtio_blk_device(c->blk));
	assert_int_equal(harness_start(&c->h, UINT64_MAX, 1, 128), 0);
	assert_false(harness_status(&c->h) & VIRTIO_CONFIG_S_NEEDS_RESET);
}

static int setup_common(void **state, bool readonly, const char *serial)
{
	struct ctx *c = calloc(1, sizeof(*c));

	if (!c)
		return -1;
	make_image(c->path, sizeof(c->path), IMAGE_SIZE);
	c->original = malloc(IMAGE_SIZE);
	for (size_t i = 0; i < IMAGE_SIZE; i++)
		c->original[i] = pattern_byte(i);
	harness_init(&c->h, 0);
	start_blk(c, readonly, serial);
	*state = c;
	return 0;
}

static int setup(void **state)
{
	return setup_common(state, false, SERIAL);
}

static int setup_readonly(void **state)
{
	return setup_common(state, true, SERIAL);
}

static int setup_long_serial(void **state)
{
	return setup_common(state, false, "0123456789abcdefghijKLMNOPQRSTUVWXYZ");
}

static int teardown(void **state)
{
	struct ctx *c = *state;

	if (c->blk)
		virtio_blk_destroy(c->blk);
	disk_close(c->disk);
	harness_destroy(&c->h);
	unlink(c->path);
	free(c->original);
	free(c);
	return 0;
}

/* ---- the image from the host's side ---- */

static void read_image(struct ctx *c, uint64_t offset, void *dst, size_t len)
{
	int fd = open(c->path, O_RDONLY);

	assert_true(fd >= 0);
	assert_int_equal(pread(fd, dst, len, (off_t)offset), (ssize_t)len);
	close(fd);
}

/* The image still holds its original bytes in [offset, offset + len). */
static void assert_image_unchanged(struct ctx *c, uint64_t offset, size_t len)
{
	uint8_t *now = malloc(len);
	struct stat st;

	assert_non_null(now);
	read_image(c, offset, now, len);
	assert_memory_equal(now, c->original + offset, len);
	free(now);
	assert_int_equal(stat(c->path, &st), 0);
	assert_int_equal(st.st_size, IMAGE_SIZE);
}

static void assert_image_zero(struct ctx *c, uint64_t offset, size_t len)
{
	uint8_t *now = malloc(len);

	assert_non_null(now);
	read_image(c, offset, now, len);
	for (size_t i = 0; i < len; i++)
		if (now[i])
			fail_msg("image byte %llu is %u, not 0", (unsigned long long)(offset + i),
				 now[i]);
	free(now);
}

static blkcnt_t image_blocks(struct ctx *c)
{
	struct stat st;
	int fd = open(c->path, O_RDONLY);

	assert_true(fd >= 0);
	assert_int_equal(fsync(fd), 0);
	assert_int_equal(fstat(fd, &st), 0);
	close(fd);
	return st.st_blocks;
}

/* Whether the image's filesystem can punch holes (tmpfs, ext4, xfs, btrfs can). */
static bool can_punch_holes(struct ctx *c)
{
	char probe[sizeof(c->path) + 8];
	bool ok;
	int fd;

	snprintf(probe, sizeof(probe), "%s.punch", c->path);
	fd = open(probe, O_RDWR | O_CREAT | O_EXCL, 0600);
	assert_true(fd >= 0);
	ok = ftruncate(fd, 8192) == 0 &&
	     fallocate(fd, FALLOC_FL_PUNCH_HOLE | FALLOC_FL_KEEP_SIZE, 0, 4096) == 0;
	close(fd);
	unlink(probe);
	return ok;
}

/* ---- the driver's side ---- */

static uint64_t guest_buf(struct ctx *c, uint32_t len, uint8_t fill)
{
	uint64_t gpa = harness_alloc(&c->h, len ? len : 1, 8);

	memset(harness_ptr(&c->h, gpa), fill, len);
	return gpa;
}

static uint64_t header(struct ctx *c, uint32_t type, uint64_t sector)
{
	struct virtio_blk_outhdr hdr = { .type = type, .ioprio = 0, .sector = sector };
	uint64_t gpa = guest_buf(c, sizeof(hdr), 0);

	memcpy(harness_ptr(&c->h, gpa), &hdr, sizeof(hdr));
	return gpa;
}

/* Adds the chain, kicks, takes its one used entry; returns the used length. */
static uint32_t submit(struct ctx *c, const struct harness_buf *bufs, unsigned int n)
{
	uint16_t head = harness_add(&c->h, 0, bufs, n);
	uint32_t id, len;

	harness_kick(&c->h, 0);
	assert_true(harness_get_used(&c->h, 0, &id, &len));
	assert_int_equal(id, head);
	assert_false(harness_get_used(&c->h, 0, &id, &len));
	return len;
}

static uint8_t status_at(struct ctx *c, uint64_t gpa)
{
	return *(uint8_t *)harness_ptr(&c->h, gpa);
}

/*
 * The request Linux sends: header, one data buffer (device-readable for a
 * write, device-writable otherwise; none when len is 0), status byte.
 * Returns the status; *used gets the used length when not NULL.
 */
static uint8_t request(struct ctx *c, uint32_t type, uint64_t sector, uint64_t data,
		       uint32_t len, uint32_t *used)
{
	bool device_reads = type == VIRTIO_BLK_T_OUT || type == VIRTIO_BLK_T_DISCARD ||
			    type == VIRTIO_BLK_T_WRITE_ZEROES;
	uint64_t status = guest_buf(c, 1, STATUS_UNSET);
	struct harness_buf bufs[3];
	unsigned int n = 0;
	uint32_t used_len;

	bufs[n++] = (struct harness_buf){ header(c, type, sector), 16, false };
	if (len)
		bufs[n++] = (struct harness_buf){ data, len, !device_reads };
	bufs[n++] = (struct harness_buf){ status, 1, true };
	used_len = submit(c, bufs, n);
	if (used)
		*used = used_len;
	return status_at(c, status);
}

/* A discard or write-zeroes request with one range. */
static uint8_t range_request(struct ctx *c, uint32_t type, uint64_t sector, uint32_t sectors,
			     uint32_t flags)
{
	struct virtio_blk_discard_write_zeroes r = {
		.sector = sector, .num_sectors = sectors, .flags = flags,
	};
	uint64_t gpa = guest_buf(c, sizeof(r), 0);

	memcpy(harness_ptr(&c->h, gpa), &r, sizeof(r));
	return request(c, type, 0, gpa, sizeof(r), NULL);
}

/* ---- requests ---- */

static void test_blk_reads_sectors_from_image(void **state)
{
	struct ctx *c = *state;
	uint64_t data = guest_buf(c, 1024, 0);
	uint32_t used;

	assert_int_equal(request(c, VIRTIO_BLK_T_IN, 3, data, 1024, &used), VIRTIO_BLK_S_OK);
	assert_int_equal(used, 1025); /* the data and the status byte */
	assert_memory_equal(harness_ptr(&c->h, data), c->original + 3 * 512, 1024);
}

static void test_blk_reads_last_sector(void **state)
{
	struct ctx *c = *state;
	uint64_t data = guest_buf(c, 512, 0);

	assert_int_equal(request(c, VIRTIO_BLK_T_IN, IMAGE_SECTORS - 1, data, 512, NULL),
			 VIRTIO_BLK_S_OK);
	assert_memory_equal(harness_ptr(&c->h, data), c->original + IMAGE_SIZE - 512, 512);
}

static void test_blk_writes_sectors_to_image(void **state)
{
	struct ctx *c = *state;
	uint64_t data = guest_buf(c, 1536, 0x5a);
	uint8_t back[1536];
	uint32_t used;

	assert_int_equal(request(c, VIRTIO_BLK_T_OUT, 10, data, 1536, &used), VIRTIO_BLK_S_OK);
	assert_int_equal(used, 1); /* only the status byte */
	read_image(c, 10 * 512, back, sizeof(back));
	assert_memory_equal(back, harness_ptr(&c->h, data), sizeof(back));
	assert_image_unchanged(c, 0, 10 * 512);
	assert_image_unchanged(c, 13 * 512, IMAGE_SIZE - 13 * 512);
}

static void test_blk_flush_succeeds(void **state)
{
	struct ctx *c = *state;
	uint32_t used;

	assert_int_equal(request(c, VIRTIO_BLK_T_FLUSH, 0, 0, 0, &used), VIRTIO_BLK_S_OK);
	assert_int_equal(used, 1);
}

static void test_blk_get_id_returns_serial_nul_padded(void **state)
{
	struct ctx *c = *state;
	uint64_t id = guest_buf(c, VIRTIO_BLK_ID_BYTES, 0xff);
	uint8_t want[VIRTIO_BLK_ID_BYTES] = SERIAL;
	uint32_t used;

	assert_int_equal(request(c, VIRTIO_BLK_T_GET_ID, 0, id, VIRTIO_BLK_ID_BYTES, &used),
			 VIRTIO_BLK_S_OK);
	assert_int_equal(used, VIRTIO_BLK_ID_BYTES + 1);
	assert_memory_equal(harness_ptr(&c->h, id), want, VIRTIO_BLK_ID_BYTES);
}

static void test_blk_get_id_truncates_serial_to_20_bytes(void **state)
{
	struct ctx *c = *state;
	uint64_t id = guest_buf(c, 32, 0xff);
	uint8_t *got = harness_ptr(&c->h, id);

	assert_int_equal(request(c, VIRTIO_BLK_T_GET_ID, 0, id, 32, NULL), VIRTIO_BLK_S_OK);
	assert_memory_equal(got, "0123456789abcdefghij", VIRTIO_BLK_ID_BYTES);
	assert_int_equal(got[VIRTIO_BLK_ID_BYTES], 0xff); /* nothing past 20 bytes */
}

static void test_blk_get_id_fills_a_shorter_buffer(void **state)
{
	struct ctx *c = *state;
	uint64_t id = guest_buf(c, 8, 0xff);

	assert_int_equal(request(c, VIRTIO_BLK_T_GET_ID, 0, id, 8, NULL), VIRTIO_BLK_S_OK);
	assert_memory_equal(harness_ptr(&c->h, id), SERIAL, 8);
}

static void test_blk_discard_punches_hole(void **state)
{
	struct ctx *c = *state;
	blkcnt_t before, after;

	if (!can_punch_holes(c))
		skip();
	before = image_blocks(c);
	/* 64 KiB at 64 KiB: whole 4 KiB blocks. */
	assert_int_equal(range_request(c, VIRTIO_BLK_T_DISCARD, 128, 128, 0), VIRTIO_BLK_S_OK);
	after = image_blocks(c);
	assert_true(after <= before - 128);
	assert_image_zero(c, 128 * 512, 128 * 512);
	assert_image_unchanged(c, 0, 128 * 512);
	assert_image_unchanged(c, 256 * 512, IMAGE_SIZE - 256 * 512);
}

static void test_blk_write_zeroes_with_unmap_deallocates(void **state)
{
	struct ctx *c = *state;
	blkcnt_t before;

	if (!can_punch_holes(c))
		skip();
	before = image_blocks(c);
	assert_int_equal(range_request(c, VIRTIO_BLK_T_WRITE_ZEROES, 64, 64,
				       VIRTIO_BLK_WRITE_ZEROES_FLAG_UNMAP),
			 VIRTIO_BLK_S_OK);
	assert_true(image_blocks(c) <= before - 64);
	assert_image_zero(c, 64 * 512, 64 * 512);
	assert_image_unchanged(c, 0, 64 * 512);
	assert_image_unchanged(c, 128 * 512, IMAGE_SIZE - 128 * 512);
}

static void test_blk_write_zeroes_without_unmap_zeroes(void **state)
{
	struct ctx *c = *state;

	/* Unaligned on purpose: 3 sectors in the middle of a 4 KiB block. */
	assert_int_equal(range_request(c, VIRTIO_BLK_T_WRITE_ZEROES, 9, 3, 0), VIRTIO_BLK_S_OK);
	assert_image_zero(c, 9 * 512, 3 * 512);
	assert_image_unchanged(c, 0, 9 * 512);
	assert_image_unchanged(c, 12 * 512, IMAGE_SIZE - 12 * 512);
}

static void test_blk_discard_and_write_zeroes_take_several_ranges(void **state)
{
	struct ctx *c = *state;
	struct virtio_blk_discard_write_zeroes r[3] = {
		{ .sector = 8, .num_sectors = 8 },
		{ .sector = 100, .num_sectors = 1 },
		{ .sector = IMAGE_SECTORS - 2, .num_sectors = 2 },
	};
	uint64_t gpa = guest_buf(c, sizeof(r), 0);

	memcpy(harness_ptr(&c->h, gpa), r, sizeof(r));
	assert_int_equal(request(c, VIRTIO_BLK_T_WRITE_ZEROES, 0, gpa, sizeof(r), NULL),
			 VIRTIO_BLK_S_OK);
	assert_image_zero(c, 8 * 512, 8 * 512);
	assert_image_zero(c, 100 * 512, 512);
	assert_image_zero(c, IMAGE_SIZE - 1024, 1024);
	assert_image_unchanged(c, 16 * 512, 84 * 512);
}

static void test_blk_readonly_refuses_write_and_discard(void **state)
{
	struct ctx *c = *state;
	uint64_t data = guest_buf(c, 512, 0x77);

	assert_int_equal(request(c, VIRTIO_BLK_T_OUT, 0, data, 512, NULL), VIRTIO_BLK_S_IOERR);
	assert_int_equal(range_request(c, VIRTIO_BLK_T_DISCARD, 0, 8, 0), VIRTIO_BLK_S_IOERR);
	assert_int_equal(range_request(c, VIRTIO_BLK_T_WRITE_ZEROES, 0, 8, 0), VIRTIO_BLK_S_IOERR);
	assert_int_equal(range_request(c, VIRTIO_BLK_T_WRITE_ZEROES, 0, 8,
				       VIRTIO_BLK_WRITE_ZEROES_FLAG_UNMAP),
			 VIRTIO_BLK_S_IOERR);
	assert_image_unchanged(c, 0, IMAGE_SIZE);
	/* Reads and flushes still work. */
	assert_int_equal(request(c, VIRTIO_BLK_T_IN, 0, data, 512, NULL), VIRTIO_BLK_S_OK);
	assert_memory_equal(harness_ptr(&c->h, data), c->original, 512);
	assert_int_equal(request(c, VIRTIO_BLK_T_FLUSH, 0, 0, 0, NULL), VIRTIO_BLK_S_OK);
}

static void test_blk_rejects_requests_past_end_of_disk(void **state)
{
	struct ctx *c = *state;
	uint64_t data = guest_buf(c, 1024, 0x66);

	assert_int_equal(request(c, VIRTIO_BLK_T_IN, IMAGE_SECTORS, data, 512, NULL),
			 VIRTIO_BLK_S_IOERR);
	assert_int_equal(request(c, VIRTIO_BLK_T_IN, IMAGE_SECTORS - 1, data, 1024, NULL),
			 VIRTIO_BLK_S_IOERR);
	assert_int_equal(request(c, VIRTIO_BLK_T_OUT, IMAGE_SECTORS - 1, data, 1024, NULL),
			 VIRTIO_BLK_S_IOERR);
	assert_int_equal(request(c, VIRTIO_BLK_T_OUT, IMAGE_SECTORS, data, 512, NULL),
			 VIRTIO_BLK_S_IOERR);
	assert_int_equal(range_request(c, VIRTIO_BLK_T_DISCARD, IMAGE_SECTORS - 4, 8, 0),
			 VIRTIO_BLK_S_IOERR);
	assert_int_equal(range_request(c, VIRTIO_BLK_T_WRITE_ZEROES, IMAGE_SECTORS, 1, 0),
			 VIRTIO_BLK_S_IOERR);
	assert_image_unchanged(c, 0, IMAGE_SIZE);
}

static void test_blk_rejects_sector_overflow(void **state)
{
	struct ctx *c = *state;
	uint64_t data = guest_buf(c, 512, 0x66);
	/* sector * 512 wraps to 0 (or to 512): must not land at the start of the disk. */
	const uint64_t wraps[] = { 1ULL << 55, (1ULL << 55) + 1, UINT64_MAX, UINT64_MAX / 512 };

	for (unsigned int i = 0; i < sizeof(wraps) / sizeof(wraps[0]); i++) {
		assert_int_equal(request(c, VIRTIO_BLK_T_OUT, wraps[i], data, 512, NULL),
				 VIRTIO_BLK_S_IOERR);
		assert_int_equal(request(c, VIRTIO_BLK_T_IN, wraps[i], data, 512, NULL),
				 VIRTIO_BLK_S_IOERR);
		assert_int_equal(range_request(c, VIRTIO_BLK_T_WRITE_ZEROES, wraps[i], 1, 0),
				 VIRTIO_BLK_S_IOERR);
		assert_int_equal(range_request(c, VIRTIO_BLK_T_DISCARD, wraps[i], UINT32_MAX, 0),
				 VIRTIO_BLK_S_IOERR);
	}
	assert_image_unchanged(c, 0, IMAGE_SIZE);
}

static void test_blk_rejects_data_not_a_whole_number_of_sectors(void **state)
{
	struct ctx *c = *state;
	uint64_t data = guest_buf(c, 1024, 0x66);

	assert_int_equal(request(c, VIRTIO_BLK_T_OUT, 0, data, 100, NULL), VIRTIO_BLK_S_IOERR);
	assert_int_equal(request(c, VIRTIO_BLK_T_OUT, 0, data, 513, NULL), VIRTIO_BLK_S_IOERR);
	assert_int_equal(request(c, VIRTIO_BLK_T_IN, 0, data, 511, NULL), VIRTIO_BLK_S_IOERR);
	assert_image_unchanged(c, 0, IMAGE_SIZE);
}

static void test_blk_unknown_request_type_is_unsupported(void **state)
{
	struct ctx *c = *state;
	uint64_t data = guest_buf(c, 512, 0);
	/* Legacy SCSI and barriers; 10 GET_LIFETIME, 14 SECURE_ERASE, 15 ZONE_APPEND (§5.2.6). */
	const uint32_t types[] = { VIRTIO_BLK_T_SCSI_CMD, VIRTIO_BLK_T_OUT | VIRTIO_BLK_T_BARRIER,
				   10, VIRTIO_BLK_T_SECURE_ERASE, 15, 0x99, UINT32_MAX };

	for (unsigned int i = 0; i < sizeof(types) / sizeof(types[0]); i++)
		assert_int_equal(request(c, types[i], 0, data, 512, NULL), VIRTIO_BLK_S_UNSUPP);
	assert_image_unchanged(c, 0, IMAGE_SIZE);
}

static void test_blk_ranges_with_reserved_flags_are_unsupported(void **state)
{
	struct ctx *c = *state;

	/* Discard has no flag at all; write-zeroes only UNMAP (§5.2.6.2). */
	assert_int_equal(range_request(c, VIRTIO_BLK_T_DISCARD, 0, 8, 2), VIRTIO_BLK_S_UNSUPP);
	assert_int_equal(range_request(c, VIRTIO_BLK_T_DISCARD, 0, 8,
				       VIRTIO_BLK_WRITE_ZEROES_FLAG_UNMAP),
			 VIRTIO_BLK_S_UNSUPP);
	assert_int_equal(range_request(c, VIRTIO_BLK_T_WRITE_ZEROES, 0, 8, 0x80000000),
			 VIRTIO_BLK_S_UNSUPP);
	assert_int_equal(range_request(c, VIRTIO_BLK_T_WRITE_ZEROES, 0, 8,
				       2 | VIRTIO_BLK_WRITE_ZEROES_FLAG_UNMAP),
			 VIRTIO_BLK_S_UNSUPP);
	assert_image_unchanged(c, 0, IMAGE_SIZE);
}

static void test_blk_ranges_badly_sized_payload_is_unsupported(void **state)
{
	struct ctx *c = *state;
	struct virtio_blk_discard_write_zeroes r[33];
	uint64_t gpa = guest_buf(c, sizeof(r), 0);

	for (unsigned int i = 0; i < 33; i++)
		r[i] = (struct virtio_blk_discard_write_zeroes){ .sector = i * 8, .num_sectors = 8 };
	memcpy(harness_ptr(&c->h, gpa), r, sizeof(r));
	/* No range, half a range, 33 ranges (max_discard_seg is 32). */
	assert_int_equal(request(c, VIRTIO_BLK_T_DISCARD, 0, 0, 0, NULL), VIRTIO_BLK_S_UNSUPP);
	assert_int_equal(request(c, VIRTIO_BLK_T_WRITE_ZEROES, 0, gpa, 24, NULL),
			 VIRTIO_BLK_S_UNSUPP);
	assert_int_equal(request(c, VIRTIO_BLK_T_WRITE_ZEROES, 0, gpa, sizeof(r), NULL),
			 VIRTIO_BLK_S_UNSUPP);
	assert_image_unchanged(c, 0, IMAGE_SIZE);
}

/* The header in three pieces, the data in odd ones, the status sharing the last (§2.7.4.1). */
static void test_blk_parses_requests_split_at_any_byte(void **state)
{
	struct ctx *c = *state;
	struct virtio_blk_outhdr hdr = { .type = VIRTIO_BLK_T_OUT, .sector = 20 };
	uint64_t h = guest_buf(c, 16, 0), data = guest_buf(c, 7 + 1024, 0x3c);
	uint64_t status = guest_buf(c, 8, STATUS_UNSET);
	uint8_t back[1024];
	uint8_t *p;

	memcpy(harness_ptr(&c->h, h), &hdr, sizeof(hdr));
	/* Header and the first data bytes share a descriptor. */
	memcpy(harness_ptr(&c->h, data), (uint8_t *)&hdr + 9, 7);
	{
		struct harness_buf bufs[] = {
			{ h, 3, false }, { h + 3, 6, false }, { data, 7 + 100, false },
			{ data + 107, 1, false }, { data + 108, 1024 - 101, false },
			{ status, 1, true },
		};

		/* data + 7 .. data + 1031 is the sector data. */
		assert_int_equal(submit(c, bufs, 6), 1);
	}
	assert_int_equal(status_at(c, status), VIRTIO_BLK_S_OK);
	read_image(c, 20 * 512, back, sizeof(back));
	assert_memory_equal(back, (uint8_t *)harness_ptr(&c->h, data) + 7, 1024);

	/* Read it back: data in pieces, the last one holding the status too. */
	hdr.type = VIRTIO_BLK_T_IN;
	memcpy(harness_ptr(&c->h, h), &hdr, sizeof(hdr));
	p = harness_ptr(&c->h, data);
	memset(p, 0, 1025);
	{
		struct harness_buf bufs[] = {
			{ h, 15, false }, { h + 15, 1, false }, { data, 1, true },
			{ data + 1, 511, true }, { data + 512, 513, true },
		};

		assert_int_equal(submit(c, bufs, 5), 1025);
	}
	assert_int_equal(p[1024], VIRTIO_BLK_S_OK);
	assert_memory_equal(p, back, 1024);
}

static void test_blk_serves_many_segments_and_indirect_requests(void **state)
{
	struct ctx *c = *state;
	struct harness_buf bufs[66];
	uint64_t status = guest_buf(c, 1, STATUS_UNSET);
	uint16_t head;
	uint32_t id, len;

	bufs[0] = (struct harness_buf){ header(c, VIRTIO_BLK_T_IN, 100), 16, false };
	for (unsigned int i = 1; i <= 64; i++)
		bufs[i] = (struct harness_buf){ guest_buf(c, 512, 0), 512, true };
	bufs[65] = (struct harness_buf){ status, 1, true };
	head = harness_add_indirect(&c->h, 0, bufs, 66);
	harness_kick(&c->h, 0);
	assert_true(harness_get_used(&c->h, 0, &id, &len));
	assert_int_equal(id, head);
	assert_int_equal(len, 64 * 512 + 1);
	assert_int_equal(status_at(c, status), VIRTIO_BLK_S_OK);
	for (unsigned int i = 1; i <= 64; i++)
		assert_memory_equal(harness_ptr(&c->h, bufs[i].gpa),
				    c->original + (100 + i - 1) * 512, 512);
}

static void test_blk_request_without_writable_byte_gets_no_answer(void **state)
{
	struct ctx *c = *state;
	uint64_t data = guest_buf(c, 512, 0x44);
	struct harness_buf write_no_status[] = {
		{ header(c, VIRTIO_BLK_T_OUT, 0), 16, false }, { data, 512, false },
	};
	struct harness_buf zero_length_status[] = {
		{ header(c, VIRTIO_BLK_T_OUT, 0), 16, false }, { data, 512, false },
		{ guest_buf(c, 1, 0), 0, true },
	};

	assert_int_equal(submit(c, write_no_status, 2), 0);
	assert_int_equal(submit(c, zero_length_status, 3), 0);
	assert_image_unchanged(c, 0, IMAGE_SIZE);
	assert_false(harness_status(&c->h) & VIRTIO_CONFIG_S_NEEDS_RESET);
}

static void test_blk_short_header_is_ioerr(void **state)
{
	struct ctx *c = *state;
	uint64_t status = guest_buf(c, 1, STATUS_UNSET);
	struct harness_buf bufs[] = {
		{ header(c, VIRTIO_BLK_T_OUT, 0), 15, false }, { status, 1, true },
	};
	struct harness_buf nothing_readable[] = { { status, 1, true } };

	assert_int_equal(submit(c, bufs, 2), 1);
	assert_int_equal(status_at(c, status), VIRTIO_BLK_S_IOERR);
	*(uint8_t *)harness_ptr(&c->h, status) = STATUS_UNSET;
	assert_int_equal(submit(c, nothing_readable, 1), 1);
	assert_int_equal(status_at(c, status), VIRTIO_BLK_S_IOERR);
	assert_image_unchanged(c, 0, IMAGE_SIZE);
}

static void test_blk_read_of_no_sectors_succeeds(void **state)
{
	struct ctx *c = *state;
	uint32_t used;

	assert_int_equal(request(c, VIRTIO_BLK_T_IN, 0, 0, 0, &used), VIRTIO_BLK_S_OK);
	assert_int_equal(used, 1);
}

/*
 * A hostile driver that publishes more than the device can hold in flight.
 * 256 reads through indirect tables fill the io_uring engine (the loop is
 * not run, so none is reaped); then the driver re-publishes head 0, which is
 * still in flight, and kicks. The device may ignore that entry until a
 * request completes, but the kick must return: the I/O thread is shared by
 * every device and holds this one's lock.
 *
 * Runs in a child process so that a hang fails the test instead of the run.
 * Exit codes: 0 returned, 77 no io_uring on this host, 1 setup failed.
 */
static int republish_while_full(void)
{
	char path[256];
	struct disk_config cfg = { .path = path };
	char err[256];
	struct event_loop loop;
	struct harness h;
	struct disk *disk;
	struct virtio_blk *blk;
	uint64_t hdr_gpa;

	make_image(path, sizeof(path), IMAGE_SIZE);
	disk = disk_open(&cfg, err, sizeof(err));
	unlink(path);
	if (!disk || event_loop_init(&loop) < 0)
		return 1;
	disk_engine_start(disk, DISK_ENGINE_IO_URING, DISK_ENGINE_DEPTH);
	if (!disk->uring)
		return 77;
	harness_init(&h, 0);
	blk = virtio_blk_create(disk, NULL, &h.mem, &loop);
	if (!blk)
		return 1;
	harness_attach(&h, virtio_blk_device(blk));
	if (harness_start(&h, UINT64_MAX, 1, 256) < 0)
		return 1;
	hdr_gpa = harness_alloc(&h, 16, 8); /* a zeroed header: read sector 0 */
	for (unsigned int i = 0; i < 256; i++) {
		struct harness_buf bufs[] = {
			{ hdr_gpa, 16, false },
			{ harness_alloc(&h, 512, 512), 512, true },
			{ harness_alloc(&h, 1, 1), 1, true },
		};

		harness_add_indirect(&h, 0, bufs, 3);
	}
	harness_kick(&h, 0);
	harness_publish(&h, 0, 0); /* head 0 again: 257 requests, 256 of them in flight */
	harness_kick(&h, 0);
	return 0;
}

/* The thread that drains, and the pipe that feeds the held read. */
struct kicker {
	pthread_t drainer;
	int feed_fd;
};

static void ignore_signal(int sig)
{
	(void)sig;
}

/* Signals the draining thread as vcpu_kick() does, a few times, then lets the read finish. */
static void *kick_then_feed(void *opaque)
{
	struct kicker *k = opaque;
	uint8_t sector[512] = { 0 };

	for (int i = 0; i < 10; i++) {
		usleep(10000);
		pthread_kill(k->drainer, SIGUSR1);
	}
	if (write(k->feed_fd, sector, sizeof(sector)) != (ssize_t)sizeof(sector))
		abort();
	return NULL;
}

/*
 * A device reset drains the engine on a vCPU thread, which vcpu_kick()
 * signals: a signal that lands in the wait must not end the drain with
 * requests still in flight, or they complete after the device forgot them
 * (in a fuzz run: into a freed device, then into unmapped guest RAM).
 */
static void test_disk_drain_waits_through_signals(void **state)
{
	char path[256];
	struct disk_config cfg = { .path = path };
	char err[256];
	struct sigaction sa = { .sa_handler = ignore_signal }, old;
	uint8_t buf[512];
	struct iovec iov = { buf, sizeof(buf) };
	struct recorded_io r = { /* held in flight until the kicker feeds the pipe */
		.io = { .op = DISK_IO_READ, .iov = &iov, .nr_iov = 1, .done = recorded_io_done },
	};
	struct kicker k = { pthread_self(), -1 };
	pthread_t thread;
	struct disk *disk;
	bool done_when_drained;
	int fds[2];

	make_image(path, sizeof(path), IMAGE_SIZE);
	disk = disk_open(&cfg, err, sizeof(err));
	unlink(path);
	assert_non_null(disk);
	disk_engine_start(disk, DISK_ENGINE_IO_URING, DISK_ENGINE_DEPTH);
	if (!disk->uring) {
		disk_close(disk);
		skip(); /* io_uring not available here */
	}
	/* The image's fd becomes a pipe: the read waits until the kicker writes to it. */
	assert_int_equal(pipe(fds), 0);
	assert_true(dup2(fds[0], disk->fd) >= 0);
	k.feed_fd = fds[1];
	sigemptyset(&sa.sa_mask);
	assert_int_equal(sigaction(SIGUSR1, &sa, &old), 0);
	disk_submit(disk, &r.io);
	assert_int_equal(pthread_create(&thread, NULL, kick_then_feed, &k), 0);
	disk_drain(disk);
	done_when_drained = r.done;
	pthread_join(thread, NULL);
	disk_drain(disk); /* what an interrupted drain left */
	sigaction(SIGUSR1, &old, NULL);
	close(fds[0]);
	close(fds[1]);
	disk_close(disk);
	assert_true(done_when_drained);
	assert_int_equal(r.result, sizeof(buf));
}

static void test_blk_kick_returns_when_requests_fill_the_engine(void **state)
{
	pid_t child = fork();
	int status = 0;

	assert_true(child >= 0);
	if (child == 0)
		_exit(republish_while_full());
	for (int waited_ms = 0; waitpid(child, &status, WNOHANG) == 0; waited_ms += 10) {
		if (waited_ms >= 10000) {
			kill(child, SIGKILL);
			waitpid(child, &status, 0);
			fail_msg("the kick never returned: with every request in flight, "
				 "blk_queue_notify() spins on a ring that still has entries");
		}
		usleep(10000);
	}
	assert_true(WIFEXITED(status));
	if (WEXITSTATUS(status) == 77)
		skip(); /* io_uring not available here */
	assert_int_equal(WEXITSTATUS(status), 0);
}

/* ---- config space and features ---- */

#define CONFIG_FIELD(c, field, type)                                                   \
	({                                                                             \
		type v_ = (type)0xa5a5a5a5a5a5a5a5ULL;                                 \
		harness_config_read(&(c)->h, offsetof(struct virtio_blk_config, field), \
				    &v_, sizeof(v_));                                  \
		v_;                                                                    \
	})

static void test_blk_config_space_describes_disk(void **state)
{
	struct ctx *c = *state;
	uint32_t lo, hi;

	assert_int_equal(CONFIG_FIELD(c, capacity, uint64_t), IMAGE_SECTORS);
	/* Linux reads the 64-bit capacity as two 32-bit halves. */
	harness_config_read(&c->h, 0, &lo, 4);
	harness_config_read(&c->h, 4, &hi, 4);
	assert_int_equal(((uint64_t)hi << 32) | lo, IMAGE_SECTORS);
	assert_int_equal(CONFIG_FIELD(c, size_max, uint32_t), 1u << 20);
	assert_int_equal(CONFIG_FIELD(c, seg_max, uint32_t), 256 - 2); /* queue size less header, status */
	assert_int_equal(CONFIG_FIELD(c, blk_size, uint32_t), 512);
	assert_int_equal(CONFIG_FIELD(c, max_discard_sectors, uint32_t), UINT32_MAX / 512);
	assert_int_equal(CONFIG_FIELD(c, max_discard_seg, uint32_t), 32);
	assert_int_equal(CONFIG_FIELD(c, discard_sector_alignment, uint32_t), 8);
	assert_int_equal(CONFIG_FIELD(c, max_write_zeroes_sectors, uint32_t), UINT32_MAX / 512);
	assert_int_equal(CONFIG_FIELD(c, max_write_zeroes_seg, uint32_t), 32);
	assert_int_equal(CONFIG_FIELD(c, write_zeroes_may_unmap, uint8_t), 1);
	assert_int_equal(CONFIG_FIELD(c, wce, uint8_t), 0);
	assert_int_equal(CONFIG_FIELD(c, num_queues, uint16_t), 0);
}

static void test_blk_identifies_as_block_device(void **state)
{
	struct ctx *c = *state;

	assert_int_equal(harness_read_reg(&c->h, VIRTIO_MMIO_DEVICE_ID), VIRTIO_ID_BLOCK);
	harness_write_reg(&c->h, VIRTIO_MMIO_QUEUE_SEL, 0);
	assert_int_equal(harness_read_reg(&c->h, VIRTIO_MMIO_QUEUE_NUM_MAX), 256);
	harness_write_reg(&c->h, VIRTIO_MMIO_QUEUE_SEL, 1);
	assert_int_equal(harness_read_reg(&c->h, VIRTIO_MMIO_QUEUE_NUM_MAX), 0);
}

static const uint64_t common_features =
	F(VIRTIO_BLK_F_SIZE_MAX) | F(VIRTIO_BLK_F_SEG_MAX) | F(VIRTIO_BLK_F_BLK_SIZE) |
	F(VIRTIO_BLK_F_FLUSH) | F(VIRTIO_F_VERSION_1);

static void test_blk_writable_disk_offers_discard_and_write_zeroes(void **state)
{
	struct ctx *c = *state;
	uint64_t f = harness_device_features(&c->h);

	assert_int_equal(f & common_features, common_features);
	assert_true(f & F(VIRTIO_BLK_F_DISCARD));
	assert_true(f & F(VIRTIO_BLK_F_WRITE_ZEROES));
	assert_false(f & F(VIRTIO_BLK_F_RO));
}

static void test_blk_readonly_disk_offers_ro_only(void **state)
{
	struct ctx *c = *state;
	uint64_t f = harness_device_features(&c->h);

	assert_int_equal(f & common_features, common_features);
	assert_true(f & F(VIRTIO_BLK_F_RO));
	assert_false(f & F(VIRTIO_BLK_F_DISCARD));
	assert_false(f & F(VIRTIO_BLK_F_WRITE_ZEROES));
}

/* ---- disk_open ---- */

static struct disk *try_open(const char *path, bool readonly, char *err, size_t err_len)
{
	struct disk_config cfg = { .path = path, .readonly = readonly };

	err[0] = 0;
	return disk_open(&cfg, err, err_len);
}

static void assert_contains(const char *haystack, const char *needle)
{
	if (!strstr(haystack, needle))
		fail_msg("\"%s\" does not contain \"%s\"", haystack, needle);
}

static void test_disk_open_reports_missing_file(void **state)
{
	char err[256];
	const char *path = "/nonexistent/vireo-missing.img";

	assert_null(try_open(path, false, err, sizeof(err)));
	assert_contains(err, path);
	assert_contains(err, strerror(ENOENT));
}

static void test_disk_open_refuses_directory(void **state)
{
	char err[256];

	assert_null(try_open("/tmp", true, err, sizeof(err)));
	assert_contains(err, "'/tmp'");
	assert_contains(err, "not a file or block device");
}

static void test_disk_open_refuses_size_not_multiple_of_512(void **state)
{
	char path[256], err[256];

	make_image(path, sizeof(path), 1000);
	assert_null(try_open(path, false, err, sizeof(err)));
	assert_contains(err, path);
	assert_contains(err, "1000 bytes");
	assert_contains(err, "not a multiple of 512");
	unlink(path);
}

static void test_disk_open_gives_size_and_mode(void **state)
{
	char path[256], err[256];
	struct disk *disk;

	make_image(path, sizeof(path), 8192);
	disk = try_open(path, true, err, sizeof(err));
	assert_non_null(disk);
	assert_int_equal(disk->size, 8192);
	assert_true(disk->readonly);
	disk_close(disk);
	unlink(path);
}

/* OFD locks belong to the open file description, so they conflict inside one process too. */
static void test_disk_open_refuses_second_writer_as_in_use(void **state)
{
	char path[256], err[256];
	struct disk *first, *second;

	make_image(path, sizeof(path), 4096);
	first = try_open(path, false, err, sizeof(err));
	assert_non_null(first);
	second = try_open(path, false, err, sizeof(err));
	assert_null(second);
	assert_contains(err, path);
	assert_contains(err, "in use");
	/* A reader is refused too while the writer holds the image. */
	assert_null(try_open(path, true, err, sizeof(err)));
	assert_contains(err, "in use");
	/* Once the writer is gone, the image opens again. */
	disk_close(first);
	second = try_open(path, false, err, sizeof(err));
	assert_non_null(second);
	disk_close(second);
	unlink(path);
}

static void test_disk_open_allows_two_readers(void **state)
{
	char path[256], err[256];
	struct disk *a, *b;

	make_image(path, sizeof(path), 4096);
	a = try_open(path, true, err, sizeof(err));
	assert_non_null(a);
	b = try_open(path, true, err, sizeof(err));
	assert_non_null(b);
	/* But no writer while they read. */
	assert_null(try_open(path, false, err, sizeof(err)));
	assert_contains(err, "in use");
	disk_close(a);
	disk_close(b);
	unlink(path);
}

/* ---- what the config space promises, and the status state machine ---- */

/* size_max (1 MiB) per data segment: a larger one fails instead of being served. */
static void test_blk_refuses_a_segment_over_size_max(void **state)
{
	struct ctx *c = *state;
	uint32_t len = (1u << 20) + 512;
	uint64_t data = guest_buf(c, len, 0xab);

	assert_int_equal(request(c, VIRTIO_BLK_T_OUT, 0, data, len, NULL), VIRTIO_BLK_S_IOERR);
	assert_int_equal(request(c, VIRTIO_BLK_T_IN, 0, data, len, NULL), VIRTIO_BLK_S_IOERR);
	assert_image_unchanged(c, 0, IMAGE_SIZE);
	assert_int_equal(request(c, VIRTIO_BLK_T_IN, 0, data, 1u << 20, NULL), VIRTIO_BLK_S_OK);
}

/* A stopped device: a write of sector 0 gets no answer and changes nothing. */
static void assert_write_unanswered(struct ctx *c)
{
	struct harness_buf bufs[] = {
		{ header(c, VIRTIO_BLK_T_OUT, 0), 16, false },
		{ guest_buf(c, 512, 0xcd), 512, false },
		{ guest_buf(c, 1, STATUS_UNSET), 1, true },
	};

	harness_add(&c->h, 0, bufs, 3);
	harness_kick(&c->h, 0);
	assert_int_equal(harness_pending_used(&c->h, 0), 0);
	assert_image_unchanged(c, 0, IMAGE_SIZE);
}

/*
 * A driver that clears DRIVER_OK without a reset: the write is refused and
 * the device needs a reset; the queue's layout cannot be reprogrammed and
 * requests are not served until the reset, after which the device works.
 */
static void test_blk_status_cleared_without_reset_stops_the_device(void **state)
{
	struct ctx *c = *state;

	harness_write_reg(&c->h, VIRTIO_MMIO_STATUS, 0xb);
	assert_true(harness_status(&c->h) & VIRTIO_CONFIG_S_NEEDS_RESET);
	assert_true(harness_status(&c->h) & VIRTIO_CONFIG_S_DRIVER_OK);
	harness_write_reg(&c->h, VIRTIO_MMIO_QUEUE_SEL, 0);
	harness_write_reg(&c->h, VIRTIO_MMIO_QUEUE_READY, 0);
	harness_write_reg(&c->h, VIRTIO_MMIO_QUEUE_NUM, 256);
	assert_int_equal(harness_read_reg(&c->h, VIRTIO_MMIO_QUEUE_NUM), 128);
	assert_int_equal(harness_read_reg(&c->h, VIRTIO_MMIO_QUEUE_READY), 1);
	assert_write_unanswered(c);

	assert_int_equal(harness_start(&c->h, UINT64_MAX, 1, 128), 0); /* resets first */
	assert_false(harness_status(&c->h) & VIRTIO_CONFIG_S_NEEDS_RESET);
	assert_int_equal(request(c, VIRTIO_BLK_T_OUT, 0, guest_buf(c, 512, 0xcd), 512, NULL),
			 VIRTIO_BLK_S_OK);
}

/* The driver gave up (FAILED): the device stops serving as it would for NEEDS_RESET. */
static void test_blk_failed_status_stops_the_device(void **state)
{
	struct ctx *c = *state;

	harness_add_status(&c->h, VIRTIO_CONFIG_S_FAILED);
	assert_write_unanswered(c);
}

#define B(fn) cmocka_unit_test_setup_teardown(fn, setup, teardown)
#define B_RO(fn) cmocka_unit_test_setup_teardown(fn, setup_readonly, teardown)

int main(void)
{
	const struct CMUnitTest tests[] = {
		B(test_blk_reads_sectors_from_image),
		B(test_blk_reads_last_sector),
		B(test_blk_writes_sectors_to_image),
		B(test_blk_flush_succeeds),
		B(test_blk_get_id_returns_serial_nul_padded),
		cmocka_unit_test_setup_teardown(test_blk_get_id_truncates_serial_to_20_bytes,
						setup_long_serial, teardown),
		B(test_blk_get_id_fills_a_shorter_buffer),
		B(test_blk_discard_punches_hole),
		B(test_blk_write_zeroes_with_unmap_deallocates),
		B(test_blk_write_zeroes_without_unmap_zeroes),
		B(test_blk_discard_and_write_zeroes_take_several_ranges),
		B_RO(test_blk_readonly_refuses_write_and_discard),
		B(test_blk_rejects_requests_past_end_of_disk),
		B(test_blk_rejects_sector_overflow),
		B(test_blk_rejects_data_not_a_whole_number_of_sectors),
		B(test_blk_unknown_request_type_is_unsupported),
		B(test_blk_ranges_with_reserved_flags_are_unsupported),
		B(test_blk_ranges_badly_sized_payload_is_unsupported),
		B(test_blk_parses_requests_split_at_any_byte),
		B(test_blk_serves_many_segments_and_indirect_requests),
		B(test_blk_request_without_writable_byte_gets_no_answer),
		B(test_blk_short_header_is_ioerr),
		B(test_blk_read_of_no_sectors_succeeds),
		B(test_blk_refuses_a_segment_over_size_max),
		B(test_blk_status_cleared_without_reset_stops_the_device),
		B(test_blk_failed_status_stops_the_device),
		cmocka_unit_test(test_blk_kick_returns_when_requests_fill_the_engine),
		cmocka_unit_test(test_disk_drain_waits_through_signals),
		B(test_blk_config_space_describes_disk),
		B(test_blk_identifies_as_block_device),
		B(test_blk_writable_disk_offers_discard_and_write_zeroes),
		B_RO(test_blk_readonly_disk_offers_ro_only),
		cmocka_unit_test(test_disk_open_reports_missing_file),
		cmocka_unit_test(test_disk_open_refuses_directory),
		cmocka_unit_test(test_disk_open_refuses_size_not_multiple_of_512),
		cmocka_unit_test(test_disk_open_gives_size_and_mode),
		cmocka_unit_test(test_disk_open_refuses_second_writer_as_in_use),
		cmocka_unit_test(test_disk_open_allows_two_readers),
	};

	return cmocka_run_group_tests(tests, NULL, NULL);
}
