/*
 * A disk_io that records how it ended, for tests that submit to a disk's
 * engine themselves: submit &r.io with .done = recorded_io_done, then look
 * at r.done and r.result.
 */
#ifndef VIREO_TESTS_RECORDED_IO_H
#define VIREO_TESTS_RECORDED_IO_H

#include <stdbool.h>
#include <sys/types.h>

#include "disk/disk.h"

struct recorded_io {
	struct disk_io io; /* first: the engine hands this pointer back */
	bool done;
	ssize_t result;
};

static inline void recorded_io_done(struct disk_io *io, ssize_t result)
{
	struct recorded_io *r = (struct recorded_io *)io;

	r->done = true;
	r->result = result;
}

#endif
