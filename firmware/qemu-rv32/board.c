/* board.c - qemu-rv32: the ESP32-C3 stand-in on qemu-system-riscv32 -M virt.
 *
 * Same instruction set as the ESP32-C3 (rv32imc, no FPU), different peripherals: the
 * serial port is the virt machine's 16550 and time is the minstret CSR.
 */
#include <stdint.h>

#include "board.h"

#define UART_BASE 0x10000000u
#define UART_REG(off) (*(volatile uint8_t *)(UART_BASE + (off)))
#define UART_RBR UART_REG(0)   /* receive buffer (read) */
#define UART_THR UART_REG(0)   /* transmit holding (write) */
#define UART_LSR UART_REG(5)
#define LSR_DATA_READY 0x01u
#define LSR_THR_EMPTY 0x20u

const char board_platform[] = "qemu-rv32";
const char board_time_unit[] = "instr";

/* QEMU 7.2 under -icount shift=N returns virtual nanoseconds in minstret (and mcycle),
 * that is retired instructions << N; the emulator must run with the same N as this build
 * (boardnet.firmware.ICOUNT_SHIFT). */
#ifndef BOARD_ICOUNT_SHIFT
#define BOARD_ICOUNT_SHIFT 8
#endif

void board_init(void)
{
    /* The 16550 is left as reset (FIFOs off): QEMU empties the FIFOs when they are switched
     * on, which would drop bytes the host sent before this ran, and the serial backend
     * holds further bytes back until RBR is read. */
}

int board_getc(void)
{
    while ((UART_LSR & LSR_DATA_READY) == 0u) {
    }
    return UART_RBR;
}

void board_putc(int c)
{
    while ((UART_LSR & LSR_THR_EMPTY) == 0u) {
    }
    UART_THR = (uint8_t)c;
}

uint32_t board_ticks(void)
{
    uint32_t hi;
    uint32_t lo;
    uint32_t hi2;
    /* Re-read when the low word carried into the high word between the reads. */
    do {
        __asm__ volatile("csrr %0, minstreth" : "=r"(hi));
        __asm__ volatile("csrr %0, minstret" : "=r"(lo));
        __asm__ volatile("csrr %0, minstreth" : "=r"(hi2));
    } while (hi != hi2);
    return (uint32_t)((((uint64_t)hi << 32) | lo) >> BOARD_ICOUNT_SHIFT);
}
