/* See fuzz_disk.h. */
#include "fuzz_disk.h"

#include <stdio.h>
#include <stdlib.h>
#include <unistd.h>

#include "fuzz_support.h"

struct disk *fuzz_disk_open(bool readonly, uint64_t size)
{
	/* The disk keeps pointing at its path, for messages: it lives as long. */
	char *path = malloc(256);
	/* tmpfs when there is one: flushes cost nothing there. */
	const char *dir = getenv("TMPDIR") ? getenv("TMPDIR")
			  : access("/dev/shm", W_OK) == 0 ? "/dev/shm" : "/tmp";
	struct disk_config cfg = { .path = path, .readonly = readonly };
	char err[256];
	struct disk *disk;
	int fd;

	if (!path)
		fuzz_fail("out of memory");
	snprintf(path, 256, "%s/vireo-fuzz-disk-XXXXXX", dir);
	fd = mkstemp(path);
	if (fd < 0 || ftruncate(fd, (off_t)size) < 0)
		fuzz_fail("cannot make a temporary image");
	close(fd);
	disk = disk_open(&cfg, err, sizeof(err));
	unlink(path);
	if (!disk)
		fuzz_fail(err);
	return disk;
}
