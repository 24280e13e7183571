/*
 * A 16550A UART on the port-I/O bus (COM1 on the x86 board).
 *
 * The guest's 8250 driver sees a real 16550A: FIFOs, divisor latch,
 * loopback, the usual interrupt priorities. The host side is infinitely
 * fast: a byte written to THR is written to out_fd at once, and received
 * bytes move from a host-side input buffer into the 16-byte receive FIFO as
 * soon as it has room, so pasted text is never dropped.
 *
 * Threads: register accesses come from vCPU threads (through the bus),
 * serial_receive() from the I/O thread. The device locks its own state.
 *
 * Feeding input (the I/O thread, reading stdin or a socket):
 *
 *	n = serial_receive(serial, buf, len);
 *	if (n < len) {
 *		// The input buffer is full: keep buf[n..len) and stop reading
 *		// the input; wait for serial_input_room_fd() to be readable,
 *		// read its 8-byte counter to reset it, then offer the rest.
 *	}
 *
 * The room fd is an eventfd, signalled once after a short serial_receive()
 * when the guest has drained the input buffer to half full. Being an
 * eventfd it stays readable until read, so no wake-up is lost between the
 * short serial_receive() and adding the fd to an epoll set.
 *
 * Output: a blocked out_fd (a stalled terminal) blocks the vCPU writing THR,
 * never the I/O thread. A write error drops the byte. If out_fd is a pipe or
 * socket, the process should ignore SIGPIPE.
 *
 * A log file is capped so that a guest cannot fill the host's disk: out_fd
 * never grows past out_max bytes. The last bytes below the cap are kept for
 * SERIAL_FULL_NOTE, written once in place of the first byte that does not
 * fit; later bytes are dropped, and the guest never notices. The count
 * starts at out_fd's offset, so a device made for a guest that rebooted
 * (--reboot restart) does not get a fresh allowance on the same file.
 */
#ifndef VIREO_DEVICES_SERIAL_H
#define VIREO_DEVICES_SERIAL_H

#include <stddef.h>
#include <stdint.h>

#include "vmm/bus.h"
#include "vmm/irq.h"

#define SERIAL_NR_PORTS 8	/* registers at base + 0 .. base + 7 */
#define SERIAL_FIFO_SIZE 16	/* the receive FIFO the guest sees */
#define SERIAL_INPUT_SIZE 4096	/* host-side input buffer behind it */
/* Ends a capped output; its own line, whatever the guest was writing. */
#define SERIAL_FULL_NOTE \
	"\r\nvireo: the serial output reached its size limit; the rest is dropped\r\n"

struct serial;

/*
 * out_fd receives every transmitted byte (-1 discards them); the caller
 * keeps owning it. out_max caps it (see the top of this file; 0: no cap).
 * *irq is copied. NULL with errno set on failure.
 */
struct serial *serial_create(const struct irq_line *irq, int out_fd, uint64_t out_max);

/* Claims SERIAL_NR_PORTS ports at base; 0 or a negative errno from bus_register. */
int serial_register(struct serial *serial, struct bus *pio, uint16_t base);

/*
 * Accepts as many bytes as fit in the input buffer and returns how many;
 * fewer than len means full (see the top of this file). Raises the
 * receive interrupt if the guest enabled it.
 */
size_t serial_receive(struct serial *serial, const uint8_t *buf, size_t len);

/* The eventfd signalled when there is room again after a short serial_receive(). */
int serial_input_room_fd(const struct serial *serial);

/* Frees the device and its eventfd; does not close out_fd. */
void serial_destroy(struct serial *serial);

#endif
