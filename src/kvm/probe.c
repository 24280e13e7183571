/*
 * The speed probe: a real-mode loop of PROBE_ITERATIONS iterations in a
 * one-page VM, timed from KVM_RUN until its port write.
 */
#include "kvm/probe.h"

#include <errno.h>
#include <linux/kvm.h>
#include <string.h>
#include <sys/ioctl.h>
#include <sys/mman.h>
#include <time.h>
#include <unistd.h>

#include "kvm/kvm.h"

#define PROBE_MEM_SIZE 0x10000
#define PROBE_CODE_ADDR 0x1000
#define PROBE_ITERATIONS (1u << 20)
#define PROBE_DONE_PORT 0x80

/* mov ecx, PROBE_ITERATIONS; 1: dec ecx; jnz 1b; out PROBE_DONE_PORT, al; hlt */
static const uint8_t probe_code[] = {
	0x66, 0xb9, 0x00, 0x00, 0x10, 0x00, /* mov ecx, 0x00100000 */
	0x66, 0x49,			    /* dec ecx */
	0x75, 0xfc,			    /* jnz -4 */
	0xe6, PROBE_DONE_PORT,		    /* out 0x80, al */
	0xf4,				    /* hlt */
};

static double seconds_since(const struct timespec *start)
{
	struct timespec now;

	clock_gettime(CLOCK_MONOTONIC, &now);
	return (double)(now.tv_sec - start->tv_sec) + (now.tv_nsec - start->tv_nsec) / 1e9;
}

static int probe_run(struct kvm *kvm, int vm_fd, uint8_t *mem, double *mips)
{
	struct kvm_userspace_memory_region slot = {
		.memory_size = PROBE_MEM_SIZE, .userspace_addr = (uint64_t)(uintptr_t)mem,
	};
	struct kvm_regs regs = { .rip = PROBE_CODE_ADDR, .rflags = 2 };
	struct kvm_sregs sregs;
	struct kvm_run *run;
	struct timespec start;
	int vcpu_fd, err = 0;

	memcpy(mem + PROBE_CODE_ADDR, probe_code, sizeof(probe_code));
	if (ioctl(vm_fd, KVM_SET_USER_MEMORY_REGION, &slot) < 0)
		return -errno;
	vcpu_fd = ioctl(vm_fd, KVM_CREATE_VCPU, 0);
	if (vcpu_fd < 0)
		return -errno;
	run = mmap(NULL, (size_t)kvm->vcpu_mmap_size, PROT_READ | PROT_WRITE, MAP_SHARED,
		   vcpu_fd, 0);
	if (run == MAP_FAILED) {
		close(vcpu_fd);
		return -errno;
	}
	if (ioctl(vcpu_fd, KVM_GET_SREGS, &sregs) < 0)
		err = -errno;
	sregs.cs.base = 0;
	sregs.cs.selector = 0;
	if (!err && (ioctl(vcpu_fd, KVM_SET_SREGS, &sregs) < 0 ||
		     ioctl(vcpu_fd, KVM_SET_REGS, &regs) < 0))
		err = -errno;
	clock_gettime(CLOCK_MONOTONIC, &start);
	while (!err && ioctl(vcpu_fd, KVM_RUN, 0) == 0 && run->exit_reason != KVM_EXIT_IO)
		if (run->exit_reason != KVM_EXIT_INTR && run->exit_reason != KVM_EXIT_IRQ_WINDOW_OPEN)
			err = -EIO;
	if (!err && run->exit_reason != KVM_EXIT_IO)
		err = -EIO;
	if (!err)
		*mips = PROBE_ITERATIONS / seconds_since(&start) / 1e6;
	munmap(run, (size_t)kvm->vcpu_mmap_size);
	close(vcpu_fd);
	return err;
}

int kvm_probe_speed(struct kvm *kvm, double *mips)
{
	int vm_fd = ioctl(kvm->sys_fd, KVM_CREATE_VM, 0);
	uint8_t *mem;
	int err;

	if (vm_fd < 0)
		return -errno;
	mem = mmap(NULL, PROBE_MEM_SIZE, PROT_READ | PROT_WRITE, MAP_PRIVATE | MAP_ANONYMOUS,
		   -1, 0);
	if (mem == MAP_FAILED) {
		close(vm_fd);
		return -errno;
	}
	err = probe_run(kvm, vm_fd, mem, mips);
	munmap(mem, PROBE_MEM_SIZE);
	close(vm_fd);
	return err;
}
