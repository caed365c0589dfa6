/* boardnet_serve.h - the boardnet wire protocol v1 (docs/protocol.md), board side, in C.
 *
 * The portable core of the firmware: it assembles request lines from bytes, answers each
 * one with one reply line (or ERR), and calls the model. It knows a board only through
 * board.h (board_putc for replies, board_ticks for `time`, BOARD_PLATFORM) and a model only
 * through `struct bn_model`, which boardnet_model.c fills from the generated header. No
 * malloc, no printf, no double; every buffer is fixed, nothing is written out of bounds
 * whatever arrives.
 *
 *     board_init();
 *     bn_serve_forever(&boardnet_model);       prints READY, then never returns
 *
 * or, byte by byte (tests, fuzzing, a board that has other work):
 *
 *     struct bn_server s;
 *     bn_server_init(&s, &boardnet_model);
 *     bn_server_ready(&s);
 *     for (;;) bn_server_byte(&s, board_getc());
 */
#ifndef BOARDNET_SERVE_H
#define BOARDNET_SERVE_H

#include <stddef.h>
#include <stdint.h>

#define BN_PROTO 1
#define BN_RUNTIME "c"
#define BN_WINDOW_MAX 32  /* docs/protocol.md: more in flight buys no speed */
#define BN_TIME_MAX 100000u
#define BN_ID_MAX 65535u
#define BN_MIN_LINE 256u

/* Bytes the board's serial input holds while it computes: the window is
 * max(1, min(32, BOARD_RX_BUFFER / (longest machine request + 1))). A board layer's build
 * sets it (USB CDC with flow control, a UART driver's ring buffer, ...). */
#ifndef BOARD_RX_BUFFER
#define BOARD_RX_BUFFER 256
#endif

/* The longest request line a model of n_in inputs accepts, as the MicroPython loop:
 * max(256, 24 n_in + 16). */
#define BN_LINE_MAX(n_in) ((24u * (unsigned)(n_in) + 16u) > BN_MIN_LINE ? (24u * (unsigned)(n_in) + 16u) : BN_MIN_LINE)

/* A model and the buffers the server uses with it (boardnet_model.c makes one from the
 * generated header). Exactly one of predict (float32 models) and predict_q (integer models)
 * is set; an integer model also has parse_input (raw decimal text -> its int16 input). */
struct bn_model {
    const char *name;        /* printed as one token */
    const char *fingerprint;
    const char *precision;   /* "f32", "q15" */
    unsigned n_in;
    unsigned n_out;
    void (*predict)(const float *x, float *y);
    void (*predict_q)(const int16_t *xq, int32_t *yq);
    int (*parse_input)(int j, const char *s, size_t n, int16_t *xq);
    float *x;        /* n_in: the last input, which `time` runs on */
    float *y;        /* n_out */
    int16_t *xq;     /* n_in (integer models) */
    int32_t *yq;     /* n_out (integer models) */
    char *line;      /* line_max bytes: the request being assembled */
    unsigned line_max;
};

struct bn_server {
    const struct bn_model *model;
    unsigned window;
    unsigned n;              /* bytes kept of the current line */
    unsigned char overlong;  /* the line passed line_max: answered ERR long at its end */
    unsigned char machine;   /* its first byte is 'x': Backspace and DEL are not editing */
    unsigned char after_cr;  /* the last byte was \r: a \n now ends nothing */
};

void bn_server_init(struct bn_server *s, const struct bn_model *model);

/* The unsolicited `READY proto=1 ...` line (the hello fields). */
void bn_server_ready(const struct bn_server *s);

/* Take one byte (0..255) from the host; a complete request is answered before returning. */
void bn_server_byte(struct bn_server *s, int c);

/* board_getc forever; never returns. */
void bn_serve_forever(const struct bn_model *model);

/* The model of this firmware (boardnet_model.c). */
extern const struct bn_model boardnet_model;

#endif /* BOARDNET_SERVE_H */
