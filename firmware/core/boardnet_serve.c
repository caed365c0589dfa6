/* boardnet_serve.c - the wire protocol v1, board side (boardnet_serve.h, docs/protocol.md).
 *
 * It answers exactly as the MicroPython serve loop (micropython/boardnet_serve.py): the
 * same replies, error codes and messages, line rules and hello fields, except that 0x03
 * (Ctrl-C) drops the current line, as there is no REPL to return to.
 */
#include <string.h>

#include "board.h"
#include "boardnet_serve.h"
#include "boardnet_text.h"

/* ---- output ----------------------------------------------------------------------------- */
static void put_mem(const char *p, size_t n)
{
    size_t i;
    for (i = 0; i < n; ++i) {
        board_putc((unsigned char)p[i]);
    }
}

static void put_str(const char *p)
{
    while (*p != '\0') {
        board_putc((unsigned char)*p++);
    }
}

static void put_u64(uint64_t v)
{
    char text[BN_U64_MAX];
    put_mem(text, bn_format_u64(v, text));
}

static void put_i32(int32_t v)
{
    if (v < 0) {
        board_putc('-');
        put_u64(0u - (uint64_t)(int64_t)v);
    } else {
        put_u64((uint64_t)v);
    }
}

/* A name from user data as one token: printable ASCII except '=' (as the MicroPython loop). */
static void put_token(const char *p)
{
    if (p == NULL || *p == '\0') {
        put_str("model");
        return;
    }
    for (; *p != '\0'; ++p) {
        unsigned char c = (unsigned char)*p;
        board_putc(c >= 33u && c <= 126u && c != '=' ? c : '_');
    }
}

static void put_end(void)
{
    board_putc('\r');
    board_putc('\n');
}

static void err(const char *code, const char *message)
{
    put_str("ERR ");
    put_str(code);
    board_putc(' ');
    put_str(message);
    put_end();
}

/* "ERR <code> id <id>: <message>" (the machine form names the request's id) */
static void err_id(const char *code, const char *id, size_t id_len, const char *message)
{
    put_str("ERR ");
    put_str(code);
    put_str(" id ");
    put_mem(id, id_len);
    put_str(": ");
    put_str(message);
    put_end();
}

/* ---- tokens ------------------------------------------------------------------------------ */
static int is_sep(char c)
{
    return c == ' ' || c == '\t' || c == ',';
}

/* The token at or after *pos: its start and length; 0 when there is none. */
static int next_token(const char *line, unsigned n, unsigned *pos, const char **tok, size_t *len)
{
    unsigned i = *pos, start;
    while (i < n && is_sep(line[i])) {
        ++i;
    }
    if (i >= n) {
        *pos = n;
        return 0;
    }
    start = i;
    while (i < n && !is_sep(line[i])) {
        ++i;
    }
    *tok = line + start;
    *len = i - start;
    *pos = i;
    return 1;
}

static unsigned count_tokens(const char *line, unsigned n)
{
    unsigned pos = 0, count = 0;
    const char *tok;
    size_t len;
    while (next_token(line, n, &pos, &tok, &len)) {
        ++count;
    }
    return count;
}

/* ---- hello ------------------------------------------------------------------------------- */
static void put_fields(const struct bn_server *s)
{
    const struct bn_model *m = s->model;
    put_str("proto=1 runtime=" BN_RUNTIME " platform=");
    put_token(BOARD_PLATFORM);
    put_str(" model=");
    put_token(m->name);
    put_str(" fp=");
    put_token(m->fingerprint);
    put_str(" precision=");
    put_token(m->precision);
    put_str(" n_in=");
    put_u64(m->n_in);
    put_str(" n_out=");
    put_u64(m->n_out);
    put_str(" window=");
    put_u64(s->window);
    put_str(" line=");
    put_u64(m->line_max);
    put_end();
}

void bn_server_ready(const struct bn_server *s)
{
    put_str("READY ");
    put_fields(s);
}

void bn_server_init(struct bn_server *s, const struct bn_model *model)
{
    /* longest machine request: "x 65535" and " hhhhhhhh" per input (integers: 12 each) */
    unsigned per = model->predict_q != NULL ? 12u : 9u;
    unsigned longest = 7u + per * model->n_in;
    unsigned window = (unsigned)BOARD_RX_BUFFER / (longest + 1u);
    unsigned i;
    s->model = model;
    s->window = window < 1u ? 1u : window > BN_WINDOW_MAX ? BN_WINDOW_MAX : window;
    s->n = 0;
    s->overlong = s->machine = s->after_cr = 0;
    /* `time` before any request runs on zeros */
    for (i = 0; i < model->n_in; ++i) {
        if (model->x != NULL) {
            model->x[i] = 0.0f;
        }
        if (model->xq != NULL) {
            model->xq[i] = 0;
        }
    }
}

/* ---- predictions ------------------------------------------------------------------------- */
static void reply_outputs(const struct bn_model *m, const char *id, size_t id_len, int human)
{
    unsigned i;
    put_str("OK");
    if (!human) {
        board_putc(' ');
        put_mem(id, id_len);
    }
    for (i = 0; i < m->n_out; ++i) {
        board_putc(' ');
        if (m->predict_q != NULL) {
            put_i32(m->yq[i]);
        } else {
            uint32_t bits;
            char text[BN_G9_MAX];
            memcpy(&bits, &m->y[i], sizeof bits);
            if (human) {
                put_mem(text, bn_format_g9(bits, text));
            } else {
                bn_format_hex32(bits, text);
                put_mem(text, 8);
            }
        }
    }
    put_end();
}

static void run_model(const struct bn_model *m)
{
    if (m->predict_q != NULL) {
        m->predict_q(m->xq, m->yq);
    } else {
        m->predict(m->x, m->y);
    }
}

/* A decimal integer [+-]digits in int16 range: 0, -1 (not an integer), -2 (out of range). */
static int parse_i16(const char *t, size_t len, int16_t *v)
{
    size_t i = 0;
    int32_t r = 0;
    int neg = 0;
    if (i < len && (t[i] == '+' || t[i] == '-')) {
        neg = t[i] == '-';
        ++i;
    }
    if (i == len) {
        return -1;
    }
    for (; i < len; ++i) {
        if (t[i] < '0' || t[i] > '9') {
            return -1;
        }
        if (r <= 32768) {
            r = 10 * r + (t[i] - '0');
        }
    }
    if (neg) {
        r = -r;
    }
    if (r < -32768 || r > 32767) {
        return -2;
    }
    *v = (int16_t)r;
    return 0;
}

/* x <id> <h> ...: each input checked before any is stored, so a bad request leaves the
 * last input (what `time` runs on) as it was. */
static void predict_machine(const struct bn_server *s, const char *line, unsigned n, unsigned ntok)
{
    const struct bn_model *m = s->model;
    unsigned pos = 0, i, pass;
    const char *tok, *id;
    size_t len, id_len;
    uint32_t rid, bits;

    (void)next_token(line, n, &pos, &tok, &len); /* "x" */
    if (ntok < 2u) {
        put_str("ERR count x takes an id and ");
        put_u64(m->n_in);
        put_str(" values");
        put_end();
        return;
    }
    (void)next_token(line, n, &pos, &id, &id_len);
    if (bn_parse_u32(id, id_len, 5u, &rid) != 0) {
        err("value", "the id is a decimal 0..65535");
        return;
    }
    if (rid > BN_ID_MAX) {
        err_id("range", id, id_len, "id over 65535");
        return;
    }
    if (ntok != 2u + m->n_in) {
        put_str("ERR count id ");
        put_mem(id, id_len);
        put_str(": expected ");
        put_u64(m->n_in);
        put_str(" values, got ");
        put_u64(ntok - 2u);
        put_end();
        return;
    }
    for (pass = 0; pass < 2u; ++pass) {
        unsigned p = pos;
        for (i = 0; i < m->n_in; ++i) {
            (void)next_token(line, n, &p, &tok, &len);
            if (m->predict_q != NULL) {
                int16_t v = 0;
                int r = parse_i16(tok, len, &v);
                if (r != 0) {
                    /* out of int16 too: never saturated silently (docs/integer-models.md) */
                    err_id("value", id, id_len, r == -1 ? "not a decimal integer" : "integer input outside int16");
                    return;
                }
                if (pass == 1u) {
                    m->xq[i] = v;
                }
                continue;
            }
            if (bn_parse_hex32(tok, len, &bits) != 0) {
                err_id("value", id, id_len, "inputs are 8 hex digits of float32 bits");
                return;
            }
            if ((bits & 0x7F800000u) == 0x7F800000u) {
                err_id("nonfinite", id, id_len, "NaN or infinity in the input");
                return;
            }
            if (pass == 1u) {
                memcpy(&m->x[i], &bits, sizeof bits);
            }
        }
    }
    run_model(m);
    reply_outputs(m, id, id_len, 0);
}

/* <d> <d> ...: decimals in raw units (float32 models: each to the nearest float32). */
static void predict_human(const struct bn_server *s, const char *line, unsigned n, unsigned ntok)
{
    const struct bn_model *m = s->model;
    unsigned pos, i, pass;
    const char *tok;
    size_t len;
    uint32_t bits;

    if (ntok != m->n_in) {
        put_str("ERR count expected ");
        put_u64(m->n_in);
        put_str(" values, got ");
        put_u64(ntok);
        put_end();
        return;
    }
    for (pass = 0; pass < 2u; ++pass) {
        pos = 0;
        for (i = 0; i < m->n_in; ++i) {
            (void)next_token(line, n, &pos, &tok, &len);
            if (m->predict_q != NULL) {
                int16_t v = 0;
                if (m->parse_input((int)i, tok, len, &v) != 0) {
                    put_str("ERR value ");
                    put_mem(tok, len < 16u ? len : 16u);
                    put_str(" is not a number");
                    put_end();
                    return;
                }
                if (pass == 1u) {
                    m->xq[i] = v;
                }
                continue;
            }
            if (pass == 1u) {
                (void)bn_parse_decimal_f32(tok, len, &bits); /* checked in pass 0 */
                memcpy(&m->x[i], &bits, sizeof bits);
                continue;
            }
            switch (bn_parse_decimal_f32(tok, len, &bits)) {
            case BN_DEC_OK:
                break;
            case BN_DEC_NONFINITE:
                err("nonfinite", "NaN or infinity in the input");
                return;
            case BN_DEC_OVERFLOW:
                put_str("ERR nonfinite ");
                put_mem(tok, len < 16u ? len : 16u);
                put_str(" overflows float32");
                put_end();
                return;
            default:
                put_str("ERR value ");
                put_mem(tok, len < 16u ? len : 16u);
                put_str(" is not a number");
                put_end();
                return;
            }
        }
    }
    run_model(m);
    reply_outputs(m, NULL, 0, 1);
}

/* time <n>: n inferences on the last input, timed by the board's own clock. The clock is
 * 32 bits; it is read every 64 inferences and the differences summed in 64 bits, so a run
 * longer than one wrap still adds up (as long as 64 inferences take less than a wrap). */
static void time_model(const struct bn_server *s, const char *line, unsigned n, unsigned ntok)
{
    const struct bn_model *m = s->model;
    unsigned pos = 0;
    const char *tok;
    size_t len;
    uint32_t count, i, t0, t;
    uint64_t total = 0, per_milli;

    if (ntok != 2u) {
        err("count", "time takes n (1..100000)");
        return;
    }
    (void)next_token(line, n, &pos, &tok, &len);
    (void)next_token(line, n, &pos, &tok, &len);
    if (bn_parse_u32(tok, len, 6u, &count) != 0) {
        err("value", "time takes a decimal n (1..100000)");
        return;
    }
    if (count < 1u || count > BN_TIME_MAX) {
        err("range", "time n must be 1..100000");
        return;
    }
    t0 = board_ticks();
    for (i = 1; i <= count; ++i) {
        run_model(m);
        if ((i & 63u) == 0u) {
            t = board_ticks();
            total += (uint32_t)(t - t0);
            t0 = t;
        }
    }
    t = board_ticks();
    total += (uint32_t)(t - t0);
    per_milli = (total * 1000u + count / 2u) / count;
    put_str("OK time n=");
    put_u64(count);
    put_str(" total=");
    put_u64(total);
    put_str(" unit=");
    put_str(BOARD_TIME_UNIT);
    put_str(" per=");
    put_u64(per_milli / 1000u);
    board_putc('.');
    board_putc((int)('0' + (int)(per_milli / 100u % 10u)));
    board_putc((int)('0' + (int)(per_milli / 10u % 10u)));
    board_putc((int)('0' + (int)(per_milli % 10u)));
    put_end();
}

/* ---- one request -------------------------------------------------------------------------- */
static void handle(const struct bn_server *s, const char *line, unsigned n)
{
    unsigned pos = 0, ntok;
    const char *head;
    size_t len, i;

    if (!next_token(line, n, &pos, &head, &len)) {
        return; /* blank line: no reply (people press Enter) */
    }
    ntok = count_tokens(line, n);
    if (len == 1u && (head[0] == 'x' || head[0] == 'X')) {
        predict_machine(s, line, n, ntok);
    } else if (bn_word_is(head, len, "hello") || bn_word_is(head, len, "?")) {
        if (ntok != 1u) {
            err("count", "hello takes no arguments");
        } else {
            put_str("OK hello ");
            put_fields(s);
        }
    } else if (bn_word_is(head, len, "time")) {
        time_model(s, line, n, ntok);
    } else if ((head[0] >= '0' && head[0] <= '9') || head[0] == '+' || head[0] == '-' || head[0] == '.') {
        predict_human(s, line, n, ntok);
    } else {
        put_str("ERR cmd unknown command ");
        for (i = 0; i < len && i < 16u; ++i) {
            char c = head[i];
            board_putc(c >= 'A' && c <= 'Z' ? c - 'A' + 'a' : c);
        }
        put_str(" (try hello)");
        put_end();
    }
}

/* ---- bytes -> lines ------------------------------------------------------------------------ */
/* A byte the line grammar has no place for (docs/protocol.md): ERR bytes. */
static int is_bad(unsigned char c)
{
    return (c < 32u && c != '\t') || c > 126u;
}

/* The order every runtime decides a line in: long, bytes, blank, then the request's own. */
static void line_end(struct bn_server *s)
{
    const struct bn_model *m = s->model;
    unsigned i;
    if (s->overlong) {
        put_str("ERR long line over ");
        put_u64(m->line_max);
        put_str(" bytes discarded");
        put_end();
        return;
    }
    for (i = 0; i < s->n; ++i) {
        if (is_bad((unsigned char)m->line[i])) {
            err("bytes", "binary or control bytes in the line");
            return;
        }
    }
    if (s->n != 0u) {
        handle(s, m->line, s->n);
    }
}

void bn_server_byte(struct bn_server *s, int c)
{
    const struct bn_model *m = s->model;
    c &= 0xFF;
    if (c == '\n' || c == '\r') {
        if (c == '\n' && s->after_cr) {
            s->after_cr = 0; /* \r\n is one line end */
            return;
        }
        s->after_cr = c == '\r';
        line_end(s);
        s->n = 0;
        s->overlong = 0;
        return;
    }
    s->after_cr = 0;
    if (c == 0x03) {
        /* Ctrl-C: MicroPython's "stop and return to the REPL"; with no REPL here, it drops
         * the line being typed, so a person (or mpremote) starts afresh. */
        s->n = 0;
        s->overlong = 0;
        return;
    }
    if ((c == 0x08 || c == 0x7F) && !(s->n != 0u && s->machine)) {
        /* Backspace or DEL from a person's terminal: delete the byte before, if any. A line
         * over the limit stays discarded; machine lines are never edited. */
        if (s->n != 0u && !s->overlong) {
            --s->n;
        }
        return;
    }
    if (s->n < m->line_max) {
        if (s->n == 0u) {
            s->machine = c == 'x';
        }
        m->line[s->n++] = (char)c;
    } else {
        s->overlong = 1;
    }
}

void bn_serve_forever(const struct bn_model *model)
{
    struct bn_server s;
    bn_server_init(&s, model);
    bn_server_ready(&s);
    for (;;) {
        bn_server_byte(&s, board_getc());
    }
}
