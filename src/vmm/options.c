/*
 * Command-line parsing with getopt_long. Every rejection names the option
 * and the value at fault, in one sentence.
 */
#include "vmm/options.h"

#include <errno.h>
#include <getopt.h>
#include <inttypes.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "virtio/rng.h"
#include "vmm/errmsg.h"

void config_init(struct vm_config *cfg)
{
	memset(cfg, 0, sizeof(*cfg));
	cfg->name = CONFIG_DEFAULT_NAME;
	cfg->cmdline = "console=ttyS0";
	cfg->nr_cpus = CONFIG_DEFAULT_CPUS;
	cfg->memory = CONFIG_DEFAULT_MEMORY;
	cfg->serial = SERIAL_STDIO;
	cfg->reboot = REBOOT_EXIT;
	cfg->console = CONSOLE_SERIAL;
	cfg->rng = true;
	cfg->rng_rate = VIRTIO_RNG_DEFAULT_RATE;
	cfg->jail.cgroup_parent = JAIL_DEFAULT_CGROUP;
	cfg->seccomp = true;
}

int options_parse_size(const char *text, uint64_t *bytes)
{
	char *end;
	unsigned long long value;
	unsigned int shift;

	if (!text || *text < '0' || *text > '9')
		return -EINVAL;
	errno = 0;
	value = strtoull(text, &end, 10);
	if (errno)
		return -EINVAL;
	switch (*end) {
	case 'k': case 'K': shift = 10; end++; break;
	case 'm': case 'M': case '\0': shift = 20; end += *end != '\0'; break;
	case 'g': case 'G': shift = 30; end++; break;
	case 't': case 'T': shift = 40; end++; break;
	default: return -EINVAL;
	}
	if (*end == 'i' || *end == 'B')
		end += (*end == 'i' && end[1] == 'B') ? 2 : 1;
	if (*end != '\0' || value > (UINT64_MAX >> shift))
		return -EINVAL;
	*bytes = (uint64_t)value << shift;
	return 0;
}


static int parse_cpus(const char *arg, struct vm_config *cfg, char *err, size_t err_len)
{
	char *end;
	long n;

	errno = 0;
	n = strtol(arg, &end, 10);
	if (errno || *arg < '0' || *arg > '9' || *end != '\0')
		return errmsg(err, err_len, "--cpus '%s' is not a number", arg);
	if (n < 1 || n > CONFIG_MAX_CPUS)
		return errmsg(err, err_len, "--cpus %s is out of range (1 to %d)", arg,
			      CONFIG_MAX_CPUS);
	cfg->nr_cpus = (unsigned int)n;
	return 0;
}

static int parse_reboot(const char *arg, struct vm_config *cfg, char *err, size_t err_len)
{
	if (strcmp(arg, "exit") == 0)
		cfg->reboot = REBOOT_EXIT;
	else if (strcmp(arg, "restart") == 0)
		cfg->reboot = REBOOT_RESTART;
	else
		return errmsg(err, err_len, "--reboot '%s' is not one of exit, restart", arg);
	return 0;
}

static int parse_seccomp(const char *arg, struct vm_config *cfg, char *err, size_t err_len)
{
	if (strcmp(arg, "on") == 0)
		cfg->seccomp = true;
	else if (strcmp(arg, "off") == 0)
		cfg->seccomp = false;
	else
		return errmsg(err, err_len, "--seccomp '%s' is not one of on, off", arg);
	return 0;
}

static int parse_console(const char *arg, struct vm_config *cfg, char *err, size_t err_len)
{
	if (strcmp(arg, "serial") == 0)
		cfg->console = CONSOLE_SERIAL;
	else if (strcmp(arg, "virtio") == 0)
		cfg->console = CONSOLE_VIRTIO;
	else
		return errmsg(err, err_len, "--console '%s' is not one of serial, virtio", arg);
	return 0;
}

/* Splits "a=1,b=2" in place; returns the next key=value or NULL at the end. */
static char *next_pair(char **cursor, char **value)
{
	char *pair = *cursor, *eq;

	if (!pair || !*pair)
		return NULL;
	*cursor = strchr(pair, ',');
	if (*cursor)
		*(*cursor)++ = '\0';
	eq = strchr(pair, '=');
	*value = eq ? eq + 1 : NULL;
	if (eq)
		*eq = '\0';
	return pair;
}

/* --serial stdio|off|file=PATH[,max=SIZE] */
static int parse_serial(char *arg, struct vm_config *cfg, char *err, size_t err_len)
{
	char *cursor = strchr(arg, ','), *key, *value;

	if (cursor)
		*cursor++ = '\0';
	cfg->serial_max = 0;
	if (strcmp(arg, "stdio") == 0) {
		cfg->serial = SERIAL_STDIO;
	} else if (strcmp(arg, "off") == 0) {
		cfg->serial = SERIAL_OFF;
	} else if (strncmp(arg, "file=", 5) == 0 && arg[5] != '\0') {
		cfg->serial = SERIAL_FILE;
		cfg->serial_path = arg + 5;
		cfg->serial_max = CONFIG_DEFAULT_SERIAL_MAX;
	} else {
		return errmsg(err, err_len, "--serial '%s' is not one of stdio, off, file=PATH",
			      arg);
	}
	while ((key = next_pair(&cursor, &value)) != NULL) {
		if (strcmp(key, "max") != 0)
			return errmsg(err, err_len, "--serial: unknown option '%s' (known: max)",
				      key);
		if (cfg->serial != SERIAL_FILE)
			return errmsg(err, err_len, "--serial max= works with file=PATH only");
		if (!value || options_parse_size(value, &cfg->serial_max) < 0)
			return errmsg(err, err_len, "--serial max=%s is not a size (try 64M or 1G)",
				      value ? value : "");
		if (cfg->serial_max < CONFIG_MIN_SERIAL_MAX)
			return errmsg(err, err_len, "--serial max=%s is too small (at least %lluK)",
				      value, CONFIG_MIN_SERIAL_MAX >> 10);
	}
	return 0;
}

/* --memory SIZE[,shared=on|off] */
static int parse_memory(char *arg, struct vm_config *cfg, char *err, size_t err_len)
{
	char *cursor = strchr(arg, ','), *key, *value;

	if (cursor)
		*cursor++ = '\0';
	if (options_parse_size(arg, &cfg->memory) < 0)
		return errmsg(err, err_len, "--memory '%s' is not a size (try 512M or 2G)", arg);
	if (cfg->memory < CONFIG_MIN_MEMORY || cfg->memory > CONFIG_MAX_MEMORY)
		return errmsg(err, err_len, "--memory %s is out of range (%llu MiB to %llu GiB)",
			      arg, CONFIG_MIN_MEMORY >> 20, CONFIG_MAX_MEMORY >> 30);
	while ((key = next_pair(&cursor, &value)) != NULL) {
		if (strcmp(key, "shared") != 0)
			return errmsg(err, err_len, "--memory: unknown option '%s' (known: shared)",
				      key);
		if (errmsg_on_off("--memory", key, value, &cfg->memory_shared, err, err_len) < 0)
			return -EINVAL;
	}
	return 0;
}

static int parse_disk_pair(struct disk_config *disk, const char *key, const char *value,
			   char *err, size_t err_len)
{
	if (strcmp(key, "readonly") == 0)
		return errmsg_on_off("--disk", key, value, &disk->readonly, err, err_len);
	if (!value || !*value)
		return errmsg(err, err_len, "--disk: '%s' needs a value (%s=...)", key, key);
	if (strcmp(key, "path") == 0) {
		disk->path = value;
	} else if (strcmp(key, "serial") == 0) {
		if (strlen(value) > 20)
			return errmsg(err, err_len, "--disk serial '%s' is longer than 20 bytes",
				      value);
		disk->serial = value;
	} else if (strcmp(key, "cache") == 0 && strcmp(value, "writeback") == 0) {
		disk->cache = DISK_CACHE_WRITEBACK;
	} else if (strcmp(key, "cache") == 0 && strcmp(value, "none") == 0) {
		disk->cache = DISK_CACHE_NONE;
	} else if (strcmp(key, "cache") == 0) {
		return errmsg(err, err_len, "--disk cache=%s: use writeback or none", value);
	} else if (strcmp(key, "engine") == 0 && strcmp(value, "io_uring") == 0) {
		disk->engine = DISK_ENGINE_IO_URING;
	} else if (strcmp(key, "engine") == 0 && strcmp(value, "sync") == 0) {
		disk->engine = DISK_ENGINE_SYNC;
	} else if (strcmp(key, "engine") == 0) {
		return errmsg(err, err_len, "--disk engine=%s: use io_uring or sync", value);
	} else if (strcmp(key, "format") == 0 && strcmp(value, "raw") == 0) {
		disk->format = DISK_FORMAT_RAW;
	} else if (strcmp(key, "format") == 0 && strcmp(value, "qcow2") == 0) {
		disk->format = DISK_FORMAT_QCOW2;
	} else if (strcmp(key, "format") == 0) {
		return errmsg(err, err_len, "--disk format=%s: use raw or qcow2", value);
	} else if (strcmp(key, "cache-size") == 0) {
		if (options_parse_size(value, &disk->cache_size) < 0 ||
		    disk->cache_size < (64u << 10) || disk->cache_size > (1u << 30))
			return errmsg(err, err_len,
				      "--disk cache-size=%s: give a size from 64K to 1G "
				      "(qcow2 metadata cache)",
				      value);
	} else {
		return errmsg(err, err_len,
			      "--disk: unknown key '%s' (path, readonly, serial, cache, "
			      "engine, format, cache-size)",
			      key);
	}
	return 0;
}

/* --rng on|off|rate=SIZE, or on,rate=SIZE: SIZE is bytes of host entropy per second. */
static int parse_rng(char *arg, struct vm_config *cfg, char *err, size_t err_len)
{
	char *cursor = arg, *key, *value;

	if (*arg == '\0')
		return errmsg(err, err_len, "--rng needs on, off or rate=SIZE");
	while ((key = next_pair(&cursor, &value)) != NULL) {
		if (!value && strcmp(key, "on") == 0) {
			cfg->rng = true;
		} else if (!value && strcmp(key, "off") == 0) {
			cfg->rng = false;
		} else if (strcmp(key, "rate") == 0) {
			if (!value || options_parse_size(value, &cfg->rng_rate) < 0 ||
			    cfg->rng_rate < VIRTIO_RNG_MIN_RATE)
				return errmsg(err, err_len,
					      "--rng rate=%s is not a size per second "
					      "(try 64K or 1M)",
					      value ? value : "");
			if (cfg->rng_rate > VIRTIO_RNG_MAX_RATE)
				return errmsg(err, err_len,
					      "--rng rate=%s is more than %llu MiB per second",
					      value, VIRTIO_RNG_MAX_RATE >> 20);
		} else {
			return errmsg(err, err_len, "--rng: '%s' is not one of on, off, rate=SIZE",
				      key);
		}
	}
	return 0;
}

/*
 * --disk path=FILE[,readonly=on][,serial=ID][,cache=writeback|none][,engine=...]
 *        [,format=raw|qcow2][,cache-size=SIZE]
 */
static int parse_disk(char *arg, struct vm_config *cfg, char *err, size_t err_len)
{
	struct disk_config *disk;
	char *cursor = arg, *key, *value;

	if (cfg->nr_disks == CONFIG_MAX_DISKS)
		return errmsg(err, err_len, "too many --disk options: a VM has at most %d disks",
			      CONFIG_MAX_DISKS);
	disk = &cfg->disks[cfg->nr_disks];
	memset(disk, 0, sizeof(*disk));
	if (!strchr(arg, '=')) { /* a bare path: --disk root.img */
		disk->path = arg;
		cursor = NULL;
	}
	while ((key = next_pair(&cursor, &value)) != NULL) {
		if (parse_disk_pair(disk, key, value, err, err_len) < 0)
			return -EINVAL;
	}
	if (!disk->path)
		return errmsg(err, err_len, "--disk needs path=FILE");
	cfg->nr_disks++;
	return 0;
}

/* A decimal number from 0 to max, digits only; 0 or -EINVAL. */
static int parse_decimal(const char *text, unsigned long max, unsigned long *out)
{
	char *end;

	if (!text || *text < '0' || *text > '9')
		return -EINVAL;
	errno = 0;
	*out = strtoul(text, &end, 10);
	return errno || *end != '\0' || *out > max ? -EINVAL : 0;
}

/* The user or group id of --jail: a number, and never root's. */
static int parse_jail_id(const char *key, const char *value, unsigned long *id, char *err,
			 size_t err_len)
{
	if (parse_decimal(value, UINT32_MAX - 1, id) < 0)
		return errmsg(err, err_len, "--jail %s=%s is not a numeric id", key, value);
	if (*id == 0)
		return errmsg(err, err_len,
			      "--jail %s=0 would leave the VM root in its jail: give an "
			      "unprivileged id",
			      key);
	return 0;
}

/* cpus=N.N: host CPUs' worth of time, as a quota per cpu.max period (at least 1 ms). */
static int parse_jail_cpus(const char *value, uint64_t *quota_us, char *err, size_t err_len)
{
	char *end;
	double cpus;

	if (*value >= '0' && *value <= '9') {
		cpus = strtod(value, &end);
		if (*end == '\0' && cpus >= 0.01 && cpus <= JAIL_MAX_CPUS) {
			*quota_us = (uint64_t)(cpus * JAIL_CPU_PERIOD_US + 0.5);
			return 0;
		}
	}
	return errmsg(err, err_len, "--jail cpus=%s is not a number of host CPUs from 0.01 to %d",
		      value, JAIL_MAX_CPUS);
}

static int parse_jail_pair(struct jail_config *jail, const char *key, const char *value,
			   char *err, size_t err_len)
{
	unsigned long n;

	if (!value || !*value)
		return errmsg(err, err_len, "--jail: '%s' needs a value (%s=...)", key, key);
	if (strcmp(key, "uid") == 0) {
		if (parse_jail_id(key, value, &n, err, err_len) < 0)
			return -EINVAL;
		jail->uid = (uid_t)n;
	} else if (strcmp(key, "gid") == 0) {
		if (parse_jail_id(key, value, &n, err, err_len) < 0)
			return -EINVAL;
		jail->gid = (gid_t)n;
	} else if (strcmp(key, "cgroup") == 0) {
		if (*value != '/')
			return errmsg(err, err_len,
				      "--jail cgroup=%s is not an absolute path (such as %s)", value,
				      JAIL_DEFAULT_CGROUP);
		jail->cgroup_parent = value;
	} else if (strcmp(key, "memory") == 0) {
		if (options_parse_size(value, &jail->memory_max) < 0 || jail->memory_max == 0)
			return errmsg(err, err_len, "--jail memory=%s is not a size (try 1G)", value);
	} else if (strcmp(key, "cpus") == 0) {
		return parse_jail_cpus(value, &jail->cpu_quota_us, err, err_len);
	} else if (strcmp(key, "pids") == 0) {
		if (parse_decimal(value, JAIL_MAX_PIDS, &n) < 0 || n == 0)
			return errmsg(err, err_len, "--jail pids=%s is not a number from 1 to %d",
				      value, JAIL_MAX_PIDS);
		jail->pids_max = (unsigned int)n;
	} else if (strcmp(key, "netns") == 0 && strcmp(value, "new") == 0) {
		jail->netns = JAIL_NETNS_NEW;
	} else if (strcmp(key, "netns") == 0 && strcmp(value, "host") == 0) {
		jail->netns = JAIL_NETNS_HOST;
	} else if (strcmp(key, "netns") == 0) {
		return errmsg(err, err_len, "--jail netns=%s: use new or host", value);
	} else {
		return errmsg(err, err_len,
			      "--jail: unknown key '%s' (uid, gid, cgroup, memory, cpus, pids, "
			      "netns)",
			      key);
	}
	return 0;
}

/* --jail uid=N,gid=N[,cgroup=PATH][,memory=SIZE][,cpus=N.N][,pids=N][,netns=new|host] */
static int parse_jail(char *arg, struct vm_config *cfg, char *err, size_t err_len)
{
	struct jail_config *jail = &cfg->jail;
	char *cursor = arg, *key, *value;

	jail->enabled = true;
	while ((key = next_pair(&cursor, &value)) != NULL) {
		if (parse_jail_pair(jail, key, value, err, err_len) < 0)
			return -EINVAL;
	}
	if (!jail->uid || !jail->gid)
		return errmsg(err, err_len, "--jail needs uid=N and gid=N: the ids the VM runs as");
	return 0;
}

/*
 * What --jail needs from the other options, once all are read: the cgroup is
 * named after --name, and user networking keeps the host's network namespace
 * and reads the host's resolver from /etc/resolv.conf.
 */
static int check_jail(struct vm_config *cfg, char *err, size_t err_len)
{
	bool user_net = false;

	if (!cfg->jail.enabled)
		return 0;
	if (strchr(cfg->name, '/'))
		return errmsg(err, err_len, "--name '%s' has a '/': with --jail it names a cgroup",
			      cfg->name);
	for (int i = 0; i < cfg->nr_nics; i++)
		user_net |= cfg->nics[i].kind == NET_USER;
	if (user_net && cfg->jail.netns == JAIL_NETNS_NEW)
		return errmsg(err, err_len,
			      "--jail netns=new: --net user opens its connections from the "
			      "host's network namespace");
	if (cfg->jail.netns == JAIL_NETNS_AUTO)
		cfg->jail.netns = user_net ? JAIL_NETNS_HOST : JAIL_NETNS_NEW;
	cfg->jail.resolv_conf = user_net;
	return 0;
}

/* --net tap=NAME|bridge=NAME|user[,mac=MAC][,mtu=N][,vhost=on][,hostfwd=...]: see net/net.h. */
static int parse_net(char *arg, struct vm_config *cfg, char *err, size_t err_len)
{
	if (cfg->nr_nics == CONFIG_MAX_NICS)
		return errmsg(err, err_len, "too many --net options: a VM has at most %d NICs",
			      CONFIG_MAX_NICS);
	if (net_parse_spec(arg, &cfg->nics[cfg->nr_nics], err, err_len) < 0)
		return -EINVAL;
	cfg->nr_nics++;
	return 0;
}

enum {
	OPT_KERNEL = 'k',
	OPT_INITRAMFS = 'i',
	OPT_CMDLINE = 'c',
	OPT_CPUS = 'p',
	OPT_MEMORY = 'm',
	OPT_HELP = 'h',
	OPT_SERIAL = 256,
	OPT_REBOOT,
	OPT_NAME,
	OPT_DISK,
	OPT_CONSOLE,
	OPT_RNG,
	OPT_NET,
	OPT_JAIL,
	OPT_SECCOMP,
	OPT_NO_SECCOMP,
};

static const struct option run_options[] = {
	{ "kernel", required_argument, NULL, OPT_KERNEL },
	{ "initramfs", required_argument, NULL, OPT_INITRAMFS },
	{ "initrd", required_argument, NULL, OPT_INITRAMFS },
	{ "cmdline", required_argument, NULL, OPT_CMDLINE },
	{ "cpus", required_argument, NULL, OPT_CPUS },
	{ "memory", required_argument, NULL, OPT_MEMORY },
	{ "serial", required_argument, NULL, OPT_SERIAL },
	{ "reboot", required_argument, NULL, OPT_REBOOT },
	{ "name", required_argument, NULL, OPT_NAME },
	{ "disk", required_argument, NULL, OPT_DISK },
	{ "console", required_argument, NULL, OPT_CONSOLE },
	{ "rng", required_argument, NULL, OPT_RNG },
	{ "net", required_argument, NULL, OPT_NET },
	{ "jail", required_argument, NULL, OPT_JAIL },
	{ "seccomp", required_argument, NULL, OPT_SECCOMP },
	{ "no-seccomp", no_argument, NULL, OPT_NO_SECCOMP }, /* Firecracker's spelling */
	{ "help", no_argument, NULL, OPT_HELP },
	{ NULL, 0, NULL, 0 },
};

static int parse_run_option(int opt, char *arg, struct vm_config *cfg, char *err,
			    size_t err_len)
{
	switch (opt) {
	case OPT_KERNEL: cfg->kernel_path = arg; return 0;
	case OPT_INITRAMFS: cfg->initramfs_path = arg; return 0;
	case OPT_CMDLINE: cfg->cmdline = arg; return 0;
	case OPT_NAME:
		if (*arg == '\0')
			return errmsg(err, err_len, "--name must not be empty");
		cfg->name = arg;
		return 0;
	case OPT_CPUS: return parse_cpus(arg, cfg, err, err_len);
	case OPT_MEMORY: return parse_memory(arg, cfg, err, err_len);
	case OPT_SERIAL: return parse_serial(arg, cfg, err, err_len);
	case OPT_REBOOT: return parse_reboot(arg, cfg, err, err_len);
	case OPT_DISK: return parse_disk(arg, cfg, err, err_len);
	case OPT_CONSOLE: return parse_console(arg, cfg, err, err_len);
	case OPT_RNG: return parse_rng(arg, cfg, err, err_len);
	case OPT_NET: return parse_net(arg, cfg, err, err_len);
	case OPT_JAIL: return parse_jail(arg, cfg, err, err_len);
	case OPT_SECCOMP: return parse_seccomp(arg, cfg, err, err_len);
	case OPT_NO_SECCOMP: return parse_seccomp("off", cfg, err, err_len);
	default:
		return errmsg(err, err_len, "unknown option (see 'vireo --help')");
	}
}

static int parse_run(int argc, char **argv, enum options_command *command,
		     struct vm_config *cfg, char *err, size_t err_len)
{
	int opt;

	optind = 0; /* 0, not 1: also resets glibc's state inside an option cluster */
	opterr = 0;
	while ((opt = getopt_long(argc, argv, ":k:i:c:p:m:h", run_options, NULL)) != -1) {
		int rc;

		if (opt == OPT_HELP) {
			*command = COMMAND_HELP;
			return 0;
		}
		if (opt == '?' && optopt)
			return errmsg(err, err_len, "unknown option '-%c' (see 'vireo --help')",
				      optopt);
		if (opt == '?')
			return errmsg(err, err_len, "unknown option '%s' (see 'vireo --help')",
				      argv[optind - 1]);
		if (opt == ':')
			return errmsg(err, err_len, "option '%s' needs a value", argv[optind - 1]);
		rc = parse_run_option(opt, optarg, cfg, err, err_len);
		if (rc)
			return rc;
	}
	if (optind < argc)
		return errmsg(err, err_len, "unexpected argument '%s'", argv[optind]);
	if (!cfg->kernel_path)
		return errmsg(err, err_len, "no kernel given: use --kernel PATH");
	return check_jail(cfg, err, err_len);
}

int options_parse(int argc, char **argv, enum options_command *command, struct vm_config *cfg,
		  char *err, size_t err_len)
{
	const char *verb = argc > 1 ? argv[1] : NULL;

	config_init(cfg);
	*command = COMMAND_HELP;
	if (!verb || strcmp(verb, "--help") == 0 || strcmp(verb, "-h") == 0 ||
	    strcmp(verb, "help") == 0)
		return 0;
	if (strcmp(verb, "--version") == 0 || strcmp(verb, "-V") == 0) {
		*command = COMMAND_VERSION;
		return 0;
	}
	if (strcmp(verb, "check") == 0) {
		*command = COMMAND_CHECK;
		return argc == 2 ? 0 : errmsg(err, err_len, "'vireo check' takes no arguments");
	}
	if (strcmp(verb, "run") == 0) {
		*command = COMMAND_RUN;
		return parse_run(argc - 1, argv + 1, command, cfg, err, err_len);
	}
	return errmsg(err, err_len, "unknown command '%s' (see 'vireo --help')", verb);
}

void options_print_help(void)
{
	printf("Usage: vireo run --kernel PATH [options]   boot a Linux guest under KVM\n"
	       "       vireo check                        say whether KVM is usable here\n"
	       "       vireo --help | --version\n"
	       "\n"
	       "Options of 'vireo run':\n"
	       "  -k, --kernel PATH       kernel: a bzImage (vmlinuz) or an ELF vmlinux with a PVH entry\n"
	       "  -i, --initramfs PATH    initramfs (cpio, optionally compressed) loaded beside it\n"
	       "  -c, --cmdline TEXT      kernel command line (default: console=ttyS0)\n"
	       "  -p, --cpus N            virtual CPUs, 1 to %d and at most KVM's limit (default %d)\n"
	       "  -m, --memory SIZE[,shared=on]\n"
	       "                          guest RAM: 512M, 2G, ... plain numbers are MiB (default 512M);\n"
	       "                          shared=on puts it in a memfd other processes can map\n"
	       "                          (default off: anonymous memory, with transparent huge pages)\n"
	       "      --serial MODE       where the serial console (COM1, ttyS0) goes:\n"
	       "                          stdio (default), file=PATH[,max=SIZE], off; the file\n"
	       "                          stops growing at SIZE (default 64M, at least 4K) with a\n"
	       "                          line saying the rest was dropped\n"
	       "      --reboot ACTION     when the guest reboots: exit (default, status 2) or restart\n"
	       "      --name NAME         the VM's name (default '%s')\n"
	       "      --disk SPEC         a virtio-blk disk, /dev/vda first; repeat for more (up to %d):\n"
	       "                          path=FILE[,readonly=on][,serial=ID][,cache=writeback|none]\n"
	       "                          [,engine=io_uring|sync][,format=raw|qcow2]\n"
	       "                          [,cache-size=SIZE]   qcow2 metadata cache (default 4M)\n"
	       "                          (a bare FILE works too; the format is read from its header\n"
	       "                          unless stated)\n"
	       "      --console DEVICE    what the terminal (stdin, stdout) is to the guest: serial\n"
	       "                          (default, ttyS0) or virtio (virtio-console, hvc0); with\n"
	       "                          virtio, pass --cmdline 'console=ttyS0 console=hvc0 ...': the\n"
	       "                          serial port still prints boot messages, where --serial says\n"
	       "      --rng SPEC          virtio-rng, the guest's /dev/hwrng, fed from getrandom(2):\n"
	       "                          on (default), off; rate=SIZE caps the host entropy it serves\n"
	       "                          per second (default 1M, at most 1G; SIZE as for --memory)\n"
	       "      --net SPEC          a virtio-net NIC, eth0 first; repeat for more (up to %d):\n"
	       "                          tap=NAME     an existing TAP (never created nor deleted)\n"
	       "                          bridge=NAME  a new TAP on that bridge, gone at exit (root)\n"
	       "                          user         NAT, DHCP, DNS in the process (libslirp, no\n"
	       "                                       root); guest 10.0.2.15, gateway 10.0.2.2\n"
	       "                          then any of ,mac=52:54:00:12:34:56 (default: derived from\n"
	       "                          --name and the NIC's position) ,mtu=N (default: the\n"
	       "                          interface's, 1500 for user) ,vhost=on (TAPs: the kernel\n"
	       "                          moves the frames) ,hostfwd=tcp:127.0.0.1:2222-:22 (user;\n"
	       "                          [tcp|udp]:[HOSTADDR]:HOSTPORT-[GUESTADDR]:GUESTPORT)\n"
	       "                          ,host-loopback=on (user: 10.0.2.2 reaches the host's\n"
	       "                          127.0.0.1; default off) ,restrict=on (user: the guest can\n"
	       "                          send nothing out, hostfwd still reaches it; default off)\n"
	       "      --jail SPEC         once everything is open, run the VM jailed (root needed):\n"
	       "                          an empty root, namespaces of its own, no capabilities, and\n"
	       "                          a cgroup: uid=N,gid=N (not 0) then any of ,memory=SIZE\n"
	       "                          ,cpus=N.N (host CPU time) ,pids=N ,cgroup=PARENT (default\n"
	       "                          %s) ,netns=new|host (default: new, host\n"
	       "                          with --net user)\n"
	       "      --seccomp on|off    each thread may make only the system calls its work needs\n"
	       "                          (default on); off (or --no-seccomp) removes that barrier\n"
	       "                          between a guest that takes over Vireo and the host\n"
	       "\n"
	       "On a terminal the console is raw: Ctrl-A x quits, Ctrl-A h lists the keys.\n"
	       "\n"
	       "Exit status: 0 the guest powered off; 1 error; 2 the guest rebooted;\n"
	       "             3 stopped by the user (Ctrl-A x) or a signal;\n"
	       "             4 a forbidden system call (see --seccomp; stderr names it).\n",
	       CONFIG_MAX_CPUS, CONFIG_DEFAULT_CPUS, CONFIG_DEFAULT_NAME, CONFIG_MAX_DISKS,
	       CONFIG_MAX_NICS, JAIL_DEFAULT_CGROUP);
}
