/* board.c - the host "board": stdin and stdout, microseconds from CLOCK_MONOTONIC.
 *
 * For tests and fuzzing on the laptop: the protocol core built with the host compiler (and
 * its sanitizers) runs behind a pipe. End of input ends the program, which a board's
 * serial port never does.
 */
#define _POSIX_C_SOURCE 200809L
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <time.h>

#include "board.h"

const char board_platform[] = "host";
const char board_time_unit[] = "us";

void board_init(void)
{
}

int board_getc(void)
{
    int c = getchar();
    if (c == EOF) {
        fflush(stdout);
        exit(0);
    }
    return c;
}

void board_putc(int c)
{
    putchar(c & 0xFF);
    if ((c & 0xFF) == '\n') {
        fflush(stdout); /* one reply line at a time, for a host that waits for it */
    }
}

uint32_t board_ticks(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (uint32_t)((uint64_t)ts.tv_sec * 1000000u + (uint64_t)ts.tv_nsec / 1000u);
}
