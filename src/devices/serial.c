/*
 * A 16550A UART emulated in userspace; serial.h describes the host side.
 *
 * What the guest sees follows the PC16550D datasheet: eight registers, the
 * divisor latch behind LCR.DLAB, a 16-byte receive FIFO with a trigger
 * level, loopback (MCR.LOOP), and one interrupt output whose cause IIR
 * reports in priority order: receiver line status, received data,
 * transmitter holding register empty (THRE), modem status.
 *
 * Timing is what we leave out. The transmitter empties the instant THR is
 * written, so LSR.THRE and LSR.TEMT always read 1 and each THR write
 * re-raises the THRE interrupt. The receiver's character timeout has
 * elapsed the instant data sits below the trigger level, so such data
 * raises the timeout interrupt at once instead of four characters later.
 * Nothing ever arrives with a parity or framing error, or as a break; the
 * only line status error is an overrun in loopback mode.
 */
#include "devices/serial.h"

#include <errno.h>
#include <poll.h>
#include <pthread.h>
#include <stdbool.h>
#include <stdlib.h>
#include <sys/eventfd.h>
#include <unistd.h>

#include <linux/serial_reg.h>

#define IER_MASK (UART_IER_MSI | UART_IER_RLSI | UART_IER_THRI | UART_IER_RDI)
#define MCR_MASK (UART_MCR_LOOP | UART_MCR_OUT2 | UART_MCR_OUT1 | UART_MCR_RTS | UART_MCR_DTR)
/* FCR bits that are stored; the clear bits act once, bit 5 (64-byte FIFO) is a 16750's. */
#define FCR_STORED (UART_FCR_ENABLE_FIFO | UART_FCR_DMA_SELECT | UART_FCR_TRIGGER_MASK)
#define IIR_FIFOS_ENABLED 0xc0 /* IIR bits 7:6 read 11 while FCR.0 is set */
/* What the host end of the line presents outside loopback: carrier, ready, clear to send. */
#define MSR_HOST_INPUTS (UART_MSR_DCD | UART_MSR_DSR | UART_MSR_CTS)
/* After a short serial_receive(), tell the I/O thread once the buffer is down to this. */
#define INPUT_LOW_WATER (SERIAL_INPUT_SIZE / 2)

struct ring {
	uint8_t *data;
	size_t size;
	size_t head; /* index of the oldest byte */
	size_t count;
};

struct serial {
	/*
	 * Protects the registers, both receive queues, irq_level and
	 * input_blocked: everything from here to tx_lock.
	 */
	pthread_mutex_t lock;
	uint8_t ier, lcr, mcr, scr, fcr, dll, dlm;
	uint8_t lsr_errors;	/* sticky LSR error bits, cleared by reading LSR */
	uint8_t msr_deltas;	/* MSR bits 3:0, cleared by reading MSR */
	bool thre_pending;	/* THRE interrupt not yet cleared by an IIR read */
	bool irq_level;		/* what we last told the irq line */
	bool input_blocked;	/* a serial_receive() came up short: signal room_fd */
	struct ring rx_fifo;	/* what the guest sees: 16 bytes, or 1 with FIFOs off */
	struct ring input;	/* host bytes waiting for room in rx_fifo */
	uint8_t rx_fifo_data[SERIAL_FIFO_SIZE];
	uint8_t input_data[SERIAL_INPUT_SIZE];

	/*
	 * Held while writing to out_fd so bytes leave in THR order; taken
	 * while holding lock, which is then released, so a blocked out_fd
	 * never blocks serial_receive(). Protects out_pos.
	 */
	pthread_mutex_t tx_lock;
	uint64_t out_pos;	/* with out_max: bytes out_fd holds, at most out_max */

	/* Set at creation, read-only after. */
	struct irq_line irq;
	int out_fd;
	uint64_t out_max;	/* 0: no cap */
	int room_fd;
};

static void ring_init(struct ring *ring, uint8_t *data, size_t size)
{
	ring->data = data;
	ring->size = size;
	ring->head = 0;
	ring->count = 0;
}

static void ring_push(struct ring *ring, uint8_t byte)
{
	ring->data[(ring->head + ring->count) % ring->size] = byte;
	ring->count++;
}

static uint8_t ring_pop(struct ring *ring)
{
	uint8_t byte = ring->data[ring->head];

	ring->head = (ring->head + 1) % ring->size;
	ring->count--;
	return byte;
}

static bool serial_fifos_enabled(const struct serial *s)
{
	return s->fcr & UART_FCR_ENABLE_FIFO;
}

static bool serial_loopback(const struct serial *s)
{
	return s->mcr & UART_MCR_LOOP;
}

/* With FIFOs off the receiver holds one byte, like an 8250's RBR. */
static size_t serial_rx_capacity(const struct serial *s)
{
	return serial_fifos_enabled(s) ? SERIAL_FIFO_SIZE : 1;
}

static size_t serial_rx_trigger(const struct serial *s)
{
	static const uint8_t levels[] = { 1, 4, 8, 14 };

	return levels[(s->fcr & UART_FCR_TRIGGER_MASK) >> UART_FCR_R_TRIG_SHIFT];
}

/* The highest-priority interrupt pending and enabled, as IIR bits 3:0. */
static uint8_t serial_interrupt_id(const struct serial *s)
{
	if ((s->ier & UART_IER_RLSI) && s->lsr_errors)
		return UART_IIR_RLSI;
	if ((s->ier & UART_IER_RDI) && s->rx_fifo.count) {
		if (serial_fifos_enabled(s) && s->rx_fifo.count < serial_rx_trigger(s))
			return UART_IIR_RX_TIMEOUT;
		return UART_IIR_RDI;
	}
	if ((s->ier & UART_IER_THRI) && s->thre_pending)
		return UART_IIR_THRI;
	if ((s->ier & UART_IER_MSI) && s->msr_deltas)
		return UART_IIR_MSI;
	return UART_IIR_NO_INT;
}

/* Called after every state change; tells the line only when its level changes. */
static void serial_update_irq(struct serial *s)
{
	bool level = serial_interrupt_id(s) != UART_IIR_NO_INT;

	if (level == s->irq_level)
		return;
	s->irq_level = level;
	irq_line_set(&s->irq, level);
}

static void serial_signal_room(struct serial *s)
{
	if (!s->input_blocked || s->input.count > INPUT_LOW_WATER)
		return;
	s->input_blocked = false;
	/* Fails only if the counter would overflow, when it is readable anyway. */
	eventfd_write(s->room_fd, 1);
}

/* Moves host input into the receive FIFO as far as it has room. */
static void serial_refill(struct serial *s)
{
	/* Loopback disconnects the receiver from the line (datasheet, MCR bit 4). */
	if (serial_loopback(s))
		return;
	while (s->input.count && s->rx_fifo.count < serial_rx_capacity(s))
		ring_push(&s->rx_fifo, ring_pop(&s->input));
	serial_signal_room(s);
}

/* Modem status inputs (MSR bits 7:4); in loopback they are wired to the MCR outputs. */
static uint8_t serial_modem_inputs(uint8_t mcr)
{
	uint8_t in = 0;

	if (!(mcr & UART_MCR_LOOP))
		return MSR_HOST_INPUTS;
	if (mcr & UART_MCR_RTS)
		in |= UART_MSR_CTS;
	if (mcr & UART_MCR_DTR)
		in |= UART_MSR_DSR;
	if (mcr & UART_MCR_OUT1)
		in |= UART_MSR_RI;
	if (mcr & UART_MCR_OUT2)
		in |= UART_MSR_DCD;
	return in;
}

static uint8_t serial_msr_deltas(uint8_t old_in, uint8_t new_in)
{
	uint8_t changed = old_in ^ new_in;
	uint8_t deltas = 0;

	if (changed & UART_MSR_CTS)
		deltas |= UART_MSR_DCTS;
	if (changed & UART_MSR_DSR)
		deltas |= UART_MSR_DDSR;
	if (changed & UART_MSR_DCD)
		deltas |= UART_MSR_DDCD;
	if ((old_in & UART_MSR_RI) && !(new_in & UART_MSR_RI))
		deltas |= UART_MSR_TERI;
	return deltas;
}

static uint8_t serial_read_rbr(struct serial *s)
{
	uint8_t byte = 0;

	if (s->rx_fifo.count)
		byte = ring_pop(&s->rx_fifo);
	serial_refill(s);
	serial_update_irq(s);
	return byte;
}

static uint8_t serial_read_iir(struct serial *s)
{
	uint8_t id = serial_interrupt_id(s);

	/* Reading IIR clears a THRE interrupt when that is what it reports. */
	if (id == UART_IIR_THRI) {
		s->thre_pending = false;
		serial_update_irq(s);
	}
	return id | (serial_fifos_enabled(s) ? IIR_FIFOS_ENABLED : 0);
}

static uint8_t serial_read_lsr(struct serial *s)
{
	uint8_t lsr = s->lsr_errors | UART_LSR_THRE | UART_LSR_TEMT;

	if (s->rx_fifo.count)
		lsr |= UART_LSR_DR;
	s->lsr_errors = 0;
	serial_update_irq(s);
	return lsr;
}

static uint8_t serial_read_msr(struct serial *s)
{
	uint8_t msr = serial_modem_inputs(s->mcr) | s->msr_deltas;

	s->msr_deltas = 0;
	serial_update_irq(s);
	return msr;
}

static uint8_t serial_read_reg(struct serial *s, unsigned int reg)
{
	bool dlab = s->lcr & UART_LCR_DLAB;

	switch (reg) {
	case UART_RX:
		return dlab ? s->dll : serial_read_rbr(s);
	case UART_IER:
		return dlab ? s->dlm : s->ier;
	case UART_IIR:
		return serial_read_iir(s);
	case UART_LCR:
		return s->lcr;
	case UART_MCR:
		return s->mcr;
	case UART_LSR:
		return serial_read_lsr(s);
	case UART_MSR:
		return serial_read_msr(s);
	case UART_SCR:
		return s->scr;
	}
	return 0xff;
}

/* Returns true when byte must go out on the line (not in loopback). */
static bool serial_write_thr(struct serial *s, uint8_t byte)
{
	bool loopback = serial_loopback(s);

	/* Writing THR clears the THRE interrupt... */
	s->thre_pending = false;
	serial_update_irq(s);
	if (loopback) {
		if (s->rx_fifo.count < serial_rx_capacity(s))
			ring_push(&s->rx_fifo, byte);
		else
			s->lsr_errors |= UART_LSR_OE;
	}
	/* ...and the transmitter empties at once, raising it again: a new edge. */
	s->thre_pending = true;
	serial_update_irq(s);
	return !loopback;
}

static void serial_write_ier(struct serial *s, uint8_t val)
{
	uint8_t old = s->ier;

	s->ier = val & IER_MASK;
	/*
	 * Enabling THRI while THR is empty (always, here) raises THRE even if
	 * an IIR read cleared it before; Linux's 8250 startup checks for this
	 * and otherwise falls back to polling with a timer (UART_BUG_THRE).
	 */
	if (!(old & UART_IER_THRI) && (s->ier & UART_IER_THRI))
		s->thre_pending = true;
	serial_update_irq(s);
}

static void serial_write_fcr(struct serial *s, uint8_t val)
{
	/* Switching FIFOs on or off empties them (datasheet, FCR bit 0). */
	if ((val ^ s->fcr) & UART_FCR_ENABLE_FIFO)
		ring_init(&s->rx_fifo, s->rx_fifo_data, SERIAL_FIFO_SIZE);
	if (!(val & UART_FCR_ENABLE_FIFO)) {
		/* The other bits are only written together with FCR.0. */
		s->fcr = 0;
	} else {
		/* Clearing drops what the guest would see, not the host input behind it. */
		if (val & UART_FCR_CLEAR_RCVR)
			ring_init(&s->rx_fifo, s->rx_fifo_data, SERIAL_FIFO_SIZE);
		s->fcr = val & FCR_STORED;
	}
	/* UART_FCR_CLEAR_XMIT: the transmit FIFO is always empty. */
	serial_refill(s);
	serial_update_irq(s);
}

static void serial_write_mcr(struct serial *s, uint8_t val)
{
	uint8_t old_in = serial_modem_inputs(s->mcr);

	s->mcr = val & MCR_MASK;
	s->msr_deltas |= serial_msr_deltas(old_in, serial_modem_inputs(s->mcr));
	serial_refill(s); /* leaving loopback reconnects the receiver */
	serial_update_irq(s);
}

/* Returns true when val must be transmitted once the lock is dropped. */
static bool serial_write_reg(struct serial *s, unsigned int reg, uint8_t val)
{
	bool dlab = s->lcr & UART_LCR_DLAB;

	switch (reg) {
	case UART_TX:
		if (!dlab)
			return serial_write_thr(s, val);
		s->dll = val;
		break;
	case UART_IER:
		if (dlab)
			s->dlm = val;
		else
			serial_write_ier(s, val);
		break;
	case UART_FCR:
		serial_write_fcr(s, val);
		break;
	case UART_LCR:
		s->lcr = val; /* LCR.SBC (break) has no one to tell: ignored */
		break;
	case UART_MCR:
		serial_write_mcr(s, val);
		break;
	case UART_SCR:
		s->scr = val;
		break;
	}
	/* LSR and MSR are read-only. */
	return false;
}

static int serial_wait_writable(int fd)
{
	struct pollfd pfd = { .fd = fd, .events = POLLOUT };

	while (poll(&pfd, 1, -1) < 0) {
		if (errno != EINTR)
			return -errno;
	}
	return 0;
}

/* Writes buf to out_fd, waiting while it is full; drops the rest on any other error. */
static void serial_write_out(const struct serial *s, const char *buf, size_t len)
{
	while (len) {
		ssize_t r = write(s->out_fd, buf, len);

		if (r > 0) {
			buf += r;
			len -= (size_t)r;
			continue;
		}
		if (r < 0 && errno == EINTR)
			continue;
		if (r < 0 && (errno == EAGAIN || errno == EWOULDBLOCK) &&
		    serial_wait_writable(s->out_fd) == 0)
			continue;
		return;
	}
}

/*
 * Whether one more byte fits under out_max. The first that does not gets
 * SERIAL_FULL_NOTE written in its place, cut to the room left, so the file
 * ends with the note and is exactly out_max bytes long.
 */
static bool serial_out_fits(struct serial *s)
{
	uint64_t left;

	if (!s->out_max)
		return true;
	left = s->out_max - s->out_pos;
	if (left > sizeof(SERIAL_FULL_NOTE) - 1) {
		s->out_pos++;
		return true;
	}
	serial_write_out(s, SERIAL_FULL_NOTE, (size_t)left);
	s->out_pos = s->out_max;
	return false;
}

static void serial_emit(struct serial *s, uint8_t byte)
{
	if (s->out_fd >= 0 && serial_out_fits(s))
		serial_write_out(s, (const char *)&byte, 1);
}

static void serial_write_port(struct serial *s, uint64_t reg, uint8_t val)
{
	bool transmit;

	pthread_mutex_lock(&s->lock);
	transmit = serial_write_reg(s, reg, val);
	if (!transmit) {
		pthread_mutex_unlock(&s->lock);
		return;
	}
	pthread_mutex_lock(&s->tx_lock);
	pthread_mutex_unlock(&s->lock);
	serial_emit(s, val);
	pthread_mutex_unlock(&s->tx_lock);
}

/* Wider accesses act as consecutive byte accesses, as on an ISA bus. */
static void serial_bus_read(void *opaque, uint64_t offset, void *data, uint32_t size)
{
	struct serial *s = opaque;
	uint8_t *bytes = data;

	pthread_mutex_lock(&s->lock);
	for (uint32_t i = 0; i < size; i++) {
		uint64_t reg = offset + i;

		bytes[i] = reg < SERIAL_NR_PORTS ? serial_read_reg(s, reg) : 0xff;
	}
	pthread_mutex_unlock(&s->lock);
}

static void serial_bus_write(void *opaque, uint64_t offset, const void *data, uint32_t size)
{
	struct serial *s = opaque;
	const uint8_t *bytes = data;

	for (uint32_t i = 0; i < size; i++) {
		if (offset + i < SERIAL_NR_PORTS)
			serial_write_port(s, offset + i, bytes[i]);
	}
}

static const struct bus_ops serial_bus_ops = {
	.read = serial_bus_read,
	.write = serial_bus_write,
};

struct serial *serial_create(const struct irq_line *irq, int out_fd, uint64_t out_max)
{
	struct serial *s = calloc(1, sizeof(*s));

	if (!s)
		return NULL;
	s->room_fd = eventfd(0, EFD_NONBLOCK | EFD_CLOEXEC);
	if (s->room_fd < 0) {
		free(s);
		return NULL;
	}
	pthread_mutex_init(&s->lock, NULL);
	pthread_mutex_init(&s->tx_lock, NULL);
	ring_init(&s->rx_fifo, s->rx_fifo_data, SERIAL_FIFO_SIZE);
	ring_init(&s->input, s->input_data, SERIAL_INPUT_SIZE);
	if (irq)
		s->irq = *irq;
	s->out_fd = out_fd;
	s->out_max = out_max;
	if (out_max) {
		off_t pos = lseek(out_fd, 0, SEEK_CUR); /* -1 where it cannot seek: count from 0 */

		if (pos > 0)
			s->out_pos = (uint64_t)pos < out_max ? (uint64_t)pos : out_max;
	}
	return s;
}

int serial_register(struct serial *serial, struct bus *pio, uint16_t base)
{
	return bus_register(pio, base, SERIAL_NR_PORTS, &serial_bus_ops, serial);
}

size_t serial_receive(struct serial *s, const uint8_t *buf, size_t len)
{
	size_t n;

	pthread_mutex_lock(&s->lock);
	n = SERIAL_INPUT_SIZE - s->input.count;
	if (n > len)
		n = len;
	for (size_t i = 0; i < n; i++)
		ring_push(&s->input, buf[i]);
	if (n < len)
		s->input_blocked = true;
	serial_refill(s);
	serial_update_irq(s);
	pthread_mutex_unlock(&s->lock);
	return n;
}

int serial_input_room_fd(const struct serial *serial)
{
	return serial->room_fd;
}

void serial_destroy(struct serial *serial)
{
	if (!serial)
		return;
	close(serial->room_fd);
	pthread_mutex_destroy(&serial->tx_lock);
	pthread_mutex_destroy(&serial->lock);
	free(serial);
}
