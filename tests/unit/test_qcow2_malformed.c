/*
 * Hostile qcow2 images: every offset and size in the file is a lie we
 * must catch. Opening fails with one sentence naming what is wrong; an
 * image that opens but lies deeper (in L1, L2 or refcount entries, in
 * compressed data) fails the request with -EIO. Nothing crashes, hangs,
 * or writes outside the image.
 *
 * The images start as one qemu-img made (header at 0, refcount table at
 * 64 KiB, refcount block at 128 KiB, L1 at 192 KiB, L2 at 256 KiB, data
 * at 320 KiB) and are patched in memory, then opened over a memory file.
 */
#include "test_qcow2_util.h"

#include "disk/image_file.h"

#define CS 65536u
#define REFTABLE (1 * CS)
#define REFBLOCK (2 * CS)
#define L1 (3 * CS)
#define L2 (4 * CS)
#define DATA (5 * CS)

static uint8_t *base;
static size_t base_len;
static struct qt group;

static int make_base(void **state)
{
	qt_init(&group);
	qt_sh(&group, "qemu-img create -q -f qcow2 m.qcow2 1M && "
		      "qemu-io -c 'write -P 0x61 0 64k' m.qcow2");
	base = qt_slurp(qt_path(&group, "m.qcow2"), &base_len);
	assert_int_equal(base_len, 6 * CS);
	return 0;
}

static int drop_base(void **state)
{
	free(base);
	qt_fini(&group);
	return 0;
}

static void put32(uint8_t *p, uint32_t v)
{
	for (int i = 0; i < 4; i++)
		p[i] = (uint8_t)(v >> (24 - 8 * i));
}

static void put64(uint8_t *p, uint64_t v)
{
	put32(p, (uint32_t)(v >> 32));
	put32(p + 4, (uint32_t)v);
}

struct mem_disk {
	struct image_file *file;
	struct disk *disk;
	char err[512];
};

static bool open_mem(struct mem_disk *m, const uint8_t *img, size_t len, bool readonly)
{
	struct disk_config cfg = {
		.path = "hostile.qcow2",
		.readonly = readonly,
		.engine = DISK_ENGINE_SYNC,
	};

	m->file = image_file_memory(img, len, len + (16u << 20));
	assert_non_null(m->file);
	m->err[0] = '\0';
	m->disk = qcow2_open_file(m->file, &cfg, m->err, sizeof(m->err));
	return m->disk != NULL;
}

static uint8_t *copy_base(void)
{
	uint8_t *img = malloc(base_len);

	memcpy(img, base, base_len);
	return img;
}

static void expect_open_error(const uint8_t *img, size_t len, const char *message)
{
	struct mem_disk m;

	if (open_mem(&m, img, len, false)) {
		fprintf(stderr, "opened, but should fail with: %s\n", message);
		disk_close(m.disk);
		fail();
	}
	if (!strstr(m.err, message))
		fprintf(stderr, "got: %s\nwanted: %s\n", m.err, message);
	assert_non_null(strstr(m.err, message));
	assert_non_null(strstr(m.err, "disk 'hostile.qcow2': "));
}

/* Patches 4 or 8 bytes of a copy of the base image at offset and expects message. */
static void expect_patch_refused(size_t offset, uint64_t value, int size, const char *message)
{
	uint8_t *img = copy_base();

	if (size == 8)
		put64(img + offset, value);
	else
		put32(img + offset, (uint32_t)value);
	expect_open_error(img, base_len, message);
	free(img);
}

static void test_qcow2_refuses_bad_magic_and_version(void **state)
{
	expect_patch_refused(0, 0x514649fa, 4, "not a qcow2 image");
	expect_patch_refused(4, 1, 4, "qcow2 version 1 is not supported");
	expect_patch_refused(4, 4, 4, "qcow2 version 4 is not supported");
	expect_open_error(base, 3, "not a qcow2 image");
}

static void test_qcow2_refuses_cluster_size_out_of_range(void **state)
{
	expect_patch_refused(20, 8, 4, "cluster bits 8 are out of range");
	expect_patch_refused(20, 22, 4, "cluster bits 22 are out of range");
	expect_patch_refused(20, 0xffffffff, 4, "out of range");
}

static void test_qcow2_refuses_header_length_lies(void **state)
{
	expect_patch_refused(100, 96, 4, "the header length 96 is invalid");
	expect_patch_refused(100, 105, 4, "the header length 105 is invalid");
	expect_patch_refused(100, CS + 8, 4, "is invalid");
	expect_patch_refused(100, 0xfffffff8, 4, "is invalid");
}

static void test_qcow2_refuses_refcount_order_above_6(void **state)
{
	expect_patch_refused(96, 7, 4, "refcount order 7 is more than 6");
	expect_patch_refused(96, 0x80000000u, 4, "is more than 6");
}

static void test_qcow2_refuses_encryption(void **state)
{
	expect_patch_refused(32, 1, 4, "encrypted images (method 1) are not supported");
	expect_patch_refused(32, 2, 4, "encrypted images (method 2)");
}

static void test_qcow2_refuses_l1_lies(void **state)
{
	/* Size: more entries than QEMU allows, fewer than the disk needs, past the file. */
	expect_patch_refused(36, 0x10000000, 4, "is larger than 32 MiB");
	expect_patch_refused(36, 0, 4, "too small for the virtual size");
	expect_patch_refused(36, 0x400000, 4, "outside the file");
	/* Offset: unaligned, zero, past the end, wrapping. */
	expect_patch_refused(40, L1 + 8, 8, "the L1 table offset 0x30008 is unaligned");
	expect_patch_refused(40, 0, 8, "unaligned or outside the file");
	expect_patch_refused(40, 1ull << 40, 8, "outside the file");
	expect_patch_refused(40, 0xffffffffffff0000ull, 8, "outside the file");
}

/* A virtual size whose L1 size overflows: refused, not wrapped. */
static void test_qcow2_refuses_virtual_size_overflow(void **state)
{
	expect_patch_refused(24, UINT64_MAX, 8, "too large");
	expect_patch_refused(24, (1ull << 61) + 1, 8, "too large");
	/* Large but representable: the L1 table is too small for it. */
	expect_patch_refused(24, 1ull << 50, 8, "too small for the virtual size");
}

static void test_qcow2_refuses_refcount_table_lies(void **state)
{
	expect_patch_refused(56, 0, 4, "the refcount table size (0 clusters) is out of range");
	expect_patch_refused(56, 0xffffffff, 4, "is out of range");
	expect_patch_refused(56, 100, 4, "outside the file");
	expect_patch_refused(48, REFTABLE + 512, 8,
			     "the refcount table offset 0x10200 is unaligned");
	expect_patch_refused(48, 0, 8, "unaligned or outside");
	expect_patch_refused(48, 0xffffffffffff0000ull, 8, "outside the file");
}

static void test_qcow2_refuses_snapshot_table_lies(void **state)
{
	uint8_t *img = copy_base();

	expect_patch_refused(60, 100000, 4, "100000 snapshots are more than 65536");
	put32(img + 60, 1);
	put64(img + 64, 12345);
	expect_open_error(img, base_len, "the snapshot table offset 0x3039 is unaligned");
	put64(img + 64, 1ull << 50);
	expect_open_error(img, base_len, "outside the file");
	/* One snapshot entry at 320 KiB whose L1 table is unaligned, then past the end. */
	put64(img + 64, DATA);
	memset(img + DATA, 0, 64);
	put64(img + DATA, L1 + 8);
	put32(img + DATA + 8, 1);
	expect_open_error(img, base_len, "snapshot 0's L1 table is unaligned");
	put64(img + DATA, 1ull << 45);
	expect_open_error(img, base_len, "snapshot 0's L1 table");
	put64(img + DATA, L1);
	put32(img + DATA + 36, 5000); /* extra data */
	expect_open_error(img, base_len, "snapshot 0 has too much extra data");
	memset(img + DATA, 0, CS); /* 40-byte entries from here to the end of the file... */
	put64(img + DATA, L1);
	put32(img + DATA + 8, 1);
	put32(img + 60, 40000); /* ...but more of them than it holds */
	expect_open_error(img, base_len, "lies outside the file");
	free(img);
}

static void test_qcow2_refuses_backing_name_lies(void **state)
{
	uint8_t *img = copy_base();

	put64(img + 8, 4096);
	put32(img + 16, 1024);
	expect_open_error(img, base_len, "the backing file name is longer than 1023 bytes");
	put32(img + 16, 0xffffffff);
	expect_open_error(img, base_len, "longer than 1023 bytes");
	put64(img + 8, CS - 10);
	put32(img + 16, 20);
	expect_open_error(img, base_len, "the backing file name lies outside the first cluster");
	put64(img + 8, 1ull << 62);
	expect_open_error(img, base_len, "lies outside the first cluster");
	put64(img + 8, 4096);
	put32(img + 16, 8);
	memcpy(img + 4096, "ab\0cdefg", 8);
	expect_open_error(img, base_len, "the backing file name holds a NUL byte");
	memcpy(img + 4096, "nothere!", 8);
	expect_open_error(img, base_len, "backing file 'nothere!' named by 'hostile.qcow2': cannot "
					 "open 'nothere!': No such file or directory");
	free(img);
}

static void test_qcow2_refuses_header_extension_lies(void **state)
{
	uint8_t *img = copy_base();

	/* The first extension (at 112, after the v3 header) claims 1 GiB. */
	put32(img + 112, 0x12345678);
	put32(img + 116, 1u << 30);
	expect_open_error(img, base_len, "header extension 0x12345678 is longer than the space");
	put32(img + 116, CS - 112 - 8 + 1);
	expect_open_error(img, base_len, "is longer than the space");
	/* A backing format name that is not one we read. */
	put32(img + 112, 0xe2792aca);
	put32(img + 116, 4);
	memcpy(img + 120, "vmdk", 4);
	put64(img + 8, 4096);
	put32(img + 16, 4);
	memcpy(img + 4096, "base", 4);
	expect_open_error(img, base_len, "format 'vmdk' is not supported (raw and qcow2 are)");
	free(img);
}

static void test_qcow2_refuses_bad_compression_type(void **state)
{
	uint8_t *img = copy_base();

	img[104] = 1; /* zstd, without the incompatible bit */
	expect_open_error(img, base_len, "compression type 1 is set without its incompatible");
	put64(img + 72, 1u << 3);
	img[104] = 0;
	expect_open_error(img, base_len, "unknown compression type 0");
	img[104] = 7;
	expect_open_error(img, base_len, "unknown compression type 7");
	free(img);
}

static void test_qcow2_names_unknown_features_from_table(void **state)
{
	uint8_t *img = copy_base();

	/* QEMU's feature name table is there; add bit 9 to it as "frobnication". */
	put64(img + 72, 1u << 9 | 1u << 12);
	put32(img + 112, 0x6803f857);
	put32(img + 116, 48);
	memset(img + 120, 0, 48);
	img[121] = 9;
	memcpy(img + 122, "frobnication", 12);
	put32(img + 168, 0);
	expect_open_error(img, base_len,
			  "unknown incompatible features 'frobnication', 'bit 12'");
	free(img);
}

/* Opens a patched image read-write; reads and writes must fail cleanly. */
static void expect_io_error(uint8_t *img, uint64_t offset, bool read_fails, bool write_fails)
{
	uint8_t buf[4096];
	struct iovec iov = { buf, sizeof(buf) };
	struct mem_disk m;
	size_t before, after;

	if (!open_mem(&m, img, base_len, false))
		fprintf(stderr, "open failed: %s\n", m.err);
	assert_non_null(m.disk);
	image_file_memory_data(m.file, &before);
	if (read_fails)
		assert_int_equal(m.disk->ops->readv(m.disk, &iov, 1, offset), -EIO);
	else
		assert_int_equal(m.disk->ops->readv(m.disk, &iov, 1, offset), (ssize_t)sizeof(buf));
	memset(buf, 0x5a, sizeof(buf));
	if (write_fails)
		assert_int_equal(m.disk->ops->writev(m.disk, &iov, 1, offset), -EIO);
	image_file_memory_data(m.file, &after);
	assert_true(after <= before + 4 * CS); /* never far past the image */
	disk_close(m.disk);
}

static void test_qcow2_rejects_bad_l1_entries(void **state)
{
	uint8_t *img = copy_base();

	put64(img + L1, (1ull << 63) | (1ull << 40)); /* past the end */
	expect_io_error(img, 0, true, true);
	put64(img + L1, (1ull << 63) | (L2 + 512)); /* unaligned */
	expect_io_error(img, 0, true, true);
	put64(img + L1, (1ull << 63) | L2 | 1); /* reserved bit */
	expect_io_error(img, 0, true, true);
	put64(img + L1, (1ull << 63) | L1); /* the L1 table itself */
	expect_io_error(img, 0, true, true);
	put64(img + L1, (1ull << 63) | REFTABLE); /* the refcount table */
	expect_io_error(img, 0, true, true);
	free(img);
}

static void test_qcow2_rejects_bad_l2_entries(void **state)
{
	uint8_t *img = copy_base();

	put64(img + L2, (1ull << 63) | DATA | (1ull << 58)); /* reserved bit */
	expect_io_error(img, 0, true, true);
	put64(img + L2, (1ull << 63) | (DATA + 512)); /* unaligned */
	expect_io_error(img, 0, true, true);
	put64(img + L2, 1ull << 63); /* COPIED without an offset */
	expect_io_error(img, 0, true, true);
	put64(img + L2, 3ull << 62 | DATA); /* compressed and COPIED */
	expect_io_error(img, 0, true, true);
	/* Ours alone, but far past the end: reads zeroes, a write must not go there. */
	put64(img + L2, (1ull << 63) | (1ull << 54));
	expect_io_error(img, 0, false, true);
	/* Ours alone, on top of metadata: the header, the L1 table, the refcount block. */
	put64(img + L2, (1ull << 63) | L1);
	expect_io_error(img, 0, false, true);
	put64(img + L2, (1ull << 63) | REFBLOCK);
	expect_io_error(img, 0, false, true);
	free(img);
}

static void test_qcow2_rejects_bad_compressed_clusters(void **state)
{
	uint8_t *img = copy_base();
	unsigned int shift = 62 - (16 - 8);

	/* Garbage where the deflate stream should be. */
	memset(img + DATA, 0xff, CS);
	put64(img + L2, 1ull << 62 | (uint64_t)3 << shift | DATA);
	expect_io_error(img, 0, true, false);
	/* Past the end of the file. */
	put64(img + L2, 1ull << 62 | (uint64_t)3 << shift | (1ull << 40));
	expect_io_error(img, 0, true, false);
	/* A stream that ends before a whole cluster comes out: "\x03\x00" is an empty block. */
	memcpy(img + DATA, "\x03\x00", 2);
	put64(img + L2, 1ull << 62 | DATA);
	expect_io_error(img, 0, true, false);
	free(img);
}

static void test_qcow2_rejects_bad_refcount_entries(void **state)
{
	uint8_t *img = copy_base();
	uint8_t buf[4096];
	struct iovec iov = { buf, sizeof(buf) };
	struct mem_disk m;

	/* The refcount block is past the end: reads work, an allocating write fails. */
	put64(img + REFTABLE, 1ull << 40);
	expect_io_error(img, 0, false, false);
	assert_true(open_mem(&m, img, base_len, false));
	assert_int_equal(m.disk->ops->writev(m.disk, &iov, 1, 512 * 1024), -EIO);
	disk_close(m.disk);
	/* Unaligned, and on the L1 table. */
	put64(img + REFTABLE, REFBLOCK + 8);
	assert_true(open_mem(&m, img, base_len, false));
	assert_int_equal(m.disk->ops->writev(m.disk, &iov, 1, 512 * 1024), -EIO);
	disk_close(m.disk);
	put64(img + REFTABLE, L1);
	assert_true(open_mem(&m, img, base_len, false));
	assert_int_equal(m.disk->ops->writev(m.disk, &iov, 1, 512 * 1024), -EIO);
	disk_close(m.disk);
	free(img);
}

/*
 * Every refcount says "in use", the table covers 2^31 clusters through one
 * block over and over: allocation gives up after a bounded scan past the
 * end of the file instead of walking them all.
 */
static void test_qcow2_allocation_scan_is_bounded(void **state)
{
	size_t len = base_len + 2 * CS;
	uint8_t *img = calloc(1, len), buf[512];
	struct iovec iov = { buf, sizeof(buf) };
	struct mem_disk m;

	memcpy(img, base, base_len);
	put32(img + 56, 2); /* refcount table: two clusters at 384 KiB */
	put64(img + 48, 6 * CS);
	for (uint64_t i = 0; i < 2 * CS / 8; i++)
		put64(img + 6 * CS + 8 * i, REFBLOCK);
	memset(img + REFBLOCK, 0xff, CS);
	assert_true(open_mem(&m, img, len, false));
	assert_int_equal(m.disk->ops->writev(m.disk, &iov, 1, 512 * 1024), -EIO);
	disk_close(m.disk);
	free(img);
}

/* A dirty image whose metadata is broken: read-write refuses, read-only reads. */
static void test_qcow2_dirty_image_with_broken_metadata(void **state)
{
	uint8_t *img = copy_base(), buf[512];
	struct iovec iov = { buf, sizeof(buf) };
	struct mem_disk m;

	put64(img + 72, 1); /* dirty */
	put64(img + L1, (1ull << 63) | (1ull << 40));
	expect_open_error(img, base_len, "the image is dirty and repairing its refcounts failed");
	assert_true(open_mem(&m, img, base_len, true));
	assert_int_equal(m.disk->ops->readv(m.disk, &iov, 1, 512 * 1024), -EIO);
	disk_close(m.disk);
	free(img);
}

static void make_backed(struct qt *t, const char *img, const char *backing)
{
	qt_sh(t, "test -e '%s' || qemu-img create -q -f qcow2 '%s' 1M", img, img);
	qt_sh(t, "qemu-img rebase -u -b '%s' -F qcow2 '%s'", backing, img);
}

static void expect_file_refused(struct qt *t, const char *img, const char *message)
{
	char err[512] = "";
	struct disk *d = qt_open_cfg(qt_path(t, img), true, DISK_FORMAT_AUTO, 0, err, sizeof(err));

	if (d)
		disk_close(d);
	assert_null(d);
	if (!strstr(err, message))
		fprintf(stderr, "got: %s\nwanted: %s\n", err, message);
	assert_non_null(strstr(err, message));
}

static void test_qcow2_refuses_backing_loops(void **state)
{
	struct qt t;

	qt_init(&t);
	make_backed(&t, "self.qcow2", "self.qcow2");
	expect_file_refused(&t, "self.qcow2", "the backing chain loops back to it");
	make_backed(&t, "a.qcow2", "b.qcow2");
	make_backed(&t, "b.qcow2", "c.qcow2");
	make_backed(&t, "c.qcow2", "a.qcow2");
	expect_file_refused(&t, "a.qcow2", "the backing chain loops back to it");
	/* Through another name for the same file. */
	qt_sh(&t, "ln -s a.qcow2 link.qcow2");
	make_backed(&t, "c.qcow2", "link.qcow2");
	expect_file_refused(&t, "b.qcow2", "the backing chain loops back to it");
	qt_fini(&t);
}

static void test_qcow2_backing_chain_depth_limit(void **state)
{
	struct qt t;
	char name[32], below[32];
	struct disk *d;

	qt_init(&t);
	qt_sh(&t, "qemu-img create -q -f qcow2 i0.qcow2 1M && "
		  "qemu-io -c 'write -P 0x42 0 512' i0.qcow2");
	for (int i = 1; i <= 17; i++) {
		snprintf(name, sizeof(name), "i%d.qcow2", i);
		snprintf(below, sizeof(below), "i%d.qcow2", i - 1);
		make_backed(&t, name, below);
	}
	d = qt_open(qt_path(&t, "i16.qcow2"), true); /* 16 backing files: fine */
	{
		uint8_t buf[512];

		qt_read(d, buf, 0, sizeof(buf));
		assert_int_equal(buf[0], 0x42);
		assert_int_equal(buf[511], 0x42);
	}
	disk_close(d);
	expect_file_refused(&t, "i17.qcow2", "the backing chain is deeper than 16 files");
	qt_fini(&t);
}

int main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(test_qcow2_refuses_bad_magic_and_version),
		cmocka_unit_test(test_qcow2_refuses_cluster_size_out_of_range),
		cmocka_unit_test(test_qcow2_refuses_header_length_lies),
		cmocka_unit_test(test_qcow2_refuses_refcount_order_above_6),
		cmocka_unit_test(test_qcow2_refuses_encryption),
		cmocka_unit_test(test_qcow2_refuses_l1_lies),
		cmocka_unit_test(test_qcow2_refuses_virtual_size_overflow),
		cmocka_unit_test(test_qcow2_refuses_refcount_table_lies),
		cmocka_unit_test(test_qcow2_refuses_snapshot_table_lies),
		cmocka_unit_test(test_qcow2_refuses_backing_name_lies),
		cmocka_unit_test(test_qcow2_refuses_header_extension_lies),
		cmocka_unit_test(test_qcow2_refuses_bad_compression_type),
		cmocka_unit_test(test_qcow2_names_unknown_features_from_table),
		cmocka_unit_test(test_qcow2_rejects_bad_l1_entries),
		cmocka_unit_test(test_qcow2_rejects_bad_l2_entries),
		cmocka_unit_test(test_qcow2_rejects_bad_compressed_clusters),
		cmocka_unit_test(test_qcow2_rejects_bad_refcount_entries),
		cmocka_unit_test(test_qcow2_allocation_scan_is_bounded),
		cmocka_unit_test(test_qcow2_dirty_image_with_broken_metadata),
		cmocka_unit_test(test_qcow2_refuses_backing_loops),
		cmocka_unit_test(test_qcow2_backing_chain_depth_limit),
	};

	return cmocka_run_group_tests(tests, make_base, drop_base);
}
