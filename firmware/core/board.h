/* board.h - the whole interface between the portable core and a board.
 *
 * Each board folder (pico/, esp32/, qemu-m0/, qemu-rv32/) implements these in its own
 * board.c; the core never touches a register.
 */
#ifndef BOARDNET_BOARD_H
#define BOARDNET_BOARD_H

#include <stdint.h>

/* Set up clocks, the serial port and the tick counter; called once, first thing in main(). */
void board_init(void);

/* Wait for the next byte from the host and return it (0..255). */
int board_getc(void);

/* Send one byte (the low 8 bits of c) to the host; waits while the transmitter is busy. */
void board_putc(int c);

/* A free-running counter in board_time_unit; 32 bits that wrap, so measure with unsigned
 * subtraction: (uint32_t)(board_ticks() - t0). */
uint32_t board_ticks(void);

/* What a tick is: "us" on real boards, "instr" (retired instructions) on the emulators,
 * where QEMU runs with -icount and wall-clock time would mean nothing. */
extern const char board_time_unit[];

/* Which board this is, e.g. "rp2040", "esp32c3", "qemu-m0", "qemu-rv32". */
extern const char board_platform[];

#define BOARD_TIME_UNIT board_time_unit
#define BOARD_PLATFORM board_platform

#endif /* BOARDNET_BOARD_H */
