/*
 * cache=none (O_DIRECT) with guest buffers that are not aligned: the bytes
 * go through a bounce buffer, and that buffer is bounded whatever the
 * request's length (IMAGE_FILE_BOUNCE_MAX), so one request with aliased
 * buffers cannot make the VMM allocate as much as the request is long.
 * Through disk_open() on qcow2 images (qcow2 moves its data through
 * struct image_file, where the bounce lives), in a directory whose
 * filesystem takes O_DIRECT: tmpfs may not, so the test looks for one.
 */
#include "test_qcow2_util.h"

#include "disk/image_file.h"

#define MIB (1u << 20)
#define BIG_REQUEST (64 * MIB)
#define RSS_GROWTH_MAX (8 * MIB) /* a few bounce buffers; the old bounce took 64 MiB */

_Static_assert(4 * IMAGE_FILE_BOUNCE_MAX <= RSS_GROWTH_MAX, "room for the bounce buffer");

/* A scratch directory on a filesystem that takes O_DIRECT, or false. */
static bool direct_scratch(struct qt *t)
{
	const char *bases[] = { getenv("TMPDIR"), "/var/tmp", "/tmp", "/dev/shm" };

	for (size_t i = 0; i < sizeof(bases) / sizeof(bases[0]); i++) {
		int fd;

		if (!bases[i])
			continue;
		snprintf(t->dir, sizeof(t->dir), "%s/vireo-direct-XXXXXX", bases[i]);
		if (!mkdtemp(t->dir))
			continue;
		snprintf(t->log, sizeof(t->log), "%s/cmd.log", t->dir);
		fd = open(qt_path(t, "probe"), O_RDWR | O_CREAT | O_DIRECT, 0600);
		if (fd >= 0) {
			close(fd);
			return true;
		}
		qt_fini(t);
	}
	return false;
}

static struct disk *open_direct(struct qt *t, const char *img)
{
	struct disk_config cfg = {
		.path = qt_path(t, img),
		.cache = DISK_CACHE_NONE,
		.engine = DISK_ENGINE_SYNC,
	};
	char err[512] = "";
	struct disk *d = disk_open(&cfg, err, sizeof(err));

	if (!d)
		fprintf(stderr, "open failed: %s\n", err);
	assert_non_null(d);
	return d;
}

#define SKIP_WITHOUT_DIRECT(t)                                                                 \
	do {                                                                                   \
		if (!direct_scratch(t)) {                                                      \
			fprintf(stderr, "# skipped: no filesystem here takes O_DIRECT\n");     \
			skip();                                                                \
		}                                                                              \
	} while (0)

/* Unaligned buffers, offset and length, spanning several bounce chunks: every byte lands. */
static void test_direct_unaligned_transfers_move_every_byte(void **state)
{
	const size_t len = 3 * MIB + 5 * 512;
	const uint64_t offset = 3 * 512;
	uint8_t *src = malloc(len + 1), *dst = malloc(len + 3), *view;
	struct iovec out[3] = {
		{ src + 1, 1000 }, { src + 1 + 1000, MIB + 24 }, { src + 1 + 1000 + MIB + 24, 0 },
	};
	struct iovec in[2] = { { dst + 3, 777 }, { dst + 3 + 777, len - 777 } };
	struct disk *d;
	struct qt t;

	SKIP_WITHOUT_DIRECT(&t);
	assert_non_null(src);
	assert_non_null(dst);
	out[2].iov_len = len - out[0].iov_len - out[1].iov_len;
	qt_fill(src + 1, len, 11);
	qt_sh(&t, "qemu-img create -q -f qcow2 -o preallocation=metadata d.qcow2 8M");
	d = open_direct(&t, "d.qcow2");
	assert_int_equal(d->ops->writev(d, out, 3, offset), (ssize_t)len);
	assert_int_equal(d->ops->readv(d, in, 2, offset), (ssize_t)len);
	qt_assert_same(dst + 3, src + 1, len);
	disk_close(d);
	/* What qemu-img reads, past the O_DIRECT path altogether. */
	view = qt_qemu_raw(&t, "d.qcow2", &(size_t){ 0 });
	qt_assert_same(view + offset, src + 1, len);
	assert_int_equal(view[offset - 1] | view[offset + len], 0);
	free(view);
	free(src);
	free(dst);
	qt_fini(&t);
}

/* kB from a "Name:  123 kB" line of /proc/self/status, or -1. */
static long status_kb(const char *name)
{
	FILE *f = fopen("/proc/self/status", "r");
	char line[256];
	long kb = -1;

	assert_non_null(f);
	while (fgets(line, sizeof(line), f))
		if (strncmp(line, name, strlen(name)) == 0)
			kb = strtol(line + strlen(name), NULL, 10);
	fclose(f);
	return kb;
}

/* Makes the peak resident size the current one (Linux 4.0 and later); false if not. */
static bool reset_peak_rss(void)
{
	int fd = open("/proc/self/clear_refs", O_WRONLY);
	bool ok = fd >= 0 && write(fd, "5", 1) == 1;

	if (fd >= 0)
		close(fd);
	return ok;
}

/*
 * 64 MiB in 64 unaligned buffers that all alias one 1 MiB region, written
 * then read back: the process's peak resident size grows by a few bounce
 * buffers, not by the request's length.
 */
static void test_direct_unaligned_request_bounces_in_bounded_memory(void **state)
{
	uint8_t *region = malloc(MIB + 1), *pattern = malloc(MIB);
	struct iovec iov[BIG_REQUEST / MIB];
	long before, peak;
	struct disk *d;
	struct qt t;

	SKIP_WITHOUT_DIRECT(&t);
	assert_non_null(region);
	assert_non_null(pattern);
	qt_fill(pattern, MIB, 5);
	memcpy(region + 1, pattern, MIB);
	for (size_t i = 0; i < sizeof(iov) / sizeof(iov[0]); i++)
		iov[i] = (struct iovec){ region + 1, MIB };
	qt_sh(&t, "qemu-img create -q -f qcow2 -o preallocation=falloc d.qcow2 %u", BIG_REQUEST);
	d = open_direct(&t, "d.qcow2");
	if (!reset_peak_rss()) {
		fprintf(stderr, "# skipped: /proc/self/clear_refs cannot reset the peak RSS\n");
		disk_close(d);
		qt_fini(&t);
		skip();
	}
	before = status_kb("VmRSS:");
	assert_int_equal(d->ops->writev(d, iov, (int)(sizeof(iov) / sizeof(iov[0])), 0),
			 BIG_REQUEST);
	memset(region, 0, MIB + 1);
	assert_int_equal(d->ops->readv(d, iov, (int)(sizeof(iov) / sizeof(iov[0])), 0),
			 BIG_REQUEST);
	peak = status_kb("VmHWM:");
	assert_true(before > 0 && peak > 0);
	if ((peak - before) * 1024 >= RSS_GROWTH_MAX)
		fprintf(stderr, "peak RSS grew by %ld kB during one request\n", peak - before);
	assert_true((peak - before) * 1024 < RSS_GROWTH_MAX);
	assert_memory_equal(region + 1, pattern, MIB);
	disk_close(d);
	free(region);
	free(pattern);
	qt_fini(&t);
}

int main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(test_direct_unaligned_transfers_move_every_byte),
		cmocka_unit_test(test_direct_unaligned_request_bounces_in_bounded_memory),
	};

	return cmocka_run_group_tests(tests, NULL, NULL);
}
