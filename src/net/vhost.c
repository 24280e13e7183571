/*
 * /dev/vhost-net: see vhost.h. The sequence is the one the kernel's
 * drivers/vhost/net.c expects (QEMU's hw/net/vhost_net.c follows it):
 * SET_OWNER once; then, per start, SET_FEATURES, SET_MEM_TABLE, for each
 * ring NUM, BASE, ADDR, KICK and CALL, and last NET_SET_BACKEND, which
 * starts the data path. Stopping unbinds the backend first, then reads the
 * ring bases back (which also stops each ring).
 *
 * The TAP keeps its 12-byte vnet header (TUNSETVNETHDRSZ): without
 * VHOST_NET_F_VIRTIO_NET_HDR the kernel lets the socket carry the header,
 * so offloads pass through exactly as in Vireo's own data path.
 */
#include "net/vhost.h"

#include <errno.h>
#include <fcntl.h>
#include <linux/vhost.h>
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/ioctl.h>
#include <unistd.h>

#include "vmm/guest_mem.h"

#define VHOST_NET_DEVICE "/dev/vhost-net"

struct vhost_net {
	int fd;
	uint64_t features;
	bool started;
};

struct vhost_net *vhost_net_open(char *err, size_t err_len)
{
	struct vhost_net *vh = calloc(1, sizeof(*vh));

	if (!vh) {
		snprintf(err, err_len, "out of memory");
		return NULL;
	}
	vh->fd = open(VHOST_NET_DEVICE, O_RDWR | O_CLOEXEC);
	if (vh->fd < 0) {
		snprintf(err, err_len, "cannot open %s: %s%s", VHOST_NET_DEVICE, strerror(errno),
			 errno == ENOENT ? " (load the vhost_net module)" : "");
		free(vh);
		return NULL;
	}
	if (ioctl(vh->fd, VHOST_SET_OWNER, NULL) < 0 ||
	    ioctl(vh->fd, VHOST_GET_FEATURES, &vh->features) < 0) {
		snprintf(err, err_len, "%s: %s", VHOST_NET_DEVICE, strerror(errno));
		close(vh->fd);
		free(vh);
		return NULL;
	}
	return vh;
}

uint64_t vhost_net_features(const struct vhost_net *vh)
{
	return vh->features;
}

static int set_mem_table(struct vhost_net *vh, const struct guest_mem *mem)
{
	struct vhost_memory *table;
	int err = 0;

	table = calloc(1, sizeof(*table) + sizeof(table->regions[0]) * (size_t)mem->nr_regions);
	if (!table)
		return -ENOMEM;
	table->nregions = (uint32_t)mem->nr_regions;
	for (int i = 0; i < mem->nr_regions; i++)
		table->regions[i] = (struct vhost_memory_region){
			.guest_phys_addr = mem->regions[i].gpa,
			.memory_size = mem->regions[i].size,
			.userspace_addr = (uint64_t)(uintptr_t)mem->regions[i].host,
		};
	if (ioctl(vh->fd, VHOST_SET_MEM_TABLE, table) < 0)
		err = -errno;
	free(table);
	return err;
}

static int set_ring(struct vhost_net *vh, unsigned int index, const struct vhost_net_ring *r)
{
	struct vhost_vring_state num = { .index = index, .num = r->num };
	struct vhost_vring_state base = { .index = index, .num = r->base };
	struct vhost_vring_addr addr = {
		.index = index,
		.desc_user_addr = (uint64_t)(uintptr_t)r->desc,
		.avail_user_addr = (uint64_t)(uintptr_t)r->avail,
		.used_user_addr = (uint64_t)(uintptr_t)r->used,
	};
	struct vhost_vring_file kick = { .index = index, .fd = r->kick_fd };
	struct vhost_vring_file call = { .index = index, .fd = r->call_fd };

	if (ioctl(vh->fd, VHOST_SET_VRING_NUM, &num) < 0 ||
	    ioctl(vh->fd, VHOST_SET_VRING_BASE, &base) < 0 ||
	    ioctl(vh->fd, VHOST_SET_VRING_ADDR, &addr) < 0 ||
	    ioctl(vh->fd, VHOST_SET_VRING_KICK, &kick) < 0 ||
	    ioctl(vh->fd, VHOST_SET_VRING_CALL, &call) < 0)
		return -errno;
	return 0;
}

static void set_backend(struct vhost_net *vh, int fd)
{
	for (unsigned int i = 0; i < VHOST_NET_RINGS; i++) {
		struct vhost_vring_file backend = { .index = i, .fd = fd };

		ioctl(vh->fd, VHOST_NET_SET_BACKEND, &backend);
	}
}

int vhost_net_start(struct vhost_net *vh, const struct guest_mem *mem, uint64_t features,
		    const struct vhost_net_ring rings[VHOST_NET_RINGS], int backend_fd)
{
	int err = 0;

	if (features & ~vh->features)
		return -EINVAL;
	if (ioctl(vh->fd, VHOST_SET_FEATURES, &features) < 0)
		return -errno;
	err = set_mem_table(vh, mem);
	for (unsigned int i = 0; !err && i < VHOST_NET_RINGS; i++)
		err = set_ring(vh, i, &rings[i]);
	for (unsigned int i = 0; !err && i < VHOST_NET_RINGS; i++) {
		struct vhost_vring_file backend = { .index = i, .fd = backend_fd };

		if (ioctl(vh->fd, VHOST_NET_SET_BACKEND, &backend) < 0)
			err = -errno;
	}
	vh->started = true;
	if (err)
		vhost_net_stop(vh);
	return err;
}

void vhost_net_stop(struct vhost_net *vh)
{
	if (!vh->started)
		return;
	set_backend(vh, -1);
	for (unsigned int i = 0; i < VHOST_NET_RINGS; i++) {
		struct vhost_vring_state base = { .index = i };
		struct vhost_vring_file unbind = { .index = i, .fd = VHOST_FILE_UNBIND };

		ioctl(vh->fd, VHOST_GET_VRING_BASE, &base);
		ioctl(vh->fd, VHOST_SET_VRING_KICK, &unbind);
		ioctl(vh->fd, VHOST_SET_VRING_CALL, &unbind);
	}
	vh->started = false;
}

void vhost_net_close(struct vhost_net *vh)
{
	if (!vh)
		return;
	vhost_net_stop(vh);
	close(vh->fd);
	free(vh);
}
