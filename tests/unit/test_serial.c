/*
 * The 16550A UART driven through the port-I/O bus the way Linux's 8250
 * driver drives it: register sequences from its probe and startup code, a
 * fake irq line that records every level change, a pipe as the output.
 */
#include <errno.h>
#include <fcntl.h>
#include <poll.h>
#include <pthread.h>
#include <setjmp.h>
#include <signal.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>
#include <sys/stat.h>
#include <unistd.h>

#include <cmocka.h>
#include <linux/serial_reg.h>

#include "devices/serial.h"
#include "x86/layout.h"

struct irq_recorder {
	int level;
	int raises; /* 0 -> 1 transitions: edges an edge-triggered IOAPIC pin sees */
	uint32_t gsi;
};

struct harness {
	struct serial *serial;
	struct bus pio;
	struct irq_recorder irq;
	int out[2]; /* out[0]: what the host terminal would read */
};

static void record_irq(void *opaque, uint32_t gsi, int level)
{
	struct irq_recorder *rec = opaque;

	if (level && !rec->level)
		rec->raises++;
	rec->level = level;
	rec->gsi = gsi;
}

static int setup(void **state)
{
	struct harness *h = calloc(1, sizeof(*h));
	struct irq_line line = { .set = record_irq, .opaque = &h->irq, .gsi = LAYOUT_COM1_IRQ };

	assert_non_null(h);
	assert_int_equal(pipe2(h->out, O_NONBLOCK | O_CLOEXEC), 0);
	h->serial = serial_create(&line, h->out[1], 0);
	assert_non_null(h->serial);
	bus_init(&h->pio);
	assert_int_equal(serial_register(h->serial, &h->pio, LAYOUT_COM1_PORT), 0);
	*state = h;
	return 0;
}

static int teardown(void **state)
{
	struct harness *h = *state;

	serial_destroy(h->serial);
	bus_destroy(&h->pio);
	if (h->out[0] >= 0)
		close(h->out[0]);
	close(h->out[1]);
	free(h);
	return 0;
}

static void outb(struct harness *h, unsigned int reg, uint8_t val)
{
	assert_true(bus_write(&h->pio, LAYOUT_COM1_PORT + reg, &val, 1));
}

static uint8_t inb(struct harness *h, unsigned int reg)
{
	uint8_t val = 0x5a;

	assert_true(bus_read(&h->pio, LAYOUT_COM1_PORT + reg, &val, 1));
	return val;
}

static size_t read_output(struct harness *h, char *buf, size_t len)
{
	ssize_t n = read(h->out[0], buf, len);

	return n < 0 ? 0 : (size_t)n;
}

static bool room_signalled(struct harness *h)
{
	struct pollfd pfd = { .fd = serial_input_room_fd(h->serial), .events = POLLIN };

	return poll(&pfd, 1, 0) == 1;
}

static void test_serial_detected_as_16550a_by_probe_sequence(void **state)
{
	struct harness *h = *state;
	uint8_t save_mcr, iir;

	/* autoconfig(): IER holds 0 and 0x0f in its low nibble. */
	outb(h, UART_IER, 0);
	assert_int_equal(inb(h, UART_IER) & 0x0f, 0);
	outb(h, UART_IER, 0x0f);
	assert_int_equal(inb(h, UART_IER) & 0x0f, 0x0f);
	outb(h, UART_IER, 0);

	/* Loopback: RTS and OUT2 come back as CTS and DCD. */
	save_mcr = inb(h, UART_MCR);
	outb(h, UART_MCR, UART_MCR_LOOP | UART_MCR_OUT2 | UART_MCR_RTS);
	assert_int_equal(inb(h, UART_MSR) & 0xf0, UART_MSR_DCD | UART_MSR_CTS);
	outb(h, UART_MCR, save_mcr);

	/* No EFR behind LCR 0xbf; FIFOs report as enabled in IIR bits 7:6. */
	outb(h, UART_LCR, UART_LCR_CONF_MODE_B);
	outb(h, UART_EFR, 0);
	outb(h, UART_LCR, 0);
	outb(h, UART_FCR, UART_FCR_ENABLE_FIFO);
	assert_int_equal(inb(h, UART_IIR) >> 6, 3);

	/* autoconfig_16550a(): not a 16650 (EFR reads non-zero under DLAB)... */
	outb(h, UART_LCR, UART_LCR_CONF_MODE_A);
	assert_int_not_equal(inb(h, UART_EFR), 0);
	outb(h, UART_LCR, UART_LCR_CONF_MODE_B);
	assert_int_not_equal(inb(h, UART_EFR), 0);
	/* ...not a National SuperIO (MCR.LOOP does not show at LCR 0xe0, reg 2)... */
	outb(h, UART_LCR, 0);
	outb(h, UART_MCR, UART_MCR_LOOP);
	outb(h, UART_LCR, 0xe0);
	assert_int_equal(inb(h, 2) & UART_MCR_LOOP, 0);
	outb(h, UART_LCR, 0);
	outb(h, UART_MCR, 0);
	/* ...not a 16750 (no 64-byte FIFO bit), not an XScale (IER.UUE does not stick). */
	outb(h, UART_FCR, UART_FCR_ENABLE_FIFO | UART_FCR7_64BYTE);
	iir = inb(h, UART_IIR);
	assert_int_equal(iir & 0x20, 0);
	outb(h, UART_IER, UART_IER_UUE);
	assert_int_equal(inb(h, UART_IER) & UART_IER_UUE, 0);
	outb(h, UART_IER, 0);

	/* serial8250_do_startup(): LSR must not float at 0xff. */
	assert_int_not_equal(inb(h, UART_LSR), 0xff);
}

static void test_serial_scratch_register_holds_any_value(void **state)
{
	struct harness *h = *state;

	outb(h, UART_SCR, 0xa5);
	assert_int_equal(inb(h, UART_SCR), 0xa5);
	outb(h, UART_SCR, 0x5a);
	assert_int_equal(inb(h, UART_SCR), 0x5a);
}

static void test_serial_divisor_latch_hides_behind_dlab(void **state)
{
	struct harness *h = *state;
	char c;

	outb(h, UART_IER, UART_IER_RDI);
	outb(h, UART_LCR, UART_LCR_DLAB | UART_LCR_WLEN8);
	outb(h, UART_DLL, 0x01);
	outb(h, UART_DLM, 0x02);
	assert_int_equal(inb(h, UART_DLL), 0x01);
	assert_int_equal(inb(h, UART_DLM), 0x02);
	outb(h, UART_LCR, UART_LCR_WLEN8);
	assert_int_equal(inb(h, UART_IER), UART_IER_RDI);
	assert_int_equal(inb(h, UART_LCR), UART_LCR_WLEN8);
	/* Writing the divisor sent nothing. */
	assert_int_equal(read_output(h, &c, 1), 0);
}

static void test_serial_transmits_each_byte_at_once(void **state)
{
	struct harness *h = *state;
	char buf[8];

	for (const char *p = "hello"; *p; p++) {
		assert_true(inb(h, UART_LSR) & UART_LSR_THRE);
		outb(h, UART_TX, (uint8_t)*p);
	}
	assert_int_equal(read_output(h, buf, sizeof(buf)), 5);
	assert_memory_equal(buf, "hello", 5);
	assert_int_equal(inb(h, UART_LSR) & (UART_LSR_THRE | UART_LSR_TEMT),
			 UART_LSR_THRE | UART_LSR_TEMT);
}

static void test_serial_thre_interrupt_fires_when_enabled(void **state)
{
	struct harness *h = *state;

	assert_int_equal(h->irq.level, 0);
	outb(h, UART_IER, UART_IER_THRI);
	assert_int_equal(h->irq.level, 1);
	assert_int_equal(h->irq.gsi, LAYOUT_COM1_IRQ);
	assert_int_equal(inb(h, UART_IIR), UART_IIR_THRI);
	/* That read cleared it. */
	assert_int_equal(h->irq.level, 0);
	assert_int_equal(inb(h, UART_IIR), UART_IIR_NO_INT);
}

static void test_serial_thre_reasserts_when_ier_rewritten(void **state)
{
	struct harness *h = *state;
	uint8_t iir1, iir2;

	/* The UART_BUG_THRE check in serial8250_do_startup(), FIFOs on. */
	outb(h, UART_FCR, UART_FCR_ENABLE_FIFO);
	outb(h, UART_IER, UART_IER_THRI);
	iir1 = inb(h, UART_IIR);
	outb(h, UART_IER, 0);
	outb(h, UART_IER, UART_IER_THRI);
	iir2 = inb(h, UART_IIR);
	outb(h, UART_IER, 0);
	assert_int_equal(iir1 & UART_IIR_NO_INT, 0);
	assert_int_equal(iir2 & UART_IIR_NO_INT, 0);
	assert_int_equal(iir2, 0xc0 | UART_IIR_THRI);
	assert_int_equal(h->irq.raises, 2);
	assert_int_equal(h->irq.level, 0);
}

static void test_serial_thr_write_gives_a_new_thre_edge(void **state)
{
	struct harness *h = *state;
	char buf[4];

	outb(h, UART_IER, UART_IER_THRI);
	assert_int_equal(h->irq.raises, 1);
	/* The driver's interrupt handler: IIR says THRE, it writes bytes. */
	assert_int_equal(inb(h, UART_IIR), UART_IIR_THRI);
	outb(h, UART_TX, 'a');
	outb(h, UART_TX, 'b');
	assert_int_equal(h->irq.raises, 3);
	assert_int_equal(h->irq.level, 1);
	assert_int_equal(inb(h, UART_IIR), UART_IIR_THRI);
	assert_int_equal(h->irq.level, 0);
	assert_int_equal(read_output(h, buf, sizeof(buf)), 2);
}

static void test_serial_received_byte_raises_rx_interrupt(void **state)
{
	struct harness *h = *state;

	assert_int_equal(serial_receive(h->serial, (const uint8_t *)"x", 1), 1);
	assert_int_equal(h->irq.level, 0); /* not enabled yet */
	assert_true(inb(h, UART_LSR) & UART_LSR_DR);
	outb(h, UART_IER, UART_IER_RDI);
	assert_int_equal(h->irq.level, 1);
	assert_int_equal(inb(h, UART_IIR), UART_IIR_RDI);
	assert_int_equal(inb(h, UART_RX), 'x');
	assert_int_equal(h->irq.level, 0);
	assert_false(inb(h, UART_LSR) & UART_LSR_DR);
	assert_int_equal(inb(h, UART_IIR), UART_IIR_NO_INT);
}

static void test_serial_fifo_trigger_level_picks_rx_interrupt_kind(void **state)
{
	struct harness *h = *state;
	const uint8_t data[8] = "abcdefgh";

	outb(h, UART_FCR, UART_FCR_ENABLE_FIFO | UART_FCR_TRIGGER_8);
	outb(h, UART_IER, UART_IER_RDI);
	serial_receive(h->serial, data, 3);
	/* Below the trigger level the (instant) character timeout reports it. */
	assert_int_equal(inb(h, UART_IIR), 0xc0 | UART_IIR_RX_TIMEOUT);
	serial_receive(h->serial, data + 3, 5);
	assert_int_equal(inb(h, UART_IIR), 0xc0 | UART_IIR_RDI);
	for (int i = 0; i < 8; i++)
		assert_int_equal(inb(h, UART_RX), data[i]);
	assert_int_equal(inb(h, UART_IIR), 0xc0 | UART_IIR_NO_INT);
}

static void test_serial_fifo_clear_drops_only_what_the_guest_sees(void **state)
{
	struct harness *h = *state;
	uint8_t data[20];

	for (int i = 0; i < 20; i++)
		data[i] = (uint8_t)i;
	outb(h, UART_FCR, UART_FCR_ENABLE_FIFO);
	assert_int_equal(serial_receive(h->serial, data, sizeof(data)), sizeof(data));
	outb(h, UART_FCR, UART_FCR_ENABLE_FIFO | UART_FCR_CLEAR_RCVR);
	for (int i = SERIAL_FIFO_SIZE; i < 20; i++)
		assert_int_equal(inb(h, UART_RX), i);
	assert_false(inb(h, UART_LSR) & UART_LSR_DR);
}

static void test_serial_iir_priority(void **state)
{
	struct harness *h = *state;

	outb(h, UART_FCR, UART_FCR_ENABLE_FIFO);
	/* Entering loopback changes DSR: a modem status change. */
	outb(h, UART_MCR, UART_MCR_LOOP | UART_MCR_OUT2 | UART_MCR_RTS);
	/* 17 looped-back bytes overflow the 16-byte FIFO: an overrun. */
	for (int i = 0; i <= SERIAL_FIFO_SIZE; i++)
		outb(h, UART_TX, (uint8_t)i);
	outb(h, UART_IER, UART_IER_MSI | UART_IER_RLSI | UART_IER_THRI | UART_IER_RDI);
	assert_int_equal(h->irq.level, 1);

	assert_int_equal(inb(h, UART_IIR), 0xc0 | UART_IIR_RLSI);
	assert_true(inb(h, UART_LSR) & UART_LSR_OE);
	assert_int_equal(inb(h, UART_IIR), 0xc0 | UART_IIR_RDI);
	for (int i = 0; i < SERIAL_FIFO_SIZE; i++)
		assert_int_equal(inb(h, UART_RX), i);
	assert_int_equal(inb(h, UART_IIR), 0xc0 | UART_IIR_THRI);
	assert_int_equal(inb(h, UART_IIR), 0xc0 | UART_IIR_MSI);
	assert_int_equal(inb(h, UART_MSR) & UART_MSR_ANY_DELTA, UART_MSR_DDSR);
	assert_int_equal(inb(h, UART_IIR), 0xc0 | UART_IIR_NO_INT);
	assert_int_equal(h->irq.level, 0);
}

static void test_serial_loopback_keeps_output_quiet(void **state)
{
	struct harness *h = *state;
	char c;

	outb(h, UART_MCR, UART_MCR_LOOP);
	outb(h, UART_TX, 'q');
	assert_int_equal(read_output(h, &c, 1), 0);
	assert_int_equal(inb(h, UART_RX), 'q');
	/* Host input waits while the receiver is disconnected. */
	serial_receive(h->serial, (const uint8_t *)"z", 1);
	assert_false(inb(h, UART_LSR) & UART_LSR_DR);
	outb(h, UART_MCR, 0);
	assert_int_equal(inb(h, UART_RX), 'z');
}

static void test_serial_modem_status_outside_loopback_is_a_ready_line(void **state)
{
	struct harness *h = *state;

	assert_int_equal(inb(h, UART_MSR), UART_MSR_DCD | UART_MSR_DSR | UART_MSR_CTS);
}

static void test_serial_does_not_drop_pasted_input(void **state)
{
	struct harness *h = *state;
	enum { PASTE = 3 * SERIAL_INPUT_SIZE + 123 };
	uint8_t *paste = malloc(PASTE);
	size_t sent = 0, got = 0;
	uint64_t count;

	assert_non_null(paste);
	for (size_t i = 0; i < PASTE; i++)
		paste[i] = (uint8_t)(i * 7 + i / 251);
	outb(h, UART_FCR, UART_FCR_ENABLE_FIFO | UART_FCR_TRIGGER_14);
	while (got < PASTE) {
		/* The I/O thread offers everything it has read. */
		size_t n = serial_receive(h->serial, paste + sent, PASTE - sent);

		sent += n;
		if (sent < PASTE) {
			assert_false(room_signalled(h));
			/* The guest drains until the serial says there is room. */
			while (!room_signalled(h)) {
				assert_true(inb(h, UART_LSR) & UART_LSR_DR);
				assert_int_equal(inb(h, UART_RX), paste[got++]);
			}
			assert_int_equal(read(serial_input_room_fd(h->serial), &count, 8), 8);
			assert_int_equal(count, 1);
		} else {
			while (inb(h, UART_LSR) & UART_LSR_DR)
				assert_int_equal(inb(h, UART_RX), paste[got++]);
		}
	}
	assert_int_equal(got, PASTE);
	free(paste);
}

struct feeder {
	struct serial *serial;
	const uint8_t *data;
	size_t len;
};

/* The I/O thread: feeds everything, sleeping on the room fd when full. */
static void *feed_input(void *opaque)
{
	struct feeder *f = opaque;
	struct pollfd pfd = { .fd = serial_input_room_fd(f->serial), .events = POLLIN };
	size_t sent = 0;
	uint64_t count;

	while (sent < f->len) {
		sent += serial_receive(f->serial, f->data + sent, f->len - sent);
		if (sent < f->len) {
			poll(&pfd, 1, -1);
			if (read(pfd.fd, &count, sizeof(count)) < 0 && errno != EAGAIN)
				return NULL;
		}
	}
	return NULL;
}

static void test_serial_receive_from_io_thread_keeps_order(void **state)
{
	struct harness *h = *state;
	enum { LEN = 64 * 1024 };
	uint8_t *data = malloc(LEN);
	struct feeder f = { h->serial, data, LEN };
	pthread_t thread;

	assert_non_null(data);
	for (size_t i = 0; i < LEN; i++)
		data[i] = (uint8_t)(i ^ (i >> 8));
	outb(h, UART_FCR, UART_FCR_ENABLE_FIFO);
	assert_int_equal(pthread_create(&thread, NULL, feed_input, &f), 0);
	for (size_t got = 0; got < LEN;) {
		if (inb(h, UART_LSR) & UART_LSR_DR)
			assert_int_equal(inb(h, UART_RX), data[got++]);
	}
	pthread_join(thread, NULL);
	free(data);
}

static void test_serial_survives_output_reader_gone(void **state)
{
	struct harness *h = *state;
	void (*old)(int) = signal(SIGPIPE, SIG_IGN);

	close(h->out[0]);
	h->out[0] = -1;
	outb(h, UART_IER, UART_IER_THRI);
	assert_int_equal(inb(h, UART_IIR), UART_IIR_THRI);
	outb(h, UART_TX, 'x');
	assert_int_equal(inb(h, UART_IIR), UART_IIR_THRI);
	assert_true(inb(h, UART_LSR) & UART_LSR_TEMT);
	signal(SIGPIPE, old);
}

/* A serial port on a bus of its own whose output goes to fd, capped at max bytes. */
struct port {
	struct serial *serial;
	struct bus pio;
};

static void port_open(struct port *c, int fd, uint64_t max)
{
	struct irq_line line = { 0 };

	c->serial = serial_create(&line, fd, max);
	assert_non_null(c->serial);
	bus_init(&c->pio);
	assert_int_equal(serial_register(c->serial, &c->pio, LAYOUT_COM1_PORT), 0);
}

/* The guest writes len bytes of a pattern to THR; it sees each one go at once. */
static void port_transmit(struct port *c, size_t len)
{
	uint8_t lsr;

	for (size_t i = 0; i < len; i++) {
		uint8_t byte = (uint8_t)('a' + i % 26);

		assert_true(bus_write(&c->pio, LAYOUT_COM1_PORT + UART_TX, &byte, 1));
		assert_true(bus_read(&c->pio, LAYOUT_COM1_PORT + UART_LSR, &lsr, 1));
		assert_int_equal(lsr & (UART_LSR_THRE | UART_LSR_TEMT),
				 UART_LSR_THRE | UART_LSR_TEMT);
	}
}

static void port_close(struct port *c)
{
	bus_destroy(&c->pio);
	serial_destroy(c->serial);
}

static void test_serial_discards_output_without_fd(void **state)
{
	struct port c;

	(void)state;
	port_open(&c, -1, 0);
	port_transmit(&c, 1);
	port_close(&c);
}

static off_t file_size(int fd)
{
	struct stat st;

	assert_int_equal(fstat(fd, &st), 0);
	return st.st_size;
}

static size_t count_notes(const char *buf, size_t len)
{
	size_t n = 0;

	for (const char *p = buf; (p = memmem(p, len - (size_t)(p - buf), SERIAL_FULL_NOTE,
					    strlen(SERIAL_FULL_NOTE))) != NULL; p++)
		n++;
	return n;
}

static void test_serial_file_stops_growing_at_its_cap(void **state)
{
	enum { MAX = 4096, NOTE = sizeof(SERIAL_FULL_NOTE) - 1 };
	int fd = memfd_create("serial-out", MFD_CLOEXEC);
	struct port c;
	char *file = malloc(MAX);

	(void)state;
	assert_true(fd >= 0);
	assert_non_null(file);
	port_open(&c, fd, MAX);
	port_transmit(&c, 3 * MAX);
	port_close(&c);
	assert_int_equal(file_size(fd), MAX);
	assert_int_equal(pread(fd, file, MAX, 0), MAX);
	for (size_t i = 0; i < MAX - NOTE; i++)
		assert_int_equal(file[i], 'a' + i % 26);
	assert_memory_equal(file + MAX - NOTE, SERIAL_FULL_NOTE, NOTE);
	free(file);
	close(fd);
}

/* --reboot restart makes a new device on the same file: it starts where the last one ended. */
static void test_serial_cap_counts_what_the_file_already_holds(void **state)
{
	enum { MAX = 4096, EARLIER = 1000 };
	int fd = memfd_create("serial-out", MFD_CLOEXEC);
	char *file = calloc(1, MAX);
	struct port c;

	(void)state;
	assert_true(fd >= 0);
	assert_non_null(file);
	assert_int_equal(write(fd, file, EARLIER), EARLIER);
	port_open(&c, fd, MAX);
	port_transmit(&c, MAX - EARLIER - 100); /* fits */
	port_close(&c);
	assert_int_equal(file_size(fd), MAX - 100);
	port_open(&c, fd, MAX);
	port_transmit(&c, MAX);
	port_close(&c);
	assert_int_equal(file_size(fd), MAX);
	port_open(&c, fd, MAX);
	port_transmit(&c, 10);
	port_close(&c);
	assert_int_equal(file_size(fd), MAX);
	assert_int_equal(pread(fd, file, MAX, 0), MAX);
	assert_int_equal(count_notes(file, MAX), 1);
	free(file);
	close(fd);
}

static void test_serial_claims_exactly_eight_ports(void **state)
{
	struct harness *h = *state;
	uint16_t lsr_msr = 0;
	uint8_t b;

	assert_false(bus_read(&h->pio, LAYOUT_COM1_PORT - 1, &b, 1));
	assert_false(bus_read(&h->pio, LAYOUT_COM1_PORT + SERIAL_NR_PORTS, &b, 1));
	/* A 16-bit access reads two registers, as on an ISA bus. */
	assert_true(bus_read(&h->pio, LAYOUT_COM1_PORT + UART_LSR, &lsr_msr, 2));
	assert_int_equal(lsr_msr & 0xff, UART_LSR_THRE | UART_LSR_TEMT);
	assert_int_equal(lsr_msr >> 8, UART_MSR_DCD | UART_MSR_DSR | UART_MSR_CTS);
}

#define SERIAL_TEST(fn) cmocka_unit_test_setup_teardown(fn, setup, teardown)

int main(void)
{
	const struct CMUnitTest tests[] = {
		SERIAL_TEST(test_serial_detected_as_16550a_by_probe_sequence),
		SERIAL_TEST(test_serial_scratch_register_holds_any_value),
		SERIAL_TEST(test_serial_divisor_latch_hides_behind_dlab),
		SERIAL_TEST(test_serial_transmits_each_byte_at_once),
		SERIAL_TEST(test_serial_thre_interrupt_fires_when_enabled),
		SERIAL_TEST(test_serial_thre_reasserts_when_ier_rewritten),
		SERIAL_TEST(test_serial_thr_write_gives_a_new_thre_edge),
		SERIAL_TEST(test_serial_received_byte_raises_rx_interrupt),
		SERIAL_TEST(test_serial_fifo_trigger_level_picks_rx_interrupt_kind),
		SERIAL_TEST(test_serial_fifo_clear_drops_only_what_the_guest_sees),
		SERIAL_TEST(test_serial_iir_priority),
		SERIAL_TEST(test_serial_loopback_keeps_output_quiet),
		SERIAL_TEST(test_serial_modem_status_outside_loopback_is_a_ready_line),
		SERIAL_TEST(test_serial_does_not_drop_pasted_input),
		SERIAL_TEST(test_serial_receive_from_io_thread_keeps_order),
		SERIAL_TEST(test_serial_survives_output_reader_gone),
		cmocka_unit_test(test_serial_discards_output_without_fd),
		cmocka_unit_test(test_serial_file_stops_growing_at_its_cap),
		cmocka_unit_test(test_serial_cap_counts_what_the_file_already_holds),
		SERIAL_TEST(test_serial_claims_exactly_eight_ports),
	};

	return cmocka_run_group_tests(tests, NULL, NULL);
}
