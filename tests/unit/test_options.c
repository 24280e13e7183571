/*
 * The command line: `vireo run` and each of its options, sizes, the limits
 * on --memory and --cpus, and the other commands. Every rejection is
 * -EINVAL with one sentence that names the option at fault.
 */
#include <errno.h>
#include <getopt.h>
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include <cmocka.h>

#include "vmm/options.h"

#define MiB (1ULL << 20)
#define GiB (1ULL << 30)
#define TiB (1ULL << 40)

struct parsed {
	int rc;
	enum options_command command;
	struct vm_config cfg;
	char err[256];
};

static struct parsed parse_argv(int argc, char **argv)
{
	struct parsed p;

	memset(&p, 0, sizeof(p));
	p.command = (enum options_command)-1;
	p.rc = options_parse(argc, argv, &p.command, &p.cfg, p.err, sizeof(p.err));
	return p;
}

/* PARSE("run", "--kernel", "k"): argv[0] is "vireo". */
#define PARSE(...)                                                                          \
	parse_argv((int)(sizeof((const char *[]){ "vireo", __VA_ARGS__ }) / sizeof(char *)), \
		   (char *[]){ "vireo", __VA_ARGS__, NULL })

/* A rejection: -EINVAL, and the sentence mentions what. */
static void assert_rejected(const struct parsed *p, const char *what)
{
	assert_int_equal(p->rc, -EINVAL);
	assert_true(strlen(p->err) > 0);
	if (!strstr(p->err, what))
		fail_msg("error '%s' does not name '%s'", p->err, what);
	assert_null(strstr(p->err, "vireo: "));
}

static void test_options_run_defaults(void **state)
{
	struct parsed p = PARSE("run", "--kernel", "/boot/vmlinuz");

	assert_int_equal(p.rc, 0);
	assert_int_equal(p.command, COMMAND_RUN);
	assert_string_equal(p.cfg.kernel_path, "/boot/vmlinuz");
	assert_null(p.cfg.initramfs_path);
	assert_string_equal(p.cfg.cmdline, "console=ttyS0");
	assert_int_equal(p.cfg.nr_cpus, 1);
	assert_int_equal(p.cfg.memory, 512 * MiB);
	assert_int_equal(p.cfg.serial, SERIAL_STDIO);
	assert_null(p.cfg.serial_path);
	assert_int_equal(p.cfg.reboot, REBOOT_EXIT);
	assert_string_equal(p.cfg.name, "vireo");
}

static void test_options_run_accepts_every_long_option(void **state)
{
	struct parsed p = PARSE("run", "--kernel", "bzImage", "--initramfs", "initrd.cpio",
				"--cmdline", "console=ttyS0 quiet", "--cpus", "4", "--memory", "2G",
				"--serial", "file=/tmp/console.log", "--reboot", "restart", "--name",
				"web1");

	assert_int_equal(p.rc, 0);
	assert_int_equal(p.command, COMMAND_RUN);
	assert_string_equal(p.cfg.kernel_path, "bzImage");
	assert_string_equal(p.cfg.initramfs_path, "initrd.cpio");
	assert_string_equal(p.cfg.cmdline, "console=ttyS0 quiet");
	assert_int_equal(p.cfg.nr_cpus, 4);
	assert_int_equal(p.cfg.memory, 2 * GiB);
	assert_int_equal(p.cfg.serial, SERIAL_FILE);
	assert_string_equal(p.cfg.serial_path, "/tmp/console.log");
	assert_int_equal(p.cfg.reboot, REBOOT_RESTART);
	assert_string_equal(p.cfg.name, "web1");
}

static void test_options_run_accepts_short_options_and_equals_form(void **state)
{
	struct parsed p = PARSE("run", "-k", "vmlinux", "-i", "rd", "-c", "ro", "-p", "2", "-m",
				"1G");

	assert_int_equal(p.rc, 0);
	assert_int_equal(p.command, COMMAND_RUN);
	assert_string_equal(p.cfg.kernel_path, "vmlinux");
	assert_string_equal(p.cfg.initramfs_path, "rd");
	assert_string_equal(p.cfg.cmdline, "ro");
	assert_int_equal(p.cfg.nr_cpus, 2);
	assert_int_equal(p.cfg.memory, 1 * GiB);

	p = PARSE("run", "--kernel=k", "--initrd=old-name.img", "--memory=64", "--cpus=3",
		  "--serial=off", "--reboot=exit");
	assert_int_equal(p.rc, 0);
	assert_string_equal(p.cfg.kernel_path, "k");
	assert_string_equal(p.cfg.initramfs_path, "old-name.img");
	assert_int_equal(p.cfg.memory, 64 * MiB);
	assert_int_equal(p.cfg.nr_cpus, 3);
	assert_int_equal(p.cfg.serial, SERIAL_OFF);
	assert_int_equal(p.cfg.reboot, REBOOT_EXIT);
}

static void test_options_serial_modes(void **state)
{
	struct parsed p = PARSE("run", "-k", "k", "--serial", "stdio");

	assert_int_equal(p.rc, 0);
	assert_int_equal(p.cfg.serial, SERIAL_STDIO);
	p = PARSE("run", "-k", "k", "--serial", "off");
	assert_int_equal(p.rc, 0);
	assert_int_equal(p.cfg.serial, SERIAL_OFF);
	p = PARSE("run", "-k", "k", "--serial", "file=out.txt");
	assert_int_equal(p.rc, 0);
	assert_int_equal(p.cfg.serial, SERIAL_FILE);
	assert_string_equal(p.cfg.serial_path, "out.txt");

	p = PARSE("run", "-k", "k", "--serial", "file=");
	assert_rejected(&p, "--serial");
	p = PARSE("run", "-k", "k", "--serial", "tcp:1234");
	assert_rejected(&p, "--serial");
	assert_rejected(&p, "tcp:1234");
}

/* A guest must not fill the host's disk: a serial file has a cap, 64 MiB unless given. */
static void test_options_serial_file_cap(void **state)
{
	static const struct {
		const char *spec, *sentence;
	} refused[] = {
		{ "file=out.txt,max=1K", "--serial max=1K is too small (at least 4K)" },
		{ "file=out.txt,max=lots", "--serial max=lots is not a size (try 64M or 1G)" },
		{ "file=out.txt,max=", "--serial max= is not a size (try 64M or 1G)" },
		{ "file=out.txt,size=1M", "--serial: unknown option 'size' (known: max)" },
		{ "stdio,max=1M", "--serial max= works with file=PATH only" },
	};
	char one_meg[] = "file=out.txt,max=1M", least[] = "file=out.txt,max=4K";
	struct parsed p = PARSE("run", "-k", "k", "--serial", "file=out.txt");

	(void)state;
	assert_int_equal(p.rc, 0);
	assert_int_equal(p.cfg.serial_max, 64 * MiB);
	p = PARSE("run", "-k", "k", "--serial", one_meg);
	assert_int_equal(p.rc, 0);
	assert_string_equal(p.cfg.serial_path, "out.txt");
	assert_int_equal(p.cfg.serial_max, 1 * MiB);
	p = PARSE("run", "-k", "k", "--serial", least);
	assert_int_equal(p.rc, 0);
	assert_int_equal(p.cfg.serial_max, 4096);
	p = PARSE("run", "-k", "k", "--serial", "stdio");
	assert_int_equal(p.cfg.serial_max, 0); /* a terminal or a pipe: not capped */
	for (size_t i = 0; i < sizeof(refused) / sizeof(refused[0]); i++) {
		char spec[64]; /* --serial edits its argument in place */

		snprintf(spec, sizeof(spec), "%s", refused[i].spec);
		p = PARSE("run", "-k", "k", "--serial", spec);
		assert_int_equal(p.rc, -EINVAL);
		assert_string_equal(p.err, refused[i].sentence);
	}
}

/* --rng edits its argument in place, as --disk does: give it writable strings. */
static void test_options_console_and_rng(void **state)
{
	char rate[] = "rate=64K", off_rate[] = "off,rate=2M", on[] = "on";
	char huge[] = "rate=2G", zero[] = "rate=0", bare[] = "rate", junk[] = "fast";
	struct parsed p = PARSE("run", "-k", "k");

	assert_int_equal(p.cfg.console, CONSOLE_SERIAL);
	assert_true(p.cfg.rng);
	assert_int_equal(p.cfg.rng_rate, 1 * MiB);

	p = PARSE("run", "-k", "k", "--console", "virtio", "--rng", rate);
	assert_int_equal(p.rc, 0);
	assert_int_equal(p.cfg.console, CONSOLE_VIRTIO);
	assert_true(p.cfg.rng);
	assert_int_equal(p.cfg.rng_rate, 64 << 10);
	p = PARSE("run", "-k", "k", "--console=serial", "--rng", off_rate);
	assert_int_equal(p.rc, 0);
	assert_int_equal(p.cfg.console, CONSOLE_SERIAL);
	assert_false(p.cfg.rng);
	assert_int_equal(p.cfg.rng_rate, 2 * MiB);
	p = PARSE("run", "-k", "k", "--rng", "off", "--rng", on);
	assert_int_equal(p.rc, 0);
	assert_true(p.cfg.rng);

	p = PARSE("run", "-k", "k", "--console", "hvc0");
	assert_rejected(&p, "--console");
	assert_rejected(&p, "hvc0");
	p = PARSE("run", "-k", "k", "--rng", huge);
	assert_rejected(&p, "--rng rate=2G");
	p = PARSE("run", "-k", "k", "--rng", zero);
	assert_rejected(&p, "--rng rate=0");
	p = PARSE("run", "-k", "k", "--rng", bare);
	assert_rejected(&p, "--rng");
	p = PARSE("run", "-k", "k", "--rng", junk);
	assert_rejected(&p, "fast");
	p = PARSE("run", "-k", "k", "--rng", "");
	assert_rejected(&p, "--rng");
}

static void test_options_rejects_bad_reboot_and_empty_name(void **state)
{
	struct parsed p = PARSE("run", "-k", "k", "--reboot", "poweroff");

	assert_rejected(&p, "--reboot");
	assert_rejected(&p, "poweroff");
	p = PARSE("run", "-k", "k", "--name", "");
	assert_rejected(&p, "--name");
}

static void test_options_seccomp_is_on_unless_turned_off(void **state)
{
	struct parsed p = PARSE("run", "-k", "k");

	assert_true(p.cfg.seccomp);
	p = PARSE("run", "-k", "k", "--seccomp", "off");
	assert_int_equal(p.rc, 0);
	assert_false(p.cfg.seccomp);
	p = PARSE("run", "-k", "k", "--no-seccomp");
	assert_int_equal(p.rc, 0);
	assert_false(p.cfg.seccomp);
	p = PARSE("run", "-k", "k", "--no-seccomp", "--seccomp=on");
	assert_int_equal(p.rc, 0);
	assert_true(p.cfg.seccomp);
	p = PARSE("run", "-k", "k", "--seccomp", "maybe");
	assert_rejected(&p, "--seccomp");
	assert_rejected(&p, "maybe");
}

static void assert_size(const char *text, uint64_t expected)
{
	uint64_t bytes = 0;

	if (options_parse_size(text, &bytes) != 0)
		fail_msg("size '%s' refused", text);
	if (bytes != expected)
		fail_msg("size '%s' is %llu bytes, expected %llu", text, (unsigned long long)bytes,
			 (unsigned long long)expected);
}

static void assert_not_size(const char *text)
{
	uint64_t bytes = 0x1234;

	if (options_parse_size(text, &bytes) != -EINVAL)
		fail_msg("'%s' accepted as a size", text);
	assert_int_equal(bytes, 0x1234);
}

static void test_options_parse_size_units(void **state)
{
	assert_size("512M", 512 * MiB);
	assert_size("512m", 512 * MiB);
	assert_size("1G", 1 * GiB);
	assert_size("5G", 5 * GiB);
	assert_size("64", 64 * MiB); /* plain numbers are MiB */
	assert_size("1048576K", 1 * GiB);
	assert_size("2GiB", 2 * GiB);
	assert_size("2GB", 2 * GiB);
	assert_size("256MiB", 256 * MiB);
	assert_size("1T", TiB);
	assert_size("0", 0);
	assert_size("1k", 1024);
}

static void test_options_parse_size_rejects_garbage(void **state)
{
	assert_not_size("");
	assert_not_size("M");
	assert_not_size("-1G");
	assert_not_size(" 1G");
	assert_not_size("+1G");
	assert_not_size("1.5G");
	assert_not_size("1X");
	assert_not_size("12MiBs");
	assert_not_size("1G ");
	assert_not_size("99999999999999999999");  /* past unsigned long long */
	assert_not_size("17179869184G");	  /* 2^34 GiB: past 64 bits */
	assert_not_size("18446744073709551615"); /* MiB of that do not fit */
}

static void test_options_rejects_memory_out_of_range(void **state)
{
	static char *const bad[] = { "0", "10T", "1K", "31M", "1025G" };

	for (size_t i = 0; i < sizeof(bad) / sizeof(bad[0]); i++) {
		struct parsed p = PARSE("run", "--kernel", "k", "--memory", bad[i]);

		assert_rejected(&p, "--memory");
		assert_rejected(&p, bad[i]);
	}
	struct parsed p = PARSE("run", "--kernel", "k", "--memory", "lots");

	assert_rejected(&p, "--memory");
	assert_rejected(&p, "lots");
	p = PARSE("run", "--kernel", "k", "-m", "0");
	assert_rejected(&p, "--memory");
}

/* ",shared=" makes --memory edit its argument in place too. */
static void test_options_memory_shared(void **state)
{
	char shared[] = "2G,shared=on", unshared[] = "1G,shared=off", maybe[] = "1G,shared=maybe";
	char huge[] = "1G,hugepages=on", bad_size[] = "lots,shared=on";
	struct parsed p = PARSE("run", "-k", "k");

	assert_false(p.cfg.memory_shared);
	p = PARSE("run", "-k", "k", "--memory", shared);
	assert_int_equal(p.rc, 0);
	assert_int_equal(p.cfg.memory, 2 * GiB);
	assert_true(p.cfg.memory_shared);
	p = PARSE("run", "-k", "k", "-m", unshared);
	assert_int_equal(p.rc, 0);
	assert_int_equal(p.cfg.memory, 1 * GiB);
	assert_false(p.cfg.memory_shared);

	p = PARSE("run", "-k", "k", "--memory", maybe);
	assert_rejected(&p, "--memory shared=maybe");
	p = PARSE("run", "-k", "k", "--memory", huge);
	assert_rejected(&p, "hugepages");
	p = PARSE("run", "-k", "k", "--memory", bad_size);
	assert_rejected(&p, "lots");
}

static void test_options_accepts_memory_at_its_limits(void **state)
{
	struct parsed p = PARSE("run", "--kernel", "k", "--memory", "32M");

	assert_int_equal(p.rc, 0);
	assert_int_equal(p.cfg.memory, 32 * MiB);
	p = PARSE("run", "--kernel", "k", "--memory", "1T");
	assert_int_equal(p.rc, 0);
	assert_int_equal(p.cfg.memory, TiB);
}

static void test_options_rejects_bad_cpus(void **state)
{
	static char *const bad[] = { "0", "256", "100000", "abc", "", "2x", "-1",
					   "99999999999999999999999" };

	for (size_t i = 0; i < sizeof(bad) / sizeof(bad[0]); i++) {
		struct parsed p = PARSE("run", "--kernel", "k", "--cpus", bad[i]);

		assert_rejected(&p, "--cpus");
		assert_rejected(&p, bad[i]);
	}
}

static void test_options_accepts_cpus_at_its_limits(void **state)
{
	struct parsed p = PARSE("run", "--kernel", "k", "--cpus", "1");

	assert_int_equal(p.rc, 0);
	assert_int_equal(p.cfg.nr_cpus, 1);
	p = PARSE("run", "--kernel", "k", "--cpus", "255");
	assert_int_equal(p.rc, 0);
	assert_int_equal(p.cfg.nr_cpus, 255);
}

static void test_options_rejects_unknown_option(void **state)
{
	struct parsed p = PARSE("run", "--kernel", "k", "--bogus");

	assert_rejected(&p, "--bogus");
	p = PARSE("run", "--bogus=1", "--kernel", "k");
	assert_rejected(&p, "--bogus");
	p = PARSE("run", "-z", "--kernel", "k");
	assert_rejected(&p, "-z");
}

static void test_options_rejects_missing_value(void **state)
{
	struct parsed p = PARSE("run", "--kernel", "k", "--memory");

	assert_rejected(&p, "--memory");
	assert_rejected(&p, "needs a value");
	p = PARSE("run", "--kernel");
	assert_rejected(&p, "--kernel");
	p = PARSE("run", "--kernel", "k", "-p");
	assert_rejected(&p, "-p");
}

static void test_options_rejects_missing_kernel(void **state)
{
	struct parsed p = PARSE("run");

	assert_rejected(&p, "--kernel");
	p = PARSE("run", "--cpus", "2", "--memory", "1G");
	assert_rejected(&p, "--kernel");
}

static void test_options_rejects_stray_argument(void **state)
{
	struct parsed p = PARSE("run", "--kernel", "k", "extra");

	assert_rejected(&p, "extra");
}

static void test_options_check_command(void **state)
{
	struct parsed p = PARSE("check");

	assert_int_equal(p.rc, 0);
	assert_int_equal(p.command, COMMAND_CHECK);
	p = PARSE("check", "--verbose");
	assert_rejected(&p, "check");
}

static void test_options_help_and_version(void **state)
{
	static char *const help[] = { "--help", "-h", "help" };
	char *no_args[] = { "vireo", NULL };
	struct parsed p;

	for (size_t i = 0; i < sizeof(help) / sizeof(help[0]); i++) {
		p = PARSE(help[i]);
		assert_int_equal(p.rc, 0);
		assert_int_equal(p.command, COMMAND_HELP);
	}
	p = parse_argv(1, no_args);
	assert_int_equal(p.rc, 0);
	assert_int_equal(p.command, COMMAND_HELP);
	p = PARSE("run", "--help");
	assert_int_equal(p.rc, 0);
	assert_int_equal(p.command, COMMAND_HELP);
	p = PARSE("run", "--kernel", "k", "-h");
	assert_int_equal(p.rc, 0);
	assert_int_equal(p.command, COMMAND_HELP);

	p = PARSE("--version");
	assert_int_equal(p.rc, 0);
	assert_int_equal(p.command, COMMAND_VERSION);
	p = PARSE("-V");
	assert_int_equal(p.rc, 0);
	assert_int_equal(p.command, COMMAND_VERSION);
}

static void test_options_rejects_unknown_command(void **state)
{
	struct parsed p = PARSE("start", "--kernel", "k");

	assert_rejected(&p, "start");
	p = PARSE("--kernel", "k");
	assert_rejected(&p, "--kernel");
}

/* --jail and --net edit their argument in place, as --disk does: a writable copy. */
#define WRITABLE(text) ((char[]){ text })

static void test_options_jail_defaults_and_every_key(void **state)
{
	struct parsed p = PARSE("run", "--kernel", "k", "--jail", WRITABLE("uid=1000,gid=100"));

	assert_int_equal(p.rc, 0);
	assert_false(PARSE("run", "--kernel", "k").cfg.jail.enabled);
	assert_true(p.cfg.jail.enabled);
	assert_int_equal(p.cfg.jail.uid, 1000);
	assert_int_equal(p.cfg.jail.gid, 100);
	assert_string_equal(p.cfg.jail.cgroup_parent, "/sys/fs/cgroup/vireo");
	assert_int_equal(p.cfg.jail.memory_max, 0);
	assert_int_equal(p.cfg.jail.cpu_quota_us, 0);
	assert_int_equal(p.cfg.jail.pids_max, 0);
	assert_int_equal(p.cfg.jail.netns, JAIL_NETNS_NEW);

	p = PARSE("run", "--kernel", "k", "--jail",
		  WRITABLE("uid=1,gid=2,cgroup=/sys/fs/cgroup/vms,memory=768M,cpus=1.5,pids=64,"
			   "netns=host"));
	assert_int_equal(p.rc, 0);
	assert_string_equal(p.cfg.jail.cgroup_parent, "/sys/fs/cgroup/vms");
	assert_int_equal(p.cfg.jail.memory_max, 768 * MiB);
	assert_int_equal(p.cfg.jail.cpu_quota_us, 150000);
	assert_int_equal(p.cfg.jail.pids_max, 64);
	assert_int_equal(p.cfg.jail.netns, JAIL_NETNS_HOST);
}

/*
 * User networking opens its connections while the VM runs, from the host's
 * namespace, and reads the host's resolver then.
 */
static void test_options_jail_keeps_host_netns_for_user_networking(void **state)
{
	struct parsed p = PARSE("run", "--kernel", "k", "--jail", WRITABLE("uid=1,gid=1"), "--net",
				WRITABLE("user"));

	assert_int_equal(p.rc, 0);
	assert_int_equal(p.cfg.jail.netns, JAIL_NETNS_HOST);
	assert_true(p.cfg.jail.resolv_conf);
	p = PARSE("run", "--kernel", "k", "--net", WRITABLE("tap=tap0"), "--jail",
		  WRITABLE("uid=1,gid=1"));
	assert_int_equal(p.cfg.jail.netns, JAIL_NETNS_NEW);
	assert_false(p.cfg.jail.resolv_conf);
	p = PARSE("run", "--kernel", "k", "--net", WRITABLE("user"), "--jail",
		  WRITABLE("uid=1,gid=1,netns=new"));
	assert_rejected(&p, "netns=new");
	assert_non_null(strstr(p.err, "--net user"));
}

/* --jail SPEC is refused with a sentence that names --jail and what. */
static void assert_jail_rejected(const char *spec, const char *what)
{
	char copy[64];
	struct parsed p;

	snprintf(copy, sizeof(copy), "%s", spec);
	p = PARSE("run", "--kernel", "k", "--jail", copy);
	assert_rejected(&p, what);
	assert_non_null(strstr(p.err, "--jail"));
}

static void test_options_jail_rejects_root_and_missing_ids(void **state)
{
	assert_jail_rejected("uid=0,gid=100", "uid=0");
	assert_jail_rejected("uid=100,gid=0", "gid=0");
	assert_jail_rejected("uid=100", "gid=N");
	assert_jail_rejected("memory=1G", "uid=N");
	assert_jail_rejected("uid=-1,gid=1", "uid=-1");
	assert_jail_rejected("uid=4294967295,gid=1", "uid=4294967295");
	assert_jail_rejected("uid=bob,gid=1", "uid=bob");
}

static void test_options_jail_rejects_bad_values(void **state)
{
	static const char *const bad[][2] = {
		{ "uid=1,gid=1,memory=lots", "memory=lots" },
		{ "uid=1,gid=1,memory=0", "memory=0" },
		{ "uid=1,gid=1,cpus=0", "cpus=0" },
		{ "uid=1,gid=1,cpus=2000", "cpus=2000" },
		{ "uid=1,gid=1,cpus=1.5x", "cpus=1.5x" },
		{ "uid=1,gid=1,cpus=-1", "cpus=-1" },
		{ "uid=1,gid=1,pids=0", "pids=0" },
		{ "uid=1,gid=1,pids=5000000", "pids=5000000" },
		{ "uid=1,gid=1,netns=other", "netns=other" },
		{ "uid=1,gid=1,cgroup=vireo", "cgroup=vireo" },
		{ "uid=1,gid=1,cgroup=", "cgroup" },
		{ "uid=1,gid=1,chroot=/x", "chroot" },
	};

	for (size_t i = 0; i < sizeof(bad) / sizeof(bad[0]); i++)
		assert_jail_rejected(bad[i][0], bad[i][1]);
}

/* The VM's cgroup is named after --name: a '/' would put it somewhere else. */
static void test_options_jail_rejects_name_with_slash(void **state)
{
	struct parsed p = PARSE("run", "--kernel", "k", "--name", "a/b", "--jail",
				WRITABLE("uid=1,gid=1"));

	assert_rejected(&p, "--name 'a/b'");
	p = PARSE("run", "--kernel", "k", "--name", "a/b");
	assert_int_equal(p.rc, 0);
}

/* The help names every option the parser accepts. */
static void test_options_help_lists_every_run_option(void **state)
{
	static const char *const options[] = { "--kernel", "--initramfs", "--cmdline", "--cpus",
					       "--memory", "--serial", "--reboot", "--name",
					       "--console", "--rng", "--jail",
					       "-k,", "-i,", "-c,", "-p,", "-m," };
	FILE *capture = tmpfile();
	char text[8192];
	size_t len;
	int saved;

	assert_non_null(capture);
	fflush(stdout);
	saved = dup(STDOUT_FILENO);
	assert_true(saved >= 0);
	assert_true(dup2(fileno(capture), STDOUT_FILENO) >= 0);
	options_print_help();
	fflush(stdout);
	assert_true(dup2(saved, STDOUT_FILENO) >= 0);
	close(saved);
	rewind(capture);
	len = fread(text, 1, sizeof(text) - 1, capture);
	text[len] = '\0';
	fclose(capture);
	for (size_t i = 0; i < sizeof(options) / sizeof(options[0]); i++) {
		if (!strstr(text, options[i]))
			fail_msg("help does not mention %s", options[i]);
	}
	assert_non_null(strstr(text, "255"));
}

/*
 * Clears what glibc's getopt remembers between calls (optind = 0 forces it
 * to start over), so a test does not see what an earlier test left behind.
 */
static void forget_earlier_getopt_state(void)
{
	char *argv[] = { "reset", NULL };

	optind = 0;
	getopt(1, argv, "");
}

/*
 * Parsing twice in one process (tests, a config reload) must not depend on
 * what getopt saw before: here the first parse stops at -h in the middle of
 * the cluster "-hk".
 */
static void test_options_second_parse_is_independent_of_first(void **state)
{
	struct parsed p;

	forget_earlier_getopt_state();
	p = PARSE("run", "-hk", "first");
	assert_int_equal(p.rc, 0);
	assert_int_equal(p.command, COMMAND_HELP);
	p = PARSE("run", "--cpus", "2", "--kernel", "second");
	assert_int_equal(p.rc, 0);
	assert_int_equal(p.command, COMMAND_RUN);
	assert_int_equal(p.cfg.nr_cpus, 2);
	assert_string_equal(p.cfg.kernel_path, "second");
}

/* An unknown letter inside a cluster of short options is the one named. */
static void test_options_names_unknown_short_option_in_cluster(void **state)
{
	struct parsed p;

	forget_earlier_getopt_state();
	p = PARSE("run", "-xk", "k");
	assert_rejected(&p, "-x");
	forget_earlier_getopt_state();
}

int main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(test_options_run_defaults),
		cmocka_unit_test(test_options_run_accepts_every_long_option),
		cmocka_unit_test(test_options_run_accepts_short_options_and_equals_form),
		cmocka_unit_test(test_options_serial_modes),
		cmocka_unit_test(test_options_serial_file_cap),
		cmocka_unit_test(test_options_console_and_rng),
		cmocka_unit_test(test_options_rejects_bad_reboot_and_empty_name),
		cmocka_unit_test(test_options_seccomp_is_on_unless_turned_off),
		cmocka_unit_test(test_options_parse_size_units),
		cmocka_unit_test(test_options_parse_size_rejects_garbage),
		cmocka_unit_test(test_options_rejects_memory_out_of_range),
		cmocka_unit_test(test_options_memory_shared),
		cmocka_unit_test(test_options_accepts_memory_at_its_limits),
		cmocka_unit_test(test_options_rejects_bad_cpus),
		cmocka_unit_test(test_options_accepts_cpus_at_its_limits),
		cmocka_unit_test(test_options_rejects_unknown_option),
		cmocka_unit_test(test_options_rejects_missing_value),
		cmocka_unit_test(test_options_rejects_missing_kernel),
		cmocka_unit_test(test_options_rejects_stray_argument),
		cmocka_unit_test(test_options_check_command),
		cmocka_unit_test(test_options_help_and_version),
		cmocka_unit_test(test_options_rejects_unknown_command),
		cmocka_unit_test(test_options_jail_defaults_and_every_key),
		cmocka_unit_test(test_options_jail_keeps_host_netns_for_user_networking),
		cmocka_unit_test(test_options_jail_rejects_root_and_missing_ids),
		cmocka_unit_test(test_options_jail_rejects_bad_values),
		cmocka_unit_test(test_options_jail_rejects_name_with_slash),
		cmocka_unit_test(test_options_help_lists_every_run_option),
		/* Last: each leaves getopt in the middle of a cluster. */
		cmocka_unit_test(test_options_second_parse_is_independent_of_first),
		cmocka_unit_test(test_options_names_unknown_short_option_in_cluster),
	};

	return cmocka_run_group_tests(tests, NULL, NULL);
}
