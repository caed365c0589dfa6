/* main.c - the boardnet firmware for the emulated boards (qemu-m0, qemu-rv32) and the host
 * build (firmware/host): the board layer starts the board, the core does the rest.
 *
 * The board layer (board.c of the target's folder) supplies start-up, byte I/O and the
 * timer; boardnet_serve.c answers the protocol; boardnet_model.c brings in the model.
 */
#include "board.h"
#include "boardnet_serve.h"

int main(void)
{
    board_init();
    bn_serve_forever(&boardnet_model);
    return 0;
}
