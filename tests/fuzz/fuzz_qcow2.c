/*
 * Fuzzes the qcow2 header and metadata parser and everything behind it: the
 * input is a whole image file, opened over a memory file that may grow a
 * little (never without bound: a write far past the image fails). If it
 * opens, the target reads where the metadata leads (the start, the end, a
 * few offsets the input picks), and on a read-write open also writes,
 * discards, zeroes and flushes, reading each write straight back, then
 * closes (writing the caches back) and opens the result once more. Nothing
 * may crash, hang, or touch memory outside its buffers; a write that
 * succeeded must read back.
 *
 * Input layout: byte 0 is flags (bit 0: read-only; bits 1-7 pick offsets),
 * the rest is the image. Backing file names resolve against the current
 * directory, so a fuzzer run is best started in an empty one.
 */
#include <stdint.h>
#include <stdlib.h>
#include <string.h>
#include <sys/uio.h>

#include "disk/disk.h"
#include "disk/image_file.h"
#include "disk/qcow2.h"

#define MAX_GROWTH (8u << 20)
#define IO_SIZE (96u << 10)

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

static uint8_t buf[IO_SIZE], back[IO_SIZE];

static struct disk *open_image(const uint8_t *img, size_t len, bool readonly,
			       struct image_file **file)
{
	struct disk_config cfg = {
		.path = "fuzz.qcow2",
		.readonly = readonly,
		.engine = DISK_ENGINE_SYNC,
		.cache_size = 1, /* the minimum: evictions all the time */
	};
	char err[256];

	*file = image_file_memory(img, len, len + MAX_GROWTH);
	if (!*file)
		return NULL;
	return qcow2_open_file(*file, &cfg, err, sizeof(err));
}

/* An offset inside the disk, sector-aligned, with room for len bytes where possible. */
static uint64_t pick(const struct disk *d, uint64_t seed, uint64_t *len)
{
	uint64_t sectors = d->size / 512, at;

	if (*len > d->size)
		*len = d->size;
	at = sectors ? (seed * 0x9e3779b97f4a7c15ull >> 20) % sectors * 512 : 0;
	if (at > d->size - *len)
		at = d->size - *len;
	return at;
}

static void read_at(struct disk *d, uint64_t at, uint64_t len)
{
	struct iovec iov[2] = { { buf, len / 3 }, { buf + len / 3, len - len / 3 } };

	d->ops->readv(d, iov, 2, at);
}

static void exercise(struct disk *d, unsigned int seed)
{
	uint64_t len = IO_SIZE;

	read_at(d, 0, d->size < IO_SIZE ? d->size : IO_SIZE);
	read_at(d, pick(d, ~0ull, &len), len);
	for (unsigned int i = 0; i < 4; i++) {
		uint64_t at, l = (i + 1) * 8192u;

		at = pick(d, seed * 4 + i, &l);
		read_at(d, at, l);
		if (d->readonly)
			continue;
		memset(buf, (int)(0x30 + i), l);
		struct iovec iov = { buf, l };

		if (d->ops->writev(d, &iov, 1, at) == (ssize_t)l) {
			struct iovec in = { back, l };

			if (d->ops->readv(d, &in, 1, at) == (ssize_t)l && memcmp(back, buf, l) != 0)
				abort(); /* a write that succeeded must read back */
		}
		l = 65536;
		at = pick(d, seed * 7 + i, &l);
		if (i & 1)
			d->ops->discard(d, at, l);
		else
			d->ops->write_zeroes(d, at, l, i & 2);
	}
	if (!d->readonly)
		d->ops->flush(d);
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	struct image_file *file;
	struct disk *d;
	bool readonly;
	unsigned int seed;
	uint8_t *after;
	size_t after_len;

	if (size < 1)
		return 0;
	readonly = data[0] & 1;
	seed = data[0] >> 1;
	d = open_image(data + 1, size - 1, readonly, &file);
	if (!d)
		return 0;
	exercise(d, seed);
	if (readonly) {
		disk_close(d);
		return 0;
	}
	/* Write the caches back, then look at what we left behind. */
	d->ops->flush(d);
	{
		const uint8_t *img = image_file_memory_data(file, &after_len);

		after = malloc(after_len ? after_len : 1);
		if (after)
			memcpy(after, img, after_len);
	}
	if (!after) {
		disk_close(d);
		return 0;
	}
	disk_close(d);
	d = open_image(after, after_len, true, &file);
	if (d) {
		exercise(d, seed + 1);
		disk_close(d);
	}
	free(after);
	return 0;
}
