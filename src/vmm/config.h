/*
 * struct vm_config: everything a VM is built from, whichever front end
 * (command line today; config file and API later) filled it in.
 */
#ifndef VIREO_VMM_CONFIG_H
#define VIREO_VMM_CONFIG_H

#include <stdbool.h>
#include <stdint.h>
#include <sys/types.h>

#include "disk/disk.h"
#include "net/net.h"

#define CONFIG_DEFAULT_NAME "vireo"
#define CONFIG_DEFAULT_CPUS 1
#define CONFIG_DEFAULT_MEMORY (512ULL << 20)
#define CONFIG_MIN_MEMORY (32ULL << 20)
#define CONFIG_MAX_MEMORY (1ULL << 40)
#define CONFIG_MAX_CPUS 255 /* xAPIC ids in the MADT are 8 bits; 0xff is broadcast */
#define CONFIG_MAX_DISKS 16 /* also bounded by the board's virtio slots */
#define CONFIG_MAX_NICS 8
#define CONFIG_DEFAULT_SERIAL_MAX (64ULL << 20)
#define CONFIG_MIN_SERIAL_MAX (4ULL << 10) /* room for some output and the note that ends it */

enum serial_mode {
	SERIAL_STDIO,
	SERIAL_FILE,
	SERIAL_OFF,
};

enum console_mode {
	CONSOLE_SERIAL, /* the user's terminal (stdin, stdout) is the serial port, ttyS0 */
	CONSOLE_VIRTIO, /* it is virtio-console, hvc0; the serial port only prints */
};

#define JAIL_DEFAULT_CGROUP "/sys/fs/cgroup/vireo"
#define JAIL_CPU_PERIOD_US 100000 /* cpu.max's period; cpus= sets the quota per period */
#define JAIL_MAX_CPUS 1024	  /* for cpus=, in host CPUs */
#define JAIL_MAX_PIDS 4194304	  /* PID_MAX_LIMIT */

enum jail_netns {
	JAIL_NETNS_AUTO, /* while parsing: new, or the host's when a NIC is --net user */
	JAIL_NETNS_NEW,	 /* a network namespace of its own: only the TAPs opened before */
	JAIL_NETNS_HOST, /* the host's: user networking opens sockets while the VM runs */
};

/* --jail: where the VM runs once everything it needs is open (sandbox/jail.h). */
struct jail_config {
	bool enabled;
	uid_t uid; /* never 0 */
	gid_t gid; /* never 0 */
	const char *cgroup_parent; /* the VM's cgroup is made below it */
	uint64_t memory_max;	   /* bytes; 0: no limit */
	uint64_t cpu_quota_us;	   /* per JAIL_CPU_PERIOD_US; 0: no limit */
	unsigned int pids_max;	   /* processes and threads; 0: no limit */
	enum jail_netns netns;
	bool resolv_conf; /* a copy of /etc/resolv.conf in the root: libslirp reads it as it runs */
};

enum reboot_action {
	REBOOT_EXIT,	/* vireo exits with VIREO_EXIT_REBOOT */
	REBOOT_RESTART, /* the guest starts again in the same process */
};

struct vm_config {
	const char *name;
	const char *kernel_path;
	const char *initramfs_path; /* NULL: none */
	const char *cmdline;
	unsigned int nr_cpus;
	uint64_t memory;
	bool memory_shared; /* RAM in a memfd another process can map (--memory SIZE,shared=on) */
	enum serial_mode serial;
	const char *serial_path; /* SERIAL_FILE only */
	uint64_t serial_max;	 /* SERIAL_FILE: the file stops growing there; else 0 */
	enum reboot_action reboot;
	enum console_mode console;
	bool rng;	   /* add virtio-rng */
	uint64_t rng_rate; /* its limit on host entropy, bytes per second */
	struct disk_config disks[CONFIG_MAX_DISKS];
	int nr_disks;
	struct net_config nics[CONFIG_MAX_NICS]; /* --net, in order: eth0 first */
	int nr_nics;
	struct jail_config jail;
	bool seccomp; /* each thread under its seccomp allow-list (default on) */
};

void config_init(struct vm_config *cfg);

#endif
