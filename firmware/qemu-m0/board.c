/* board.c - qemu-m0: the Raspberry Pi Pico stand-in on QEMU's -M microbit (nRF51822).
 *
 * Same instruction set as the RP2040 (ARMv6-M, Cortex-M0 class, no FPU), different
 * peripherals: the serial port is the nRF51 UART0 and time comes from SysTick.
 */
#include <stdint.h>

#include "board.h"

#define UART0_BASE 0x40002000u
#define BAUD_115200 0x01D7E000u   /* nRF51 BAUDRATE value; QEMU ignores it, real silicon would not */

#define REG(base, off) (*(volatile uint32_t *)((base) + (off)))
#define UART_STARTRX REG(UART0_BASE, 0x000)
#define UART_STARTTX REG(UART0_BASE, 0x008)
#define UART_RXDRDY REG(UART0_BASE, 0x108)
#define UART_TXDRDY REG(UART0_BASE, 0x11C)
#define UART_ENABLE REG(UART0_BASE, 0x500)
#define UART_RXD REG(UART0_BASE, 0x518)
#define UART_TXD REG(UART0_BASE, 0x51C)
#define UART_BAUDRATE REG(UART0_BASE, 0x524)

#define SYST_CSR (*(volatile uint32_t *)0xE000E010u)
#define SYST_RVR (*(volatile uint32_t *)0xE000E014u)
#define SYST_CVR (*(volatile uint32_t *)0xE000E018u)
#define SYST_ENABLE_TICKINT_CPUCLK 7u
#define SYST_MAX 0x00FFFFFFu

/* QEMU clocks SysTick at the nRF51's 16 MHz: one tick is 62.5 ns of virtual time. Under
 * -icount shift=N one instruction is 2^N ns, so instructions = ticks * 62.5 / 2^N. For
 * N >= 7 a tick is shorter than half an instruction and rounding that product gives the
 * exact instruction count (the default 8 leaves a 4x margin); the emulator must run with
 * the same N (boardnet.firmware.ICOUNT_SHIFT), or the figures scale by 2^(N' - N). */
#ifndef BOARD_ICOUNT_SHIFT
#define BOARD_ICOUNT_SHIFT 8
#endif
#if BOARD_ICOUNT_SHIFT < 7 || BOARD_ICOUNT_SHIFT > 23
#error "qemu-m0 needs 7 <= BOARD_ICOUNT_SHIFT <= 23 for exact instruction counts"
#endif

/* Instructions QEMU counts for one pass of systick_handler: ldr, ldr, adds, str, bx.
 * Exception entry and return themselves retire none. */
#define SYSTICK_HANDLER_INSTR 5u

const char board_platform[] = "qemu-m0";
const char board_time_unit[] = "instr";

/* SysTick counts down 24 bits; its interrupt counts the wraps. The handler is written in
 * assembly so that its cost is a known number of instructions, which board_ticks()
 * subtracts: a measurement then comes out the same whether or not a wrap fell inside it. */
volatile uint32_t board_systick_wraps;

__attribute__((naked)) void systick_handler(void)
{
    /* GCC hands inline assembly to gas in divided syntax on Thumb-1; switch and restore. */
    __asm__ volatile(
        ".syntax unified\n"
        "ldr r0, =board_systick_wraps\n"
        "ldr r1, [r0]\n"
        "adds r1, r1, #1\n"
        "str r1, [r0]\n"
        "bx lr\n"
        ".ltorg\n"
        ".syntax divided\n");
}

void board_init(void)
{
    UART_BAUDRATE = BAUD_115200;
    UART_ENABLE = 4u;
    UART_RXDRDY = 0u;
    UART_TXDRDY = 0u;
    UART_STARTRX = 1u;
    UART_STARTTX = 1u;

    SYST_RVR = SYST_MAX;
    SYST_CVR = 0u;
    SYST_CSR = SYST_ENABLE_TICKINT_CPUCLK;
}

int board_getc(void)
{
    while (UART_RXDRDY == 0u) {
    }
    /* Clear the event before reading RXD: the read pops the next byte of the receive FIFO,
     * which raises the event again when more is waiting. */
    UART_RXDRDY = 0u;
    return (int)(UART_RXD & 0xFFu);
}

void board_putc(int c)
{
    UART_TXD = (uint32_t)c & 0xFFu;
    while (UART_TXDRDY == 0u) {
    }
    UART_TXDRDY = 0u;
}

uint32_t board_ticks(void)
{
    uint32_t wraps;
    uint32_t down;
    /* Re-read when the wrap interrupt ran between the two loads. */
    do {
        wraps = board_systick_wraps;
        down = SYST_CVR;
    } while (wraps != board_systick_wraps);
    uint64_t ticks = ((uint64_t)wraps << 24) + (SYST_MAX - down);
    /* round(ticks * 125 / 2^(N+1)); 2^24 ticks is a whole number of instructions, so the
     * 32-bit result wraps cleanly. */
    uint64_t instr = (ticks * 125u + (1u << BOARD_ICOUNT_SHIFT)) >> (BOARD_ICOUNT_SHIFT + 1);
    return (uint32_t)instr - wraps * SYSTICK_HANDLER_INSTR;
}
