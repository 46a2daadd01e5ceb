//! COM1, a 16550 UART at I/O port 0x3F8: 115200 baud, 8N1, FIFOs on (one byte at a time
//! on a UART whose FIFOs do not come on).
//!
//! Our own twenty lines instead of the `uart_16550` crate: the kernel needs the port
//! before anything else exists (no allocator, no per-core data), writes with a plain
//! poll of the line status register, needs no allocator, and reads without blocking for the console input.

use crate::arch::cpu::{inb, outb};
use core::sync::atomic::{AtomicUsize, Ordering};

const COM1: u16 = 0x3F8;
const DATA: u16 = COM1;
const INTERRUPT_ENABLE: u16 = COM1 + 1;
const FIFO_CONTROL: u16 = COM1 + 2;
/// The interrupt identification register: the read side of `FIFO_CONTROL`'s port.
const INTERRUPT_ID: u16 = COM1 + 2;
const LINE_CONTROL: u16 = COM1 + 3;
const MODEM_CONTROL: u16 = COM1 + 4;
const LINE_STATUS: u16 = COM1 + 5;

const LINE_STATUS_DATA_READY: u8 = 1 << 0;
const LINE_STATUS_TRANSMIT_EMPTY: u8 = 1 << 5;

/// Programs COM1. Safe to call more than once.
pub fn init() {
    outb(INTERRUPT_ENABLE, 0x00); // polled: no UART interrupts
    outb(LINE_CONTROL, 0x80); // divisor latch on
    outb(DATA, 0x01); // divisor 1: 115200 baud
    outb(INTERRUPT_ENABLE, 0x00);
    outb(LINE_CONTROL, 0x03); // 8 data bits, no parity, 1 stop bit
    // FIFOs on, transmit FIFO cleared, 14-byte threshold; what was typed before the kernel
    // started stays in the receive FIFO for the console input.
    outb(FIFO_CONTROL, 0xC5);
    // IIR bits 7:6 read 11 only once the FIFOs are on (16550 datasheet): a 16450, an 8250
    // or a 16550 whose FIFOs do not work takes one byte at a time.
    let fifos_on = inb(INTERRUPT_ID) & 0xC0 == 0xC0;
    FIFO_BYTES.store(if fifos_on { 16 } else { 1 }, Ordering::Relaxed);
    outb(MODEM_CONTROL, 0x03); // DTR and RTS
}

/// Bytes the transmitter takes once the line status says it is empty: 16 with the FIFOs
/// on, else (or before [`init`] looked) 1.
static FIFO_BYTES: AtomicUsize = AtomicUsize::new(1);

/// Writes bytes, turning `\n` into `\r\n` for terminals. The line status is polled once
/// per FIFO load (16 bytes; 1 on a UART without working FIFOs), not per byte (each port
/// access is a VM exit under a hypervisor). A port with no UART behind it reads 0xFF,
/// which counts as "empty", so a machine without COM1 never hangs here.
pub fn write_bytes(bytes: &[u8]) {
    let mut room = 0;
    let mut put = |byte: u8| {
        if room == 0 {
            while inb(LINE_STATUS) & LINE_STATUS_TRANSMIT_EMPTY == 0 {
                crate::arch::cpu::pause();
            }
            room = FIFO_BYTES.load(Ordering::Relaxed);
        }
        outb(DATA, byte);
        room -= 1;
    };
    for &byte in bytes {
        if byte == b'\n' {
            put(b'\r');
        }
        put(byte);
    }
}

/// Returns a received byte if one is waiting (never blocks; a missing UART reads 0xFF and
/// gives nothing).
pub fn try_read_byte() -> Option<u8> {
    let status = inb(LINE_STATUS);
    (status != 0xFF && status & LINE_STATUS_DATA_READY != 0).then(|| inb(DATA))
}
