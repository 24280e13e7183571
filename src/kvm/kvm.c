/*
 * The KVM engine: open /dev/kvm, create the VM in the order KVM needs
 * (TSS and identity map before vCPUs, irqchip before PIT and vCPUs),
 * register guest RAM as memory slots.
 */
#include "kvm/kvm.h"

#include <errno.h>
#include <fcntl.h>
#include <linux/kvm.h>
#include <string.h>
#include <sys/eventfd.h>
#include <sys/ioctl.h>
#include <unistd.h>

#include "vmm/guest_mem.h"
#include "x86/layout.h"

static const struct {
	int cap;
	const char *why;
} required_caps[] = {
	{ KVM_CAP_IRQCHIP, "KVM lacks an in-kernel irqchip (KVM_CAP_IRQCHIP)" },
	{ KVM_CAP_PIT2, "KVM lacks an in-kernel PIT (KVM_CAP_PIT2)" },
	{ KVM_CAP_USER_MEMORY, "KVM lacks user memory slots (KVM_CAP_USER_MEMORY)" },
	{ KVM_CAP_SET_TSS_ADDR, "KVM lacks KVM_CAP_SET_TSS_ADDR" },
	{ KVM_CAP_IOEVENTFD, "KVM lacks ioeventfd (KVM_CAP_IOEVENTFD)" },
	{ KVM_CAP_IRQFD, "KVM lacks irqfd (KVM_CAP_IRQFD)" },
	{ KVM_CAP_EXT_CPUID, "KVM lacks KVM_GET_SUPPORTED_CPUID" },
	{ KVM_CAP_IMMEDIATE_EXIT, "KVM lacks KVM_CAP_IMMEDIATE_EXIT (kernel older than 4.11)" },
};

static int kvm_check_caps(struct kvm *kvm, const char **why)
{
	for (size_t i = 0; i < sizeof(required_caps) / sizeof(required_caps[0]); i++) {
		if (ioctl(kvm->sys_fd, KVM_CHECK_EXTENSION, required_caps[i].cap) <= 0) {
			*why = required_caps[i].why;
			return -ENOTSUP;
		}
	}
	return 0;
}

int kvm_open(struct kvm *kvm, const char **why)
{
	int err;

	memset(kvm, 0, sizeof(*kvm));
	kvm->vm_fd = -1;
	kvm->sys_fd = open("/dev/kvm", O_RDWR | O_CLOEXEC);
	if (kvm->sys_fd < 0) {
		err = -errno;
		if (err == -ENOENT)
			*why = "/dev/kvm does not exist: enable virtualization in the firmware and load "
			       "kvm_intel or kvm_amd (inside a VM, enable nested virtualization)";
		else if (err == -EACCES || err == -EPERM)
			*why = "/dev/kvm is not accessible: run as root or join the group that owns it "
			       "(usually 'kvm')";
		else
			*why = "cannot open /dev/kvm";
		return err;
	}
	if (ioctl(kvm->sys_fd, KVM_GET_API_VERSION, 0) != KVM_API_VERSION) {
		*why = "/dev/kvm speaks an unexpected KVM API version";
		kvm_close(kvm);
		return -ENOTSUP;
	}
	err = kvm_check_caps(kvm, why);
	if (err) {
		kvm_close(kvm);
		return err;
	}
	kvm->vcpu_mmap_size = ioctl(kvm->sys_fd, KVM_GET_VCPU_MMAP_SIZE, 0);
	kvm->max_vcpus = ioctl(kvm->sys_fd, KVM_CHECK_EXTENSION, KVM_CAP_MAX_VCPUS);
	if (kvm->max_vcpus <= 0)
		kvm->max_vcpus = ioctl(kvm->sys_fd, KVM_CHECK_EXTENSION, KVM_CAP_NR_VCPUS);
	if (kvm->max_vcpus <= 0)
		kvm->max_vcpus = 4; /* what the KVM API promises when it says nothing */
	return 0;
}

int kvm_create_vm(struct kvm *kvm, const char **why)
{
	struct kvm_pit_config pit = { .flags = KVM_PIT_SPEAKER_DUMMY };
	uint64_t identity_map = LAYOUT_KVM_IDENTITY_MAP;

	kvm->vm_fd = ioctl(kvm->sys_fd, KVM_CREATE_VM, 0);
	if (kvm->vm_fd < 0) {
		*why = "KVM_CREATE_VM failed (is another hypervisor holding the virtualization "
		       "extensions?)";
		return -errno;
	}
	/* Both only matter on Intel VMX, but must come before the first vCPU. */
	if (ioctl(kvm->vm_fd, KVM_SET_TSS_ADDR, (unsigned long)LAYOUT_KVM_TSS) < 0 ||
	    ioctl(kvm->vm_fd, KVM_SET_IDENTITY_MAP_ADDR, &identity_map) < 0) {
		*why = "KVM refused the TSS or identity-map address";
		return -errno;
	}
	if (ioctl(kvm->vm_fd, KVM_CREATE_IRQCHIP, 0) < 0) {
		*why = "KVM_CREATE_IRQCHIP failed";
		return -errno;
	}
	if (ioctl(kvm->vm_fd, KVM_CREATE_PIT2, &pit) < 0) {
		*why = "KVM_CREATE_PIT2 failed";
		return -errno;
	}
	return 0;
}

int kvm_map_guest_mem(struct kvm *kvm, const struct guest_mem *mem)
{
	for (int i = 0; i < mem->nr_regions; i++) {
		struct kvm_userspace_memory_region slot = {
			.slot = (uint32_t)kvm->nr_slots,
			.guest_phys_addr = mem->regions[i].gpa,
			.memory_size = mem->regions[i].size,
			.userspace_addr = (uint64_t)(uintptr_t)mem->regions[i].host,
		};

		if (ioctl(kvm->vm_fd, KVM_SET_USER_MEMORY_REGION, &slot) < 0)
			return -errno;
		kvm->nr_slots++;
	}
	return 0;
}

int kvm_irq_line(struct kvm *kvm, uint32_t gsi, int level)
{
	struct kvm_irq_level irq = { .irq = gsi, .level = (uint32_t)level };

	return ioctl(kvm->vm_fd, KVM_IRQ_LINE, &irq) < 0 ? -errno : 0;
}

void kvm_irq_line_set(void *opaque, uint32_t gsi, int level)
{
	kvm_irq_line(opaque, gsi, level);
}

int kvm_ioeventfd(struct kvm *kvm, uint64_t addr, uint32_t len, uint64_t value)
{
	int fd = eventfd(0, EFD_CLOEXEC | EFD_NONBLOCK);
	struct kvm_ioeventfd io = {
		.addr = addr, .len = len, .datamatch = value, .fd = fd,
		.flags = KVM_IOEVENTFD_FLAG_DATAMATCH,
	};

	if (fd < 0)
		return -errno;
	if (ioctl(kvm->vm_fd, KVM_IOEVENTFD, &io) < 0) {
		int err = -errno;

		close(fd);
		return err;
	}
	return fd;
}

int kvm_irqfd(struct kvm *kvm, uint32_t gsi)
{
	int fd = eventfd(0, EFD_CLOEXEC | EFD_NONBLOCK);
	struct kvm_irqfd irqfd = { .fd = (uint32_t)fd, .gsi = gsi };

	if (fd < 0)
		return -errno;
	if (ioctl(kvm->vm_fd, KVM_IRQFD, &irqfd) < 0) {
		int err = -errno;

		close(fd);
		return err;
	}
	return fd;
}

void kvm_destroy_vm(struct kvm *kvm)
{
	if (kvm->vm_fd >= 0)
		close(kvm->vm_fd);
	kvm->vm_fd = -1;
	kvm->nr_slots = 0;
}

void kvm_close(struct kvm *kvm)
{
	kvm_destroy_vm(kvm);
	if (kvm->sys_fd >= 0)
		close(kvm->sys_fd);
	kvm->sys_fd = -1;
}
