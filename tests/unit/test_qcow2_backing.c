/*
 * The backing-name policy (backing_open() in src/disk/qcow2_open.c): a
 * backing file must be a regular file. A character device, a block device,
 * a FIFO (whose open would block), a socket and a directory are refused
 * with one sentence naming the backing name, the image that names it, and
 * what the file is. A relative name resolves against the directory of the
 * image that names it, not the current directory.
 */
#include <sys/socket.h>
#include <sys/un.h>

#include "test_qcow2_util.h"

#define OPEN_DEADLINE 20 /* seconds: an open that blocks (on a FIFO) fails the test */

/* top.qcow2 in t's directory naming backing, which need not exist as a file yet. */
static void make_top(struct qt *t, const char *img, const char *backing)
{
	qt_sh(t, "qemu-img create -q -f qcow2 -u -b '%s' -F raw '%s' 1M", backing, img);
}

/* Opening img is refused with a sentence holding each of the parts. */
static void expect_refused(struct qt *t, const char *img, const char *const *parts)
{
	char err[768] = "";
	struct disk *d;

	alarm(OPEN_DEADLINE);
	d = qt_open_cfg(qt_path(t, img), true, DISK_FORMAT_AUTO, 0, err, sizeof(err));
	alarm(0);
	if (d)
		disk_close(d);
	assert_null(d);
	for (; *parts; parts++) {
		if (!strstr(err, *parts))
			fprintf(stderr, "got: %s\nwanted: %s\n", err, *parts);
		assert_non_null(strstr(err, *parts));
	}
}

static void test_qcow2_refuses_character_device_backing_file(void **state)
{
	struct qt t;
	char named[300];

	qt_init(&t);
	make_top(&t, "top.qcow2", "/dev/null");
	snprintf(named, sizeof(named), "backing file '/dev/null' named by '%s'",
		 qt_path(&t, "top.qcow2"));
	expect_refused(&t, "top.qcow2", (const char *const[]){
		named, "'/dev/null' is a character device; backing files must be regular files",
		NULL });
	/* Deeper in the chain, the sentence names the image that names it. */
	qt_sh(&t, "mkdir sub && mv top.qcow2 sub/mid.qcow2 && "
		  "qemu-img create -q -f qcow2 -u -b sub/mid.qcow2 -F qcow2 top.qcow2 1M");
	snprintf(named, sizeof(named), "backing file '/dev/null' named by '%s'",
		 qt_path(&t, "sub/mid.qcow2"));
	expect_refused(&t, "top.qcow2", (const char *const[]){ named, NULL });
	qt_fini(&t);
}

/* The first block device this host lets us open, or NULL. */
static const char *some_block_device(void)
{
	static const char *const candidates[] = { "/dev/loop0", "/dev/vda", "/dev/sda",
						  "/dev/nvme0n1", "/dev/xvda" };
	struct stat st;

	for (size_t i = 0; i < sizeof(candidates) / sizeof(candidates[0]); i++) {
		int fd = open(candidates[i], O_RDONLY | O_NONBLOCK | O_CLOEXEC);

		if (fd < 0)
			continue;
		if (fstat(fd, &st) == 0 && S_ISBLK(st.st_mode)) {
			close(fd);
			return candidates[i];
		}
		close(fd);
	}
	return NULL;
}

static void test_qcow2_refuses_block_device_backing_file(void **state)
{
	const char *dev = some_block_device();
	char what[128];
	struct qt t;

	if (!dev) {
		fprintf(stderr, "# skipped: no block device can be opened here\n");
		skip();
	}
	qt_init(&t);
	make_top(&t, "top.qcow2", dev);
	snprintf(what, sizeof(what), "'%s' is a block device", dev);
	expect_refused(&t, "top.qcow2", (const char *const[]){ what, NULL });
	qt_fini(&t);
}

static void test_qcow2_refuses_fifo_backing_file(void **state)
{
	struct qt t;

	qt_init(&t);
	assert_int_equal(mkfifo(qt_path(&t, "fifo"), 0600), 0);
	make_top(&t, "top.qcow2", "fifo");
	expect_refused(&t, "top.qcow2", (const char *const[]){
		"backing file 'fifo' named by ", "is a FIFO; backing files must be regular files",
		NULL });
	qt_fini(&t);
}

static void test_qcow2_refuses_socket_backing_file(void **state)
{
	struct sockaddr_un addr = { .sun_family = AF_UNIX };
	struct qt t;
	int fd;

	qt_init(&t);
	snprintf(addr.sun_path, sizeof(addr.sun_path), "%s", qt_path(&t, "sock"));
	fd = socket(AF_UNIX, SOCK_STREAM, 0);
	assert_true(fd >= 0);
	assert_int_equal(bind(fd, (struct sockaddr *)&addr, sizeof(addr)), 0);
	make_top(&t, "top.qcow2", "sock");
	expect_refused(&t, "top.qcow2", (const char *const[]){
		"backing file 'sock' named by ", "is a socket; backing files must be regular files",
		NULL });
	close(fd);
	qt_fini(&t);
}

static void test_qcow2_refuses_directory_backing_file(void **state)
{
	struct qt t;

	qt_init(&t);
	qt_sh(&t, "mkdir dir");
	make_top(&t, "top.qcow2", "dir");
	expect_refused(&t, "top.qcow2", (const char *const[]){
		"backing file 'dir' named by ", "is a directory; backing files must be regular files",
		NULL });
	/* A name that only leads to a directory. */
	make_top(&t, "dot.qcow2", ".");
	expect_refused(&t, "dot.qcow2", (const char *const[]){ "is a directory", NULL });
	qt_fini(&t);
}

/*
 * sub/top.qcow2 names "base.raw": it is sub/base.raw, whatever the current
 * directory holds under that name, and however the top image was named.
 */
static void test_qcow2_resolves_relative_backing_name_against_image_directory(void **state)
{
	char cwd[4096], dir[300];
	uint8_t buf[512];
	struct disk *d;
	struct qt t;

	qt_init(&t);
	qt_sh(&t, "mkdir sub && head -c 1048576 /dev/zero | tr '\\0' '\\125' >base.raw && "
		  "head -c 1048576 /dev/zero | tr '\\0' '\\252' >sub/base.raw");
	make_top(&t, "sub/top.qcow2", "base.raw");
	assert_non_null(getcwd(cwd, sizeof(cwd)));
	assert_int_equal(chdir(t.dir), 0); /* base.raw here is the decoy */
	snprintf(dir, sizeof(dir), "%s", qt_path(&t, "sub/top.qcow2"));
	for (int i = 0; i < 2; i++) {
		d = qt_open(i == 0 ? dir : "sub/top.qcow2", true);
		qt_read(d, buf, 4096, sizeof(buf));
		assert_int_equal(buf[0], 0xaa);
		assert_int_equal(buf[511], 0xaa);
		disk_close(d);
	}
	assert_int_equal(chdir(cwd), 0);
	qt_fini(&t);
}

int main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(test_qcow2_refuses_character_device_backing_file),
		cmocka_unit_test(test_qcow2_refuses_block_device_backing_file),
		cmocka_unit_test(test_qcow2_refuses_fifo_backing_file),
		cmocka_unit_test(test_qcow2_refuses_socket_backing_file),
		cmocka_unit_test(test_qcow2_refuses_directory_backing_file),
		cmocka_unit_test(test_qcow2_resolves_relative_backing_name_against_image_directory),
	};

	return cmocka_run_group_tests(tests, NULL, NULL);
}
