/*
 * Fuzzes format probing and the backing-name policy through disk_open() on
 * a real file, since both act on files: the input's bytes become the
 * image's first sectors and, where those hold a qcow2 header, its backing
 * name. The name resolves in a scratch directory that holds what a name
 * may meet: a regular file, a FIFO (whose open must not block), a
 * directory, a socket, a link to /dev/null, the image itself. Opening must
 * never crash or hang, and a refusal comes with its sentence.
 *
 * An image whose first bytes probe as raw must open as a probed raw disk;
 * it then takes the input's writes, write-zeroes and discards on its first
 * sectors, and must still probe as raw afterwards: a probed raw image
 * never becomes another format. (The oracle is the input's bytes and the
 * file's, never the disk's own verdict.)
 *
 * Input layout: byte 0 flags (bit 0: write the name into the header; bits
 * 1-2: how many writes), byte 1 the name's length (at most NAME_MAX_LEN),
 * the name, then per write: a kind byte (writev, write-zeroes, discard),
 * an offset byte (16-byte units), two length bytes and that many data
 * bytes; the rest is the image's first sectors.
 */
#include <errno.h>
#include <fcntl.h>
#include <stdbool.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <sys/un.h>
#include <unistd.h>

#include "disk/disk.h"
#include "disk/probe.h"
#include "fuzz_input.h"

#define NAME_MAX_LEN 64
#define NAME_AT (512 - NAME_MAX_LEN) /* inside the first cluster, even a 512-byte one */
#define IMAGE_MIN (16u << 10)
#define IMAGE_MAX (256u << 10)
#define MAX_WRITES 3
#define WRITE_MAX (2 * DISK_PROBE_SIZE)

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

struct guest_write {
	uint8_t kind; /* 0: writev, 1: write-zeroes, 2: discard */
	uint64_t offset;
	size_t len;
	uint8_t data[WRITE_MAX];
};

static char scratch[64], image[96];
static uint8_t sectors[IMAGE_MAX];
static struct guest_write writes[MAX_WRITES];

static void put_be(uint8_t *p, uint64_t v, int bytes)
{
	for (int i = 0; i < bytes; i++)
		p[i] = (uint8_t)(v >> (8 * (bytes - 1 - i)));
}

static void remove_scratch(void)
{
	static const char *const names[] = { "img", "base.raw", "fifo", "dir", "null", "sock" };
	char path[128];

	for (size_t i = 0; i < sizeof(names) / sizeof(names[0]); i++) {
		snprintf(path, sizeof(path), "%s/%s", scratch, names[i]);
		remove(path);
	}
	rmdir(scratch);
}

static void make_scratch(void)
{
	struct sockaddr_un addr = { .sun_family = AF_UNIX };
	char path[128];
	int fd;

	/* tmpfs where there is one: the qcow2 opens sync, and fdatasync there costs nothing. */
	snprintf(scratch, sizeof(scratch), "%s/vireo-fuzz-probe-XXXXXX",
		 access("/dev/shm", W_OK) == 0 ? "/dev/shm" : "/tmp");
	if (!mkdtemp(scratch))
		abort();
	atexit(remove_scratch);
	snprintf(image, sizeof(image), "%s/img", scratch);
	snprintf(path, sizeof(path), "%s/base.raw", scratch);
	fd = open(path, O_WRONLY | O_CREAT | O_TRUNC, 0600);
	if (fd < 0 || ftruncate(fd, 64 << 10) < 0)
		abort();
	close(fd);
	snprintf(path, sizeof(path), "%s/fifo", scratch);
	mkfifo(path, 0600);
	snprintf(path, sizeof(path), "%s/dir", scratch);
	mkdir(path, 0700);
	snprintf(path, sizeof(path), "%s/null", scratch);
	if (symlink("/dev/null", path) < 0)
		abort();
	snprintf(addr.sun_path, sizeof(addr.sun_path), "%s/sock", scratch);
	fd = socket(AF_UNIX, SOCK_STREAM, 0);
	if (fd < 0 || bind(fd, (struct sockaddr *)&addr, sizeof(addr)) < 0)
		abort();
	/* fd stays open: the socket lives as long as the fuzzer. */
}

/* Puts the name into a qcow2 header: backing_file_offset and backing_file_size. */
static void set_backing_name(uint8_t *img, const uint8_t *name, size_t len)
{
	memset(img + NAME_AT, 0, NAME_MAX_LEN);
	memcpy(img + NAME_AT, name, len);
	put_be(img + 8, len ? NAME_AT : 0, 8);
	put_be(img + 16, len, 4);
}

static void write_image(size_t len)
{
	int fd = open(image, O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC, 0600);

	if (fd < 0 || write(fd, sectors, len) != (ssize_t)len)
		abort();
	close(fd);
}

static enum disk_format probe_image(void)
{
	enum disk_format format;
	int fd = open(image, O_RDONLY | O_CLOEXEC);

	if (fd < 0 || disk_probe_fd(fd, &format) < 0)
		abort();
	close(fd);
	return format;
}

static void take_write(struct guest_write *w, struct input *in)
{
	w->kind = get8(in) % 3;
	w->offset = (uint64_t)get8(in) * 16;
	w->len = get_n(in, 2) % WRITE_MAX + 1;
	for (size_t i = 0; i < w->len; i++)
		w->data[i] = get8(in);
}

/* One write to the first sectors, in two buffers; whether it is refused is the disk's call. */
static void guest_write(struct disk *d, struct guest_write *w)
{
	struct iovec iov[2] = {
		{ w->data, w->len / 2 },
		{ w->data + w->len / 2, w->len - w->len / 2 },
	};

	if (w->offset + w->len > d->size)
		return;
	if (w->kind == 0)
		d->ops->writev(d, iov, 2, w->offset);
	else if (w->kind == 1)
		d->ops->write_zeroes(d, w->offset, w->len, false);
	else
		d->ops->discard(d, w->offset, w->len);
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	struct input in = { data, size };
	struct disk_config cfg = {
		.path = image,
		.engine = DISK_ENGINE_SYNC,
		.cache_size = 1,
	};
	uint8_t flags, name[NAME_MAX_LEN];
	unsigned int nr_writes;
	size_t name_len, len;
	char err[768] = "";
	struct disk *d;
	bool raw;

	if (!scratch[0])
		make_scratch();
	flags = get8(&in);
	nr_writes = (flags >> 1) % (MAX_WRITES + 1);
	name_len = get8(&in) % (NAME_MAX_LEN + 1);
	for (size_t i = 0; i < name_len; i++)
		name[i] = get8(&in);
	for (unsigned int i = 0; i < nr_writes; i++)
		take_write(&writes[i], &in);
	len = in.left < IMAGE_MAX ? in.left : IMAGE_MAX;
	memset(sectors, 0, IMAGE_MAX);
	memcpy(sectors, in.p, len);
	len = len < IMAGE_MIN ? IMAGE_MIN : (len + DISK_SECTOR_SIZE - 1) & ~(size_t)511;
	if ((flags & 1) && disk_probe(sectors, len) == DISK_FORMAT_QCOW2 &&
	    !memchr(name, '\0', name_len))
		set_backing_name(sectors, name, name_len);
	write_image(len);

	d = disk_open(&cfg, err, sizeof(err));
	if (!d) {
		if (!err[0])
			abort(); /* a refusal always says why */
		return 0;
	}
	raw = disk_probe(sectors, len) == DISK_FORMAT_RAW;
	if (raw != d->probed_raw)
		abort(); /* probed raw exactly when the first bytes say raw */
	if (raw)
		for (unsigned int i = 0; i < nr_writes; i++)
			guest_write(d, &writes[i]);
	disk_close(d);
	if (raw && probe_image() != DISK_FORMAT_RAW)
		abort(); /* the guest made a probed raw image into another format */
	return 0;
}
