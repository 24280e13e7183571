/*
 * qcow2 against the real qemu-img (Debian's qemu-utils): images qemu-img
 * makes in every variant (versions 2 and 3, cluster sizes 512 B to 2 MiB,
 * refcount widths 1 to 64 bits, zlib and zstd compression, backing chains,
 * internal snapshots) read back through Vireo with the bytes
 * `qemu-img convert -O raw` gives; after Vireo writes, discards and zeroes
 * through the disk ops, `qemu-img check` finds no error and
 * `qemu-img compare` finds the image identical to what we expect. Then the
 * feature bits, dirty images, refcount table growth, tiny caches,
 * concurrent writers, and many requests in flight through the io_uring
 * engine.
 */
#include <pthread.h>

#include "test_qcow2_util.h"

#include "disk/image_file.h"

#define IMAGE_SIZE (4u << 20)

struct variant {
	const char *name;
	const char *opts; /* qemu-img -o ... */
	bool compress;	  /* convert -c */
	uint32_t size;
};

#define SMALL (1u << 20) /* 512-byte clusters: qemu-img is slow to make big ones */

static const struct variant variants[] = {
	{ "v2", "compat=0.10", false, IMAGE_SIZE },
	{ "v3", "compat=1.1", false, IMAGE_SIZE },
	{ "v2-512", "compat=0.10,cluster_size=512", false, SMALL },
	{ "512", "cluster_size=512", false, SMALL },
	{ "4k", "cluster_size=4096", false, IMAGE_SIZE },
	{ "2m", "cluster_size=2M", false, IMAGE_SIZE },
	{ "rc1", "refcount_bits=1", false, IMAGE_SIZE },
	{ "rc2", "refcount_bits=2", false, IMAGE_SIZE },
	{ "rc4", "refcount_bits=4", false, IMAGE_SIZE },
	{ "rc8", "refcount_bits=8", false, IMAGE_SIZE },
	{ "rc32", "refcount_bits=32", false, IMAGE_SIZE },
	{ "rc64-512", "refcount_bits=64,cluster_size=512", false, SMALL },
	{ "zlib", "compat=1.1", true, IMAGE_SIZE },
	{ "zlib-v2", "compat=0.10", true, IMAGE_SIZE },
	{ "zlib-512", "cluster_size=512", true, SMALL },
	{ "zlib-2m", "cluster_size=2M", true, IMAGE_SIZE },
	{ "zstd", "compression_type=zstd", true, IMAGE_SIZE },
	{ "zstd-4k", "compression_type=zstd,cluster_size=4096", true, IMAGE_SIZE },
};

#define NR_VARIANTS (sizeof(variants) / sizeof(variants[0]))
#define ZLIB_VARIANT 12

/* Every variant is made once, as variant-NAME.qcow2 in the group's directory. */
static struct qt group;

static int make_variants(void **state)
{
	qt_init(&group);
	for (size_t i = 0; i < NR_VARIANTS; i++) {
		const struct variant *v = &variants[i];
		uint8_t *raw = qt_mixed_image(v->size, i);

		qt_spit(qt_path(&group, "src.raw"), raw, v->size);
		qt_sh(&group, "qemu-img convert %s -f raw -O qcow2 -o %s src.raw variant-%s.qcow2",
		      v->compress ? "-c" : "", v->opts, v->name);
		free(raw);
	}
	return 0;
}

static int remove_variants(void **state)
{
	qt_fini(&group);
	return 0;
}

/* Copies variant i to img in t's directory; returns its raw contents. */
static uint8_t *make_variant(struct qt *t, size_t i, const char *img)
{
	qt_sh(t, "cp '%s/variant-%s.qcow2' '%s'", group.dir, variants[i].name, img);
	return qt_mixed_image(variants[i].size, i);
}

static void check_clean(struct qt *t, const char *img)
{
	if (qt_sh_rc(t, "qemu-img check '%s'", img) != 0) {
		fprintf(stderr, "qemu-img check %s:\n", img);
		qt_show_log(t);
		fail();
	}
}

static void compare_with(struct qt *t, const char *img, const uint8_t *expect, size_t len)
{
	qt_spit(qt_path(t, "expect.raw"), expect, len);
	if (qt_sh_rc(t, "qemu-img compare -f qcow2 -F raw '%s' expect.raw", img) != 0) {
		fprintf(stderr, "qemu-img compare %s:\n", img);
		qt_show_log(t);
		fail();
	}
}

static void test_qcow2_reads_what_qemu_img_writes(void **state)
{
	struct qt t;

	qt_init(&t);
	for (size_t i = 0; i < NR_VARIANTS; i++) {
		const struct variant *v = &variants[i];
		uint8_t *raw = make_variant(&t, i, "img.qcow2"), *qemu, *ours;
		struct disk *d;
		size_t len;

		qemu = qt_qemu_raw(&t, "img.qcow2", &len);
		assert_int_equal(len, v->size);
		qt_assert_same(qemu, raw, len);
		d = qt_open(qt_path(&t, "img.qcow2"), true);
		assert_int_equal(d->size, v->size);
		ours = qt_read_all(d);
		if (qt_diff(ours, qemu, len) >= 0)
			fprintf(stderr, "variant %s differs\n", v->name);
		qt_assert_same(ours, qemu, len);
		disk_close(d);
		free(raw);
		free(qemu);
		free(ours);
	}
	qt_fini(&t);
}

/* Random writes, discards, zeroes, flushes and reads; expect mirrors them. */
static void random_ops(struct disk *d, uint8_t *expect, uint64_t seed, int count,
		       uint64_t max_len)
{
	uint8_t *buf = malloc(max_len), *got = malloc(max_len);
	uint64_t s = seed * 2654435761u + 99, sectors = d->size / 512;

	assert_non_null(buf);
	assert_non_null(got);
	for (int i = 0; i < count; i++) {
		uint64_t r = qt_rand(&s) % 100;
		uint64_t off = (qt_rand(&s) % sectors) * 512;
		uint64_t len = (1 + qt_rand(&s) % (max_len / 512)) * 512;

		if (len > d->size - off)
			len = d->size - off;
		if (r < 55) {
			uint64_t cut = qt_rand(&s) % len;
			struct iovec iov[2] = { { buf, cut }, { buf + cut, len - cut } };

			qt_fill(buf, len, s);
			assert_int_equal(d->ops->writev(d, iov, 2, off), (ssize_t)len);
			memcpy(expect + off, buf, len);
		} else if (r < 65) {
			assert_int_equal(d->ops->discard(d, off, len), 0);
			memset(expect + off, 0, len);
		} else if (r < 75) {
			assert_int_equal(d->ops->write_zeroes(d, off, len, r & 1), 0);
			memset(expect + off, 0, len);
		} else if (r < 80) {
			assert_int_equal(d->ops->flush(d), 0);
		} else {
			qt_read(d, got, off, len);
			qt_assert_same(got, expect + off, len);
		}
	}
	free(buf);
	free(got);
}

/* Writes through Vireo, then asks qemu-img; reads back through Vireo too. */
static void write_and_verify(struct qt *t, const char *img, uint8_t *expect, size_t size,
			     uint64_t seed, int count, uint64_t cache_size)
{
	char err[512] = "";
	struct disk *d = qt_open_cfg(qt_path(t, img), false, DISK_FORMAT_AUTO, cache_size, err,
				     sizeof(err));
	uint8_t *back;

	if (!d)
		fprintf(stderr, "%s\n", err);
	assert_non_null(d);
	random_ops(d, expect, seed, count, 256 * 1024);
	disk_close(d);
	check_clean(t, img);
	compare_with(t, img, expect, size);
	d = qt_open(qt_path(t, img), true);
	back = qt_read_all(d);
	qt_assert_same(back, expect, size);
	free(back);
	disk_close(d);
}

static void test_qcow2_writes_qemu_img_agrees_with(void **state)
{
	struct qt t;

	qt_init(&t);
	for (size_t i = 0; i < NR_VARIANTS; i++) {
		uint8_t *expect = make_variant(&t, i, "w.qcow2");

		write_and_verify(&t, "w.qcow2", expect, variants[i].size, i, 150, 0);
		free(expect);
	}
	qt_fini(&t);
}

/* A fresh, empty image: every write allocates, metadata grows from nothing. */
static void test_qcow2_writes_into_empty_image(void **state)
{
	struct qt t;
	uint8_t *expect = calloc(1, 64u << 20);

	qt_init(&t);
	qt_sh(&t, "qemu-img create -q -f qcow2 e.qcow2 64M");
	write_and_verify(&t, "e.qcow2", expect, 64u << 20, 7, 400, 0);
	free(expect);
	qt_fini(&t);
}

/* 512-byte clusters with 64-bit refcounts: a refcount block covers 32 KiB,
 * the first refcount table 2 MiB; writing 6 MiB grows the table twice. */
static void test_qcow2_grows_refcount_table(void **state)
{
	struct qt t;
	size_t size = 8u << 20;
	uint8_t *expect = calloc(1, size), *buf = malloc(1 << 20);
	struct disk *d;

	qt_init(&t);
	qt_sh(&t, "qemu-img create -q -f qcow2 -o cluster_size=512,refcount_bits=64 g.qcow2 8M");
	d = qt_open(qt_path(&t, "g.qcow2"), false);
	for (uint64_t at = 0; at < 6u << 20; at += 1 << 20) {
		struct iovec iov = { buf, 1 << 20 };

		qt_fill(buf, 1 << 20, at);
		assert_int_equal(d->ops->writev(d, &iov, 1, at), 1 << 20);
		memcpy(expect + at, buf, 1 << 20);
	}
	random_ops(d, expect, 3, 200, 64 * 1024);
	disk_close(d);
	check_clean(&t, "g.qcow2");
	compare_with(&t, "g.qcow2", expect, size);
	qt_sh(&t, "qemu-img info --output=json g.qcow2 | grep -q '\"refcount-bits\": 64'");
	free(expect);
	free(buf);
	qt_fini(&t);
}

/* Caches of four tables each: every few requests evict dirty tables. */
static void test_qcow2_tiny_cache_keeps_order(void **state)
{
	struct qt t;
	uint8_t *expect = calloc(1, 32u << 20);

	qt_init(&t);
	qt_sh(&t, "qemu-img create -q -f qcow2 -o cluster_size=4096 c.qcow2 32M");
	write_and_verify(&t, "c.qcow2", expect, 32u << 20, 11, 300, 1);
	free(expect);
	qt_fini(&t);
}

/*
 * base.raw (3 MiB, shorter than the rest) <- mid.qcow2 (v3, by relative
 * path) <- top.qcow2 (v2), each layer written by qemu-io.
 */
static void make_chain(struct qt *t, uint8_t **expect)
{
	uint8_t *base = qt_mixed_image(3u << 20, 42);
	size_t len;

	qt_sh(t, "mkdir -p sub");
	qt_spit(qt_path(t, "sub/base.raw"), base, 3u << 20);
	qt_sh(t, "qemu-img create -q -f qcow2 -o compat=1.1 -b base.raw -F raw sub/mid.qcow2 %u",
	      IMAGE_SIZE);
	qt_sh(t, "qemu-io -c 'write -P 0x5a 1M 200k' -c 'write -z 2M 64k' "
		 "-c 'write -P 0x6b 3584k 16k' sub/mid.qcow2");
	qt_sh(t, "qemu-img create -q -f qcow2 -o compat=0.10 -b sub/mid.qcow2 -F qcow2 top.qcow2");
	qt_sh(t, "qemu-io -c 'write -P 0x7c 1100k 4k' -c 'write -P 0x11 0 512' top.qcow2");
	*expect = qt_qemu_raw(t, "top.qcow2", &len);
	assert_int_equal(len, IMAGE_SIZE);
	free(base);
}

static void test_qcow2_reads_backing_chain(void **state)
{
	struct qt t;
	uint8_t *expect, *ours, *mid, *view;
	struct disk *d;
	size_t len;

	qt_init(&t);
	make_chain(&t, &expect);
	d = qt_open(qt_path(&t, "top.qcow2"), true);
	ours = qt_read_all(d);
	qt_assert_same(ours, expect, IMAGE_SIZE);
	disk_close(d);
	/* The middle layer alone, and zero clusters hiding the backing file. */
	view = qt_qemu_raw(&t, "sub/mid.qcow2", &len);
	d = qt_open(qt_path(&t, "sub/mid.qcow2"), true);
	mid = qt_read_all(d);
	qt_assert_same(mid, view, IMAGE_SIZE);
	disk_close(d);
	free(view);
	free(mid);
	free(ours);
	free(expect);
	qt_fini(&t);
}

static void test_qcow2_writes_over_backing_chain(void **state)
{
	struct qt t;
	uint8_t *expect;

	qt_init(&t);
	make_chain(&t, &expect);
	/* top is v2 over a backing file: discards write zeroes. */
	write_and_verify(&t, "top.qcow2", expect, IMAGE_SIZE, 5, 200, 0);
	free(expect);
	/* mid is v3 over raw: discards become zero clusters. */
	expect = qt_qemu_raw(&t, "sub/mid.qcow2", &(size_t){ 0 });
	write_and_verify(&t, "sub/mid.qcow2", expect, IMAGE_SIZE, 6, 200, 0);
	free(expect);
	qt_fini(&t);
}

/* A backing file opened for reading holds a shared lock: a writer is refused. */
static void test_qcow2_backing_file_is_read_only_and_shared(void **state)
{
	struct qt t;
	char err[512] = "";
	struct disk *a, *b, *w;
	uint8_t *expect;

	qt_init(&t);
	make_chain(&t, &expect);
	qt_sh(&t, "qemu-img create -q -f qcow2 -b sub/mid.qcow2 -F qcow2 other.qcow2");
	a = qt_open(qt_path(&t, "top.qcow2"), false);
	b = qt_open(qt_path(&t, "other.qcow2"), false); /* shares mid and base */
	w = qt_open_cfg(qt_path(&t, "sub/mid.qcow2"), false, DISK_FORMAT_AUTO, 0, err, sizeof(err));
	assert_null(w);
	assert_non_null(strstr(err, "in use"));
	disk_close(a);
	disk_close(b);
	free(expect);
	qt_fini(&t);
}

/* Clusters shared with an internal snapshot are copied; the snapshot keeps its data. */
static void test_qcow2_snapshot_clusters_copied_on_write(void **state)
{
	struct qt t;
	uint8_t *expect, *snap, *after;
	size_t len;

	qt_init(&t);
	expect = make_variant(&t, 1, "s.qcow2");
	qt_sh(&t, "qemu-img snapshot -c first s.qcow2");
	qt_sh(&t, "qemu-io -c 'write -P 0x33 64k 128k' s.qcow2");
	free(expect);
	expect = qt_qemu_raw(&t, "s.qcow2", &len);
	qt_sh(&t, "qemu-img snapshot -c second s.qcow2");
	write_and_verify(&t, "s.qcow2", expect, IMAGE_SIZE, 9, 200, 0);
	/* The snapshots still hold what they held. */
	qt_sh(&t, "qemu-img convert -l snapshot.name=first -O raw s.qcow2 first.raw");
	snap = qt_slurp(qt_path(&t, "first.raw"), &len);
	after = qt_mixed_image(IMAGE_SIZE, 1);
	qt_assert_same(snap, after, IMAGE_SIZE);
	free(snap);
	free(after);
	qt_sh(&t, "qemu-img snapshot -a first s.qcow2");
	check_clean(&t, "s.qcow2");
	free(expect);
	qt_fini(&t);
}

/* Writing into a compressed cluster allocates a normal one and drops the old reference. */
static void test_qcow2_overwrites_compressed_clusters(void **state)
{
	struct qt t;
	uint8_t *expect, buf[4096];
	struct iovec iov = { buf, sizeof(buf) };
	struct disk *d;

	qt_init(&t);
	expect = make_variant(&t, ZLIB_VARIANT, "c.qcow2");
	d = qt_open(qt_path(&t, "c.qcow2"), false);
	for (uint64_t at = 0; at < IMAGE_SIZE; at += 65536) {
		memset(buf, (int)(at >> 16), sizeof(buf));
		assert_int_equal(d->ops->writev(d, &iov, 1, at + 8192), (ssize_t)sizeof(buf));
		memcpy(expect + at + 8192, buf, sizeof(buf));
	}
	disk_close(d);
	/* No leaks either: every old compressed cluster was given back. */
	check_clean(&t, "c.qcow2");
	compare_with(&t, "c.qcow2", expect, IMAGE_SIZE);
	qt_sh(&t, "qemu-img check c.qcow2 | grep -q '0.00%% compressed'");
	free(expect);
	qt_fini(&t);
}

/* lazy_refcounts, then qemu-io killed: the image is dirty, refcounts missing. */
static void test_qcow2_repairs_dirty_image(void **state)
{
	struct qt t;
	uint8_t *expect;
	struct disk *d;
	size_t len;

	qt_init(&t);
	qt_sh(&t, "qemu-img create -q -f qcow2 -o lazy_refcounts=on,compat=1.1 d.qcow2 4M");
	qt_sh_rc(&t, "qemu-io -c 'write -P 0x11 0 1M' -c 'write -P 0x22 2M 64k' -c 'sigraise 9' "
		     "d.qcow2");
	assert_int_equal(qt_sh_rc(&t, "qemu-img check d.qcow2"), 2); /* corrupt as it stands */
	expect = qt_qemu_raw(&t, "d.qcow2", &len);
	d = qt_open(qt_path(&t, "d.qcow2"), false);
	disk_close(d);
	check_clean(&t, "d.qcow2");
	compare_with(&t, "d.qcow2", expect, len);
	/* The lazy refcounts bit stays as found. */
	qt_sh(&t, "qemu-img info d.qcow2 | grep -q 'lazy refcounts: true'");
	write_and_verify(&t, "d.qcow2", expect, len, 8, 100, 0);
	free(expect);
	qt_fini(&t);
}

static uint64_t get64(const uint8_t *p)
{
	uint64_t v = 0;

	for (int i = 0; i < 8; i++)
		v = v << 8 | p[i];
	return v;
}

static void set64(uint8_t *p, uint64_t v)
{
	for (int i = 0; i < 8; i++)
		p[i] = (uint8_t)(v >> (56 - 8 * i));
}

/* 16-bit refcount of cluster c, through the image's refcount table (64 KiB clusters). */
static uint8_t *refcount_entry(uint8_t *img, uint64_t c)
{
	uint64_t table = get64(img + 48), block = get64(img + table + 8 * (c / 32768));

	assert_true(block != 0);
	return img + block + 2 * (c % 32768);
}

/* The active L2 entry of guest cluster g (the first L2 table covers 512 MiB). */
static uint8_t *l2_entry_of(uint8_t *img, uint64_t g)
{
	uint64_t l1 = get64(img + 40), l2 = get64(img + l1) & 0x00fffffffffffe00ull;

	assert_true(l2 != 0);
	return img + l2 + 8 * g;
}

/* A dirty image whose refcount block is gone altogether: repair builds a new one. */
static void test_qcow2_repair_rebuilds_missing_refcount_block(void **state)
{
	struct qt t;
	uint8_t *img, *expect;
	size_t len, n;
	struct disk *d;

	qt_init(&t);
	qt_sh(&t, "qemu-img create -q -f qcow2 r.qcow2 4M && "
		  "qemu-io -c 'write -P 0x71 0 200k' -c 'write -P 0x72 3M 64k' r.qcow2");
	expect = qt_qemu_raw(&t, "r.qcow2", &len);
	img = qt_slurp(qt_path(&t, "r.qcow2"), &n);
	set64(img + get64(img + 48), 0); /* the refcount table's only entry */
	set64(img + 72, 1);		 /* dirty */
	qt_spit(qt_path(&t, "r.qcow2"), img, n);
	d = qt_open(qt_path(&t, "r.qcow2"), false);
	disk_close(d);
	check_clean(&t, "r.qcow2");
	compare_with(&t, "r.qcow2", expect, len);
	write_and_verify(&t, "r.qcow2", expect, len, 12, 80, 0);
	free(img);
	free(expect);
	qt_fini(&t);
}

/*
 * A dirty image with a snapshot: a shared cluster's refcount too low, an
 * unshared one's too high, a COPIED flag missing. Repair makes all exact,
 * without a leak, and the snapshot keeps its data.
 */
static void test_qcow2_repair_fixes_refcounts_and_copied(void **state)
{
	struct qt t;
	uint8_t *img, *expect, *snap, *snap_after;
	uint64_t shared, own, entry;
	size_t len, n;
	struct disk *d;

	qt_init(&t);
	qt_sh(&t, "qemu-img create -q -f qcow2 r.qcow2 4M && "
		  "qemu-io -c 'write -P 0x31 0 128k' r.qcow2 && qemu-img snapshot -c s r.qcow2 && "
		  "qemu-io -c 'write -P 0x32 64k 64k' r.qcow2");
	expect = qt_qemu_raw(&t, "r.qcow2", &len);
	qt_sh(&t, "qemu-img convert -l snapshot.name=s -O raw r.qcow2 snap.raw");
	snap = qt_slurp(qt_path(&t, "snap.raw"), &n);
	img = qt_slurp(qt_path(&t, "r.qcow2"), &n);
	shared = (get64(l2_entry_of(img, 0)) & 0x00fffffffffffe00ull) / 65536;
	entry = get64(l2_entry_of(img, 1));
	own = (entry & 0x00fffffffffffe00ull) / 65536;
	assert_true(entry >> 63); /* copied on write: ours alone */
	refcount_entry(img, shared)[1] = 1;			/* really 2 */
	refcount_entry(img, own)[1] = 3;			/* really 1 */
	set64(l2_entry_of(img, 1), entry & ~(1ull << 63));	/* COPIED dropped */
	set64(img + 72, 1);					/* dirty */
	qt_spit(qt_path(&t, "r.qcow2"), img, n);
	assert_int_equal(qt_sh_rc(&t, "qemu-img check r.qcow2"), 2);
	d = qt_open(qt_path(&t, "r.qcow2"), false);
	disk_close(d);
	check_clean(&t, "r.qcow2");
	compare_with(&t, "r.qcow2", expect, len);
	qt_sh(&t, "qemu-img convert -l snapshot.name=s -O raw r.qcow2 snap.raw");
	snap_after = qt_slurp(qt_path(&t, "snap.raw"), &n);
	qt_assert_same(snap_after, snap, n);
	write_and_verify(&t, "r.qcow2", expect, len, 13, 80, 0);
	free(snap_after);
	free(snap);
	free(img);
	free(expect);
	qt_fini(&t);
}

/* Header bytes [from, to) of an image file. */
static void read_bytes(struct qt *t, const char *img, uint8_t *out, size_t from, size_t len)
{
	size_t n;
	uint8_t *all = qt_slurp(qt_path(t, img), &n);

	assert_true(n >= from + len);
	memcpy(out, all + from, len);
	free(all);
}

static void poke(struct qt *t, const char *img, size_t at, const void *bytes, size_t len)
{
	int fd = open(qt_path(t, img), O_WRONLY);

	assert_true(fd >= 0);
	assert_int_equal(pwrite(fd, bytes, len, (off_t)at), (ssize_t)len);
	close(fd);
}

static void put64(uint8_t *p, uint64_t v)
{
	for (int i = 0; i < 8; i++)
		p[i] = (uint8_t)(v >> (56 - 8 * i));
}

/*
 * Unknown compatible bits and an unknown header extension survive a
 * read-write session byte for byte; unknown autoclear bits are cleared.
 */
static void test_qcow2_keeps_unknown_bits_and_extensions(void **state)
{
	struct qt t;
	uint8_t before[4096], after[4096], bits[8], ext[24] = { 0x12, 0x34, 0x56, 0x78, 0, 0, 0, 13,
								  'k', 'e', 'e', 'p', ' ', 'm', 'e',
								  ' ', 'a', 's', ' ', 'i', 's' };
	uint8_t *expect;
	struct disk *d;
	size_t end;

	qt_init(&t);
	expect = make_variant(&t, 1, "k.qcow2");
	/* Find the end of the extension area and put ours first (there is room). */
	read_bytes(&t, "k.qcow2", before, 0, sizeof(before));
	end = (size_t)before[100] << 24 | (size_t)before[101] << 16 | (size_t)before[102] << 8 |
	      before[103]; /* header_length: the extensions start there */
	while (before[end] | before[end + 1] | before[end + 2] | before[end + 3]) {
		uint32_t len = (uint32_t)before[end + 4] << 24 | (uint32_t)before[end + 5] << 16 |
			       (uint32_t)before[end + 6] << 8 | before[end + 7];

		end += 8 + ((len + 7) & ~7u);
	}
	size_t hl = (size_t)before[103] | (size_t)before[102] << 8;

	memmove(before + hl + sizeof(ext), before + hl, end - hl);
	memcpy(before + hl, ext, sizeof(ext));
	put64(bits, 1ull << 40 | 1); /* an unknown compatible bit, and lazy refcounts */
	memcpy(before + 80, bits, 8);
	put64(bits, 1ull << 7); /* an unknown autoclear bit */
	memcpy(before + 88, bits, 8);
	poke(&t, "k.qcow2", 0, before, sizeof(before));

	d = qt_open(qt_path(&t, "k.qcow2"), false);
	random_ops(d, expect, 4, 60, 128 * 1024);
	disk_close(d);
	read_bytes(&t, "k.qcow2", after, 0, sizeof(after));
	memset(before + 88, 0, 8); /* the only change: autoclear cleared */
	qt_assert_same(after, before, sizeof(after));
	check_clean(&t, "k.qcow2");
	compare_with(&t, "k.qcow2", expect, IMAGE_SIZE);
	free(expect);
	qt_fini(&t);
}

static void test_qcow2_corrupt_image_opens_read_only(void **state)
{
	struct qt t;
	uint8_t bits[8];
	struct disk *d;

	qt_init(&t);
	qt_sh(&t, "qemu-img create -q -f qcow2 x.qcow2 1M");
	put64(bits, 2); /* the corrupt bit */
	poke(&t, "x.qcow2", 72, bits, 8);
	d = qt_open(qt_path(&t, "x.qcow2"), false);
	assert_true(d->readonly);
	disk_close(d);
	qt_fini(&t);
}

static void expect_refused(struct qt *t, const char *img, const char *message)
{
	char err[512] = "";
	struct disk *d = qt_open_cfg(qt_path(t, img), false, DISK_FORMAT_AUTO, 0, err, sizeof(err));

	assert_null(d);
	if (!strstr(err, message))
		fprintf(stderr, "got: %s\nwanted: %s\n", err, message);
	assert_non_null(strstr(err, message));
}

static void test_qcow2_refuses_unknown_incompatible_features(void **state)
{
	struct qt t;
	uint8_t bits[8];

	qt_init(&t);
	qt_sh(&t, "qemu-img create -q -f qcow2 -o extended_l2=on e.qcow2 1M");
	expect_refused(&t, "e.qcow2", "disk '");
	expect_refused(&t, "e.qcow2",
		       "e.qcow2': unknown incompatible feature 'extended L2 entries'");
	qt_sh(&t, "qemu-img create -q -f qcow2 -o data_file=d.data d.qcow2 1M");
	expect_refused(&t, "d.qcow2", "unknown incompatible feature 'external data file'");
	qt_sh(&t, "qemu-img create -q -f qcow2 u.qcow2 1M");
	put64(bits, 1ull << 9);
	poke(&t, "u.qcow2", 72, bits, 8);
	expect_refused(&t, "u.qcow2", "unknown incompatible feature 'bit 9'");
	qt_fini(&t);
}

/* format=raw reads the qcow2 file's bytes; format=qcow2 refuses a raw file. */
static void test_qcow2_stated_format_is_never_guessed(void **state)
{
	struct qt t;
	char err[512] = "";
	uint8_t head[8];
	struct disk *d;

	qt_init(&t);
	qt_sh(&t, "qemu-img create -q -f qcow2 f.qcow2 1M && truncate -s 256K f.qcow2 && "
		  "truncate -s 1M plain.raw");
	d = qt_open_cfg(qt_path(&t, "f.qcow2"), true, DISK_FORMAT_RAW, 0, err, sizeof(err));
	assert_non_null(d);
	qt_read(d, head, 0, 8);
	assert_memory_equal(head, "QFI\xfb", 4);
	disk_close(d);
	d = qt_open_cfg(qt_path(&t, "plain.raw"), true, DISK_FORMAT_QCOW2, 0, err, sizeof(err));
	assert_null(d);
	assert_non_null(strstr(err, "not a qcow2 image"));
	d = qt_open_cfg(qt_path(&t, "f.qcow2"), true, DISK_FORMAT_QCOW2, 0, err, sizeof(err));
	assert_non_null(d);
	assert_int_equal(d->size, 1u << 20);
	disk_close(d);
	qt_fini(&t);
}

struct writer {
	struct disk *disk;
	uint64_t offset;
	uint8_t byte;
};

static void *writer_run(void *arg)
{
	struct writer *w = arg;
	uint8_t buf[512];
	struct iovec iov = { buf, sizeof(buf) };

	memset(buf, w->byte, sizeof(buf));
	for (int round = 0; round < 50; round++) {
		uint64_t at = w->offset + (uint64_t)round * 65536 * 3;

		if (w->disk->ops->writev(w->disk, &iov, 1, at) != (ssize_t)sizeof(buf))
			return (void *)1;
	}
	return NULL;
}

/* Threads writing different sectors of the same unallocated clusters: all land. */
static void test_qcow2_concurrent_writes_to_one_cluster(void **state)
{
	struct qt t;
	struct writer w[4];
	pthread_t th[4];
	uint8_t *expect = calloc(1, 16u << 20);
	struct disk *d;

	qt_init(&t);
	qt_sh(&t, "qemu-img create -q -f qcow2 p.qcow2 16M");
	d = qt_open(qt_path(&t, "p.qcow2"), false);
	for (int i = 0; i < 4; i++) {
		w[i] = (struct writer){ d, (uint64_t)i * 512 * 7, (uint8_t)(0x41 + i) };
		assert_int_equal(pthread_create(&th[i], NULL, writer_run, &w[i]), 0);
	}
	for (int i = 0; i < 4; i++) {
		void *rc;

		assert_int_equal(pthread_join(th[i], &rc), 0);
		assert_null(rc);
		for (int round = 0; round < 50; round++)
			memset(expect + w[i].offset + (uint64_t)round * 65536 * 3, w[i].byte, 512);
	}
	disk_close(d);
	check_clean(&t, "p.qcow2");
	compare_with(&t, "p.qcow2", expect, 16u << 20);
	free(expect);
	qt_fini(&t);
}

/* ---- many requests in flight through the io_uring engine ---- */

#define BATCH 32

struct engine_req {
	struct disk_io io; /* first: done() gets it back */
	struct iovec iov[2];
	uint8_t *buf;
	uint64_t len;
	ssize_t result;
	bool done;
};

struct engine_counts {
	unsigned int ring;   /* done() ran later, from disk_reap(): the ring took it */
	unsigned int at_once; /* done() ran inside disk_submit(): the format's own code */
};

static void engine_req_done(struct disk_io *io, ssize_t result)
{
	struct engine_req *r = (struct engine_req *)io;

	r->result = result;
	r->done = true;
}

/* A random range of whole sectors that overlaps none of the batch's first n. */
static bool pick_range(const struct engine_req *batch, int n, uint64_t size, uint64_t *s,
		       uint64_t *off, uint64_t *len)
{
	*off = (qt_rand(s) % (size / 512)) * 512;
	*len = (1 + qt_rand(s) % 256) * 512;
	if (*len > size - *off)
		*len = size - *off;
	for (int i = 0; i < n; i++)
		if (batch[i].len && *off < batch[i].io.offset + batch[i].len &&
		    batch[i].io.offset < *off + *len)
			return false;
	return true;
}

/* Submits one request of the batch: a write (filled from s), a read, or a flush. */
static void engine_start(struct disk *d, struct engine_req *r, enum disk_io_op op, uint64_t off,
			 uint64_t len, uint64_t *s, uint8_t *expect, struct engine_counts *counts)
{
	uint64_t cut = len ? qt_rand(s) % len : 0;

	r->buf = malloc(len ? len : 1);
	assert_non_null(r->buf);
	r->len = len;
	r->done = false;
	r->iov[0] = (struct iovec){ r->buf, cut };
	r->iov[1] = (struct iovec){ r->buf + cut, len - cut };
	r->io = (struct disk_io){ .op = op, .iov = r->iov, .nr_iov = 2, .offset = off,
				  .done = engine_req_done };
	if (op == DISK_IO_WRITE) {
		qt_fill(r->buf, len, *s);
		memcpy(expect + off, r->buf, len);
	}
	disk_submit(d, &r->io);
	if (r->done)
		counts->at_once++;
	else
		counts->ring++;
}

/* A discard or write-zeroes in the middle of a batch, as virtio-blk does it. */
static void engine_zero(struct disk *d, uint64_t off, uint64_t len, bool discard, uint8_t *expect)
{
	disk_quiesce(d);
	assert_int_equal(discard ? d->ops->discard(d, off, len)
				 : d->ops->write_zeroes(d, off, len, false), 0);
	memset(expect + off, 0, len);
}

/*
 * Batches of requests on disjoint ranges in flight together (writes, reads,
 * flushes; discards and zeroes between them), then each batch drained and
 * its reads checked against expect, which mirrors every change.
 */
static void engine_ops(struct disk *d, uint8_t *expect, uint64_t seed, int batches,
		       struct engine_counts *counts)
{
	uint64_t s = seed * 2654435761u + 5;

	for (int b = 0; b < batches; b++) {
		struct engine_req batch[BATCH] = { 0 };
		int n = 0;

		for (int tries = 0; tries < BATCH; tries++) {
			uint64_t r = qt_rand(&s) % 100, off, len;

			if (!pick_range(batch, n, d->size, &s, &off, &len))
				continue;
			if (r < 6)
				engine_zero(d, off, len, r & 1, expect);
			else if (r < 9)
				engine_start(d, &batch[n++], DISK_IO_FLUSH, 0, 0, &s, expect, counts);
			else
				engine_start(d, &batch[n++], r < 45 ? DISK_IO_WRITE : DISK_IO_READ,
					     off, len, &s, expect, counts);
		}
		disk_drain(d);
		for (int i = 0; i < n; i++) {
			assert_true(batch[i].done);
			assert_int_equal(batch[i].result, (ssize_t)batch[i].len);
			if (batch[i].io.op == DISK_IO_READ)
				qt_assert_same(batch[i].buf, expect + batch[i].io.offset,
					       batch[i].len);
			free(batch[i].buf);
		}
	}
}

/* Opens img read-write with the io_uring engine; NULL where the host refuses io_uring. */
static struct disk *open_with_ring(struct qt *t, const char *img)
{
	struct disk *d = qt_open(qt_path(t, img), false);

	disk_engine_start(d, DISK_ENGINE_IO_URING, DISK_ENGINE_DEPTH);
	if (!d->uring)
		disk_close(d);
	return d->uring ? d : NULL;
}

static void engine_and_verify(struct qt *t, const char *img, uint8_t *expect, size_t size,
			      uint64_t seed)
{
	struct engine_counts counts = { 0 };
	struct disk *d = open_with_ring(t, img);
	uint8_t *back;

	if (!d)
		skip(); /* io_uring is not available here */
	engine_ops(d, expect, seed, 40, &counts);
	disk_close(d);
	check_clean(t, img);
	compare_with(t, img, expect, size);
	/* Both paths ran: mapped transfers on the ring, metadata work at once. */
	assert_true(counts.ring > 0);
	assert_true(counts.at_once > 0);
	d = qt_open(qt_path(t, img), true);
	back = qt_read_all(d);
	qt_assert_same(back, expect, size);
	free(back);
	disk_close(d);
}

static void test_qcow2_engine_keeps_requests_in_flight(void **state)
{
	struct qt t;
	uint8_t *expect = calloc(1, 16u << 20);

	qt_init(&t);
	qt_sh(&t, "qemu-img create -q -f qcow2 r.qcow2 16M");
	engine_and_verify(&t, "r.qcow2", expect, 16u << 20, 1);
	free(expect);
	for (size_t i = 0; i < NR_VARIANTS; i += 3) {
		expect = make_variant(&t, i, "v.qcow2");
		engine_and_verify(&t, "v.qcow2", expect, variants[i].size, i);
		free(expect);
	}
	qt_fini(&t);
}

/* Reads that fall through to a qcow2 and a raw backing file go to the ring too. */
static void test_qcow2_engine_reads_backing_chain(void **state)
{
	struct qt t;
	uint8_t *expect;

	qt_init(&t);
	make_chain(&t, &expect);
	engine_and_verify(&t, "top.qcow2", expect, IMAGE_SIZE, 9);
	free(expect);
	qt_fini(&t);
}

/*
 * A data cluster that ends past the end of the file (qemu-img leaves the
 * last one short when it may): the ring's read comes back short and is
 * finished with zeroes, as the format's own read gives.
 */
static void test_qcow2_engine_reads_zeroes_past_end_of_file(void **state)
{
	static uint8_t buf[65536];
	struct qt t;
	struct disk *d;

	qt_init(&t);
	qt_sh(&t, "qemu-img create -q -f qcow2 s.qcow2 1M && "
		  "qemu-io -c 'write -P 0x5a 0 4k' s.qcow2 >/dev/null && "
		  "truncate -s $(( $(stat -c %%s s.qcow2) - 61440 )) s.qcow2");
	d = open_with_ring(&t, "s.qcow2");
	if (!d)
		skip(); /* io_uring is not available here */
	/* The first read loads the L2 table (at once); the second goes to the ring. */
	for (int pass = 0; pass < 2; pass++) {
		struct engine_req r = { .iov = { { buf, sizeof(buf) } } };

		memset(buf, 0xee, sizeof(buf));
		r.io = (struct disk_io){ .op = DISK_IO_READ, .iov = r.iov, .nr_iov = 1,
					 .done = engine_req_done };
		disk_submit(d, &r.io);
		assert_int_equal(r.done, pass == 0);
		disk_drain(d);
		assert_int_equal(r.result, (ssize_t)sizeof(buf));
		for (size_t i = 0; i < sizeof(buf); i++)
			assert_int_equal(buf[i], i < 4096 ? 0x5a : 0);
	}
	disk_close(d);
	qt_fini(&t);
}

int main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(test_qcow2_reads_what_qemu_img_writes),
		cmocka_unit_test(test_qcow2_writes_qemu_img_agrees_with),
		cmocka_unit_test(test_qcow2_writes_into_empty_image),
		cmocka_unit_test(test_qcow2_grows_refcount_table),
		cmocka_unit_test(test_qcow2_tiny_cache_keeps_order),
		cmocka_unit_test(test_qcow2_reads_backing_chain),
		cmocka_unit_test(test_qcow2_writes_over_backing_chain),
		cmocka_unit_test(test_qcow2_backing_file_is_read_only_and_shared),
		cmocka_unit_test(test_qcow2_snapshot_clusters_copied_on_write),
		cmocka_unit_test(test_qcow2_overwrites_compressed_clusters),
		cmocka_unit_test(test_qcow2_repairs_dirty_image),
		cmocka_unit_test(test_qcow2_repair_rebuilds_missing_refcount_block),
		cmocka_unit_test(test_qcow2_repair_fixes_refcounts_and_copied),
		cmocka_unit_test(test_qcow2_keeps_unknown_bits_and_extensions),
		cmocka_unit_test(test_qcow2_corrupt_image_opens_read_only),
		cmocka_unit_test(test_qcow2_refuses_unknown_incompatible_features),
		cmocka_unit_test(test_qcow2_stated_format_is_never_guessed),
		cmocka_unit_test(test_qcow2_concurrent_writes_to_one_cluster),
		cmocka_unit_test(test_qcow2_engine_keeps_requests_in_flight),
		cmocka_unit_test(test_qcow2_engine_reads_backing_chain),
		cmocka_unit_test(test_qcow2_engine_reads_zeroes_past_end_of_file),
	};

	return cmocka_run_group_tests(tests, make_variants, remove_variants);
}
