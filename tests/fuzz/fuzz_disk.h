/* A raw image for the fuzz targets' disks, in tmpfs where there is one. */
#ifndef VIREO_FUZZ_DISK_H
#define VIREO_FUZZ_DISK_H

#include <stdbool.h>
#include <stdint.h>

#include "disk/disk.h"

/*
 * Opens a fresh image of size bytes (zeroes), already unlinked: nothing is
 * left behind, even after a crash. Aborts when it cannot.
 */
struct disk *fuzz_disk_open(bool readonly, uint64_t size);

#endif
