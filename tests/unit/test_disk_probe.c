/*
 * A raw image whose format was probed (no format=) stays raw: the guest
 * may write anything to it except what would make the next open probe it
 * as another format (a qcow2 header at sector 0 would hand the guest a
 * backing file of its choosing). Whole headers, the magic written in
 * pieces or across buffers, writes through the io_uring engine: all
 * refused, with one line saying why. Ordinary writes to sector 0 and
 * elsewhere go through, and format=raw allows the header.
 */
#include "test_qcow2_util.h"
#include "recorded_io.h"

#define RAW_SIZE (1u << 20)

struct probe_test {
	struct qt t;
	uint8_t header[512]; /* sector 0 of a qcow2 image qemu-img made */
	const char *raw;     /* a raw image of zeroes */
};

static struct probe_test *probe_setup(void)
{
	struct probe_test *p = calloc(1, sizeof(*p));
	uint8_t *img;
	size_t len;

	assert_non_null(p);
	qt_init(&p->t);
	qt_sh(&p->t, "qemu-img create -q -f qcow2 h.qcow2 1M && truncate -s %u r.raw", RAW_SIZE);
	img = qt_slurp(qt_path(&p->t, "h.qcow2"), &len);
	memcpy(p->header, img, sizeof(p->header));
	free(img);
	p->raw = qt_path(&p->t, "r.raw");
	return p;
}

static void probe_teardown(struct probe_test *p)
{
	qt_fini(&p->t);
	free(p);
}

static ssize_t write_at(struct disk *d, const void *buf, size_t len, uint64_t offset)
{
	struct iovec iov = { (void *)buf, len };

	return d->ops->writev(d, &iov, 1, offset);
}

/* The raw image's first bytes on the host, and that a fresh open still takes it for raw. */
static void assert_still_raw(struct probe_test *p, const void *head, size_t len)
{
	uint8_t *img;
	struct disk *d;
	size_t size;

	img = qt_slurp(p->raw, &size);
	assert_int_equal(size, RAW_SIZE);
	assert_memory_equal(img, head, len);
	free(img);
	d = qt_open(p->raw, true);
	assert_true(d->passthrough); /* raw: guest offsets are file offsets */
	disk_close(d);
}

static void test_probed_raw_refuses_qcow2_header_at_sector_0(void **state)
{
	struct probe_test *p = probe_setup();
	static const uint8_t zeroes[512];
	struct disk *d = qt_open(p->raw, false);
	uint8_t *big = calloc(1, 8192);

	assert_non_null(big);
	assert_true(write_at(d, p->header, sizeof(p->header), 0) < 0);
	/* Sector 0 inside a longer write, too. */
	memcpy(big, p->header, sizeof(p->header));
	assert_true(write_at(d, big, 8192, 0) < 0);
	free(big);
	disk_close(d);
	assert_still_raw(p, zeroes, sizeof(zeroes));
	probe_teardown(p);
}

/* The magic completed by a write that covers only part of it, or split across buffers. */
static void test_probed_raw_refuses_partial_qcow2_magic(void **state)
{
	struct probe_test *p = probe_setup();
	static const uint8_t tail[4] = { 0, 0, 0, 0xfb }, head[4] = { 'Q', 0, 0, 0 };
	struct disk *d = qt_open(p->raw, false);
	uint8_t sector[512] = { 'Q', 'F', 'I', 0xfb };
	struct iovec split[2] = { { sector, 2 }, { sector + 2, sizeof(sector) - 2 } };

	/* Byte 3 first (harmless alone), then the rest of the magic. */
	assert_int_equal(write_at(d, tail, sizeof(tail), 0), sizeof(tail));
	assert_true(write_at(d, "QFI", 3, 0) < 0);
	/* Byte 0 first, then bytes 1-3. */
	assert_int_equal(write_at(d, head, sizeof(head), 0), sizeof(head));
	assert_true(write_at(d, "FI\xfb", 3, 1) < 0);
	/* The whole magic, its bytes in two of the guest's buffers. */
	assert_true(d->ops->writev(d, split, 2, 0) < 0);
	disk_close(d);
	assert_still_raw(p, head, sizeof(head));
	probe_teardown(p);
}

/* A write through the engine, as virtio-blk sends it; waits for the result. */
static ssize_t submit_write(struct disk *d, const void *buf, size_t len, uint64_t offset)
{
	struct iovec iov = { (void *)buf, len };
	struct recorded_io s = {
		.io = { .op = DISK_IO_WRITE, .iov = &iov, .nr_iov = 1, .offset = offset,
			.done = recorded_io_done },
	};

	disk_submit(d, &s.io);
	disk_drain(d);
	assert_true(s.done);
	return s.result;
}

static void test_probed_raw_refuses_qcow2_header_through_io_uring(void **state)
{
	struct probe_test *p = probe_setup();
	static const uint8_t zeroes[512];
	struct disk *d = qt_open(p->raw, false);
	uint8_t data[4096];

	disk_engine_start(d, DISK_ENGINE_IO_URING, 8);
	if (!d->uring)
		fprintf(stderr, "# no io_uring here: the sync engine carries the requests\n");
	assert_true(submit_write(d, p->header, sizeof(p->header), 0) < 0);
	memset(data, 0x5a, sizeof(data));
	assert_int_equal(submit_write(d, data, sizeof(data), 8192), sizeof(data));
	disk_close(d);
	assert_still_raw(p, zeroes, sizeof(zeroes));
	probe_teardown(p);
}

static void test_probed_raw_accepts_ordinary_writes(void **state)
{
	struct probe_test *p = probe_setup();
	struct disk *d = qt_open(p->raw, false);
	uint8_t mbr[512], back[512];

	qt_fill(mbr, sizeof(mbr), 7);
	mbr[510] = 0x55;
	mbr[511] = 0xaa;
	assert_int_equal(write_at(d, mbr, sizeof(mbr), 0), sizeof(mbr));
	/* A qcow2 header past the bytes probing reads is only data. */
	assert_int_equal(write_at(d, p->header, sizeof(p->header), 4096), sizeof(p->header));
	qt_read(d, back, 0, sizeof(back));
	assert_memory_equal(back, mbr, sizeof(mbr));
	qt_read(d, back, 4096, sizeof(back));
	assert_memory_equal(back, p->header, sizeof(p->header));
	/* Zeroes never look like a format. */
	assert_int_equal(d->ops->write_zeroes(d, 0, 4096, false), 0);
	assert_int_equal(d->ops->discard(d, 0, 4096), 0);
	qt_read(d, back, 0, sizeof(back));
	assert_int_equal(back[0] | back[510] | back[511], 0);
	disk_close(d);
	probe_teardown(p);
}

/* format=raw: the user said what the image is, so nothing is guessed and nothing refused. */
static void test_named_raw_accepts_qcow2_header(void **state)
{
	struct probe_test *p = probe_setup();
	struct disk *d = qt_open_as(p->raw, false, DISK_FORMAT_RAW);
	uint8_t *img;
	size_t len;

	assert_int_equal(write_at(d, p->header, sizeof(p->header), 0), sizeof(p->header));
	disk_close(d);
	img = qt_slurp(p->raw, &len);
	assert_memory_equal(img, p->header, sizeof(p->header));
	free(img);
	probe_teardown(p);
}

/* Runs fn with stderr going to a file; returns what it printed (malloc'd). */
static char *capture_stderr(struct probe_test *p, void (*fn)(struct probe_test *p))
{
	const char *path = qt_path(&p->t, "stderr.txt");
	int saved = dup(2), fd = open(path, O_WRONLY | O_CREAT | O_TRUNC, 0600);
	uint8_t *text;
	size_t len;

	assert_true(saved >= 0 && fd >= 0);
	fflush(stderr);
	dup2(fd, 2);
	close(fd);
	fn(p);
	fflush(stderr);
	dup2(saved, 2);
	close(saved);
	text = qt_slurp(path, &len);
	text = realloc(text, len + 1);
	assert_non_null(text);
	text[len] = '\0';
	return (char *)text;
}

static void open_and_write_header_twice(struct probe_test *p)
{
	struct disk *d = qt_open(p->raw, false);

	assert_true(write_at(d, p->header, sizeof(p->header), 0) < 0);
	assert_true(write_at(d, p->header, sizeof(p->header), 0) < 0);
	disk_close(d);
}

static int count_lines_with(const char *text, const char *needle)
{
	int count = 0;

	for (const char *line = text; *line; line = strchr(line, '\n') + 1) {
		const char *end = strchr(line, '\n');
		const char *hit = strstr(line, needle);

		if (hit && (!end || hit < end))
			count++;
		if (!end)
			break;
	}
	return count;
}

static void test_probed_raw_says_why_once(void **state)
{
	struct probe_test *p = probe_setup();
	char *text = capture_stderr(p, open_and_write_header_twice);

	fprintf(stderr, "%s", text);
	/* At open: the format was guessed, and how to say it. */
	assert_int_equal(count_lines_with(text, "no format given and the image looks raw"), 1);
	assert_int_equal(count_lines_with(text, "give format=raw"), 2);
	/* The refusals: one line naming the disk and the format it would have become. */
	assert_int_equal(count_lines_with(text, "refused a write that would make the image look "
						"like qcow2"), 1);
	assert_non_null(strstr(text, "vireo: disk '"));
	assert_non_null(strstr(text, "r.raw'"));
	free(text);
	probe_teardown(p);
}

int main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(test_probed_raw_refuses_qcow2_header_at_sector_0),
		cmocka_unit_test(test_probed_raw_refuses_partial_qcow2_magic),
		cmocka_unit_test(test_probed_raw_refuses_qcow2_header_through_io_uring),
		cmocka_unit_test(test_probed_raw_accepts_ordinary_writes),
		cmocka_unit_test(test_named_raw_accepts_qcow2_header),
		cmocka_unit_test(test_probed_raw_says_why_once),
	};

	return cmocka_run_group_tests(tests, NULL, NULL);
}
