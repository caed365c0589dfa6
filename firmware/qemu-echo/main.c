/* main.c - echo test program for the emulated boards: proves the serial port both ways
 * and the tick counter, with nothing but board.h.
 *
 *   "T"          -> "T <ticks> <unit>": ticks spent in a fixed busy loop
 *   "P"          -> "P <platform>"
 *   anything else -> "E <line upper-cased>"; a line longer than LINE_MAX keeps its first
 *                   LINE_MAX bytes and the reply says so with a trailing " +<dropped>".
 *
 * A line ends at LF, CR or CR LF, so both a program and a person at QEMU's stdio (where
 * Enter sends CR) get one reply per line.
 */
#include <stdint.h>

#include "board.h"

#define LINE_MAX 128
#ifndef BUSY_LOOPS
#define BUSY_LOOPS 1000u   /* -DBUSY_LOOPS=... makes the timed window span SysTick wraps */
#endif

static void put_str(const char *s)
{
    while (*s != '\0') {
        board_putc((unsigned char)*s++);
    }
}

static void put_u32(uint32_t v)
{
    char digits[10];
    int n = 0;
    do {
        digits[n++] = (char)('0' + v % 10u);
        v /= 10u;
    } while (v != 0u);
    while (n > 0) {
        board_putc(digits[--n]);
    }
}

/* A loop the compiler must keep: the volatile store happens on every pass. Not inlined,
 * so its code, and the figure, do not change with the rest of main(). */
__attribute__((noinline)) static uint32_t busy_loop(void)
{
    volatile uint32_t sink = 0;
    uint32_t t0 = board_ticks();
    for (uint32_t i = 0; i < BUSY_LOOPS; i++) {
        sink = sink + i;
    }
    return (uint32_t)(board_ticks() - t0);
}

int main(void)
{
    static char line[LINE_MAX];
    uint32_t len = 0;
    uint32_t dropped = 0;
    int prev = 0;

    board_init();
    for (;;) {
        int c = board_getc();
        int after_cr = prev == '\r';
        prev = c;
        if (c == '\n' && after_cr) {
            continue;
        }
        if (c != '\n' && c != '\r') {
            if (len < LINE_MAX) {
                line[len++] = (char)c;
            } else {
                dropped++;
            }
            continue;
        }
        if (len == 1 && line[0] == 'T') {
            uint32_t ticks = busy_loop();
            put_str("T ");
            put_u32(ticks);
            board_putc(' ');
            put_str(BOARD_TIME_UNIT);
        } else if (len == 1 && line[0] == 'P') {
            put_str("P ");
            put_str(BOARD_PLATFORM);
        } else {
            put_str("E ");
            for (uint32_t i = 0; i < len; i++) {
                char ch = line[i];
                board_putc(ch >= 'a' && ch <= 'z' ? ch - 'a' + 'A' : ch);
            }
            if (dropped != 0u) {
                put_str(" +");
                put_u32(dropped);
            }
        }
        board_putc('\n');
        len = 0;
        dropped = 0;
    }
}
