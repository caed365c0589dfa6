/* boardnet_text.c - numbers as text, exactly, with integer arithmetic only (boardnet_text.h). */
#include "boardnet_text.h"

/* ---- small big integers ------------------------------------------------------------------
 * Little-endian 32-bit words. The largest value any caller builds is below 2^710 (parsing:
 * 24-bit mantissa x 10^174 x 2^104); 40 words hold 1280 bits. */
#define BIG_WORDS 40

typedef struct {
    uint32_t w[BIG_WORDS];
    unsigned n; /* words in use; w[n-1] != 0 unless n == 0 */
} big_t;

static void big_set(big_t *a, uint32_t v)
{
    a->w[0] = v;
    a->n = v != 0u;
}

static void big_copy(big_t *dst, const big_t *src)
{
    unsigned i;
    for (i = 0; i < src->n; ++i) {
        dst->w[i] = src->w[i];
    }
    dst->n = src->n;
}

/* a = a * m + add */
static void big_mul_add(big_t *a, uint32_t m, uint32_t add)
{
    uint64_t carry = add;
    unsigned i;
    for (i = 0; i < a->n; ++i) {
        uint64_t t = (uint64_t)a->w[i] * m + carry;
        a->w[i] = (uint32_t)t;
        carry = t >> 32;
    }
    if (carry != 0u && a->n < BIG_WORDS) {
        a->w[a->n++] = (uint32_t)carry;
    }
    while (a->n > 0u && a->w[a->n - 1u] == 0u) {
        --a->n;
    }
}

/* a = a * 10^k */
static void big_mul_pow10(big_t *a, unsigned k)
{
    for (; k >= 9u; k -= 9u) {
        big_mul_add(a, 1000000000u, 0u);
    }
    for (; k > 0u; --k) {
        big_mul_add(a, 10u, 0u);
    }
}

/* a = a * 2^s */
static void big_shl(big_t *a, unsigned s)
{
    unsigned words = s / 32u;
    unsigned bits = s % 32u;
    unsigned n = a->n;
    unsigned i;
    uint32_t top;
    if (n == 0u) {
        return;
    }
    if (n + words + 1u > BIG_WORDS) {
        a->n = 0u; /* unreachable within the bounds above; never write out of bounds */
        return;
    }
    top = bits != 0u ? a->w[n - 1u] >> (32u - bits) : 0u;
    for (i = n; i-- > 0u;) {
        uint32_t v = a->w[i] << bits;
        if (bits != 0u && i > 0u) {
            v |= a->w[i - 1u] >> (32u - bits);
        }
        a->w[i + words] = v;
    }
    a->w[n + words] = top;
    for (i = 0; i < words; ++i) {
        a->w[i] = 0u;
    }
    a->n = n + words + 1u;
    while (a->n > 0u && a->w[a->n - 1u] == 0u) {
        --a->n;
    }
}

static int big_cmp(const big_t *a, const big_t *b)
{
    unsigned i;
    if (a->n != b->n) {
        return a->n < b->n ? -1 : 1;
    }
    for (i = a->n; i-- > 0u;) {
        if (a->w[i] != b->w[i]) {
            return a->w[i] < b->w[i] ? -1 : 1;
        }
    }
    return 0;
}

/* a = a / d; returns a % d */
static uint32_t big_divmod(big_t *a, uint32_t d)
{
    uint64_t rem = 0u;
    unsigned i;
    for (i = a->n; i-- > 0u;) {
        uint64_t cur = (rem << 32) | a->w[i];
        a->w[i] = (uint32_t)(cur / d);
        rem = cur % d;
    }
    while (a->n > 0u && a->w[a->n - 1u] == 0u) {
        --a->n;
    }
    return (uint32_t)rem;
}

/* ---- hex and integers ------------------------------------------------------------------- */
static int hex_digit(char c)
{
    if (c >= '0' && c <= '9') {
        return c - '0';
    }
    if (c >= 'a' && c <= 'f') {
        return c - 'a' + 10;
    }
    if (c >= 'A' && c <= 'F') {
        return c - 'A' + 10;
    }
    return -1;
}

int bn_parse_hex32(const char *s, size_t n, uint32_t *bits)
{
    uint32_t v = 0u;
    size_t i;
    if (n != 8u) {
        return -1;
    }
    for (i = 0; i < 8u; ++i) {
        int d = hex_digit(s[i]);
        if (d < 0) {
            return -1;
        }
        v = (v << 4) | (uint32_t)d;
    }
    *bits = v;
    return 0;
}

void bn_format_hex32(uint32_t bits, char out[8])
{
    static const char digits[] = "0123456789abcdef";
    int i;
    for (i = 7; i >= 0; --i) {
        out[i] = digits[bits & 15u];
        bits >>= 4;
    }
}

size_t bn_format_u64(uint64_t v, char *out)
{
    char tmp[BN_U64_MAX];
    size_t n = 0, i;
    do {
        tmp[n++] = (char)('0' + (int)(v % 10u));
        v /= 10u;
    } while (v != 0u);
    for (i = 0; i < n; ++i) {
        out[i] = tmp[n - 1u - i];
    }
    return n;
}

int bn_parse_u32(const char *s, size_t n, size_t max_digits, uint32_t *v)
{
    uint32_t r = 0u;
    size_t i;
    if (n == 0u || n > max_digits || max_digits > 9u) {
        return -1;
    }
    for (i = 0; i < n; ++i) {
        if (s[i] < '0' || s[i] > '9') {
            return -1;
        }
        r = 10u * r + (uint32_t)(s[i] - '0');
    }
    *v = r;
    return 0;
}

int bn_word_is(const char *s, size_t n, const char *word)
{
    size_t i;
    for (i = 0; i < n; ++i) {
        char c = s[i];
        if (c >= 'A' && c <= 'Z') {
            c = (char)(c - 'A' + 'a');
        }
        if (word[i] == '\0' || c != word[i]) {
            return 0;
        }
    }
    return word[n] == '\0';
}

/* ---- float32 fields --------------------------------------------------------------------- */
/* The positive float32 with these bits (below 0x7f800000) is m * 2^e. */
static void f32_split(uint32_t bits, uint32_t *m, int *e)
{
    uint32_t field = (bits >> 23) & 0xFFu;
    uint32_t frac = bits & 0x7FFFFFu;
    if (field == 0u) {
        *m = frac;
        *e = -149;
    } else {
        *m = frac | 0x800000u;
        *e = (int)field - 150;
    }
}

/* ---- decimal -> float32 -------------------------------------------------------------------
 * The text is T * 10^E (T the first 128 significant digits, `sticky` when nonzero digits
 * were dropped after them). A float32 candidate m * 2^e compares with it exactly as
 * L = T * 10^max(E,0) against R = m * 10^max(-E,0), the smaller side scaled by 2^|e|. A binary
 * search over the ordered bit patterns finds the largest float32 <= the text; the halfway
 * point to the next one then decides the rounding. */
#define DEC_KEEP 128

struct decimal {
    big_t L0; /* T * 10^max(E, 0) */
    big_t R0; /* 10^max(-E, 0) */
    int sticky;
};

static int dec_cmp(const struct decimal *d, uint32_t m, int e)
{
    big_t L, R;
    int c;
    big_copy(&L, &d->L0);
    big_copy(&R, &d->R0);
    big_mul_add(&R, m, 0u);
    if (e >= 0) {
        big_shl(&R, (unsigned)e);
    } else {
        big_shl(&L, (unsigned)-e);
    }
    c = big_cmp(&L, &R);
    if (c == 0 && d->sticky) {
        c = 1;
    }
    return c;
}

int bn_parse_decimal_f32(const char *s, size_t n, uint32_t *bits)
{
    static struct decimal d; /* ~330 bytes: kept off the stack of a small board */
    uint32_t sign = 0u;
    size_t i = 0;
    unsigned kept = 0;     /* significant digits in T */
    long E = 0;            /* decimal exponent of T's last digit */
    long x = 0;            /* the written exponent, saturated */
    int digits = 0, exp_neg = 0;
    uint32_t lo, hi, m, mid_m;
    int e, c;

    if (i < n && (s[i] == '+' || s[i] == '-')) {
        sign = s[i] == '-' ? 0x80000000u : 0u;
        ++i;
    }
    if (bn_word_is(s + i, n - i, "nan") || bn_word_is(s + i, n - i, "inf") ||
        bn_word_is(s + i, n - i, "infinity")) {
        return BN_DEC_NONFINITE;
    }
    big_set(&d.L0, 0u);
    d.sticky = 0;
    for (; i < n && s[i] >= '0' && s[i] <= '9'; ++i) {
        ++digits;
        if (kept == 0u && s[i] == '0') {
            continue; /* leading zero */
        }
        if (kept < DEC_KEEP) {
            big_mul_add(&d.L0, 10u, (uint32_t)(s[i] - '0'));
            ++kept;
        } else {
            d.sticky |= s[i] != '0';
            ++E;
        }
    }
    if (i < n && s[i] == '.') {
        for (++i; i < n && s[i] >= '0' && s[i] <= '9'; ++i) {
            ++digits;
            if (kept == 0u && s[i] == '0') {
                --E;
                continue;
            }
            if (kept < DEC_KEEP) {
                big_mul_add(&d.L0, 10u, (uint32_t)(s[i] - '0'));
                ++kept;
                --E;
            } else {
                d.sticky |= s[i] != '0';
            }
        }
    }
    if (digits == 0) {
        return BN_DEC_SYNTAX;
    }
    if (i < n && (s[i] == 'e' || s[i] == 'E')) {
        int exp_digits = 0;
        ++i;
        if (i < n && (s[i] == '+' || s[i] == '-')) {
            exp_neg = s[i] == '-';
            ++i;
        }
        for (; i < n && s[i] >= '0' && s[i] <= '9'; ++i) {
            ++exp_digits;
            if (x < 100000L) {
                x = 10L * x + (s[i] - '0');
            }
        }
        if (exp_digits == 0) {
            return BN_DEC_SYNTAX;
        }
    }
    if (i != n) {
        return BN_DEC_SYNTAX;
    }
    if (kept == 0u) {
        *bits = sign; /* +-0 */
        return BN_DEC_OK;
    }
    E += exp_neg ? -x : x;
    /* 10^(kept+E-1) <= value < 10^(kept+E) */
    if ((long)kept + E <= -46L) {
        *bits = sign; /* below 1e-46 < 2^-150, half the smallest subnormal: rounds to 0 */
        return BN_DEC_OK;
    }
    if ((long)kept + E - 1L >= 39L) {
        return BN_DEC_OVERFLOW; /* at least 1e39 > 2^128 */
    }
    /* now -46 < kept + E <= 39, so |E| <= 174 and every big number stays below 2^710 */
    big_set(&d.R0, 1u);
    if (E >= 0) {
        big_mul_pow10(&d.L0, (unsigned)E);
    } else {
        big_mul_pow10(&d.R0, (unsigned)-E);
    }
    lo = 0u;          /* value(lo) <= text */
    hi = 0x7F800000u; /* treated as above the text; overflow is decided below */
    while (hi - lo > 1u) {
        uint32_t mid = lo + (hi - lo) / 2u;
        f32_split(mid, &m, &e);
        if (dec_cmp(&d, m, e) >= 0) {
            lo = mid;
        } else {
            hi = mid;
        }
    }
    f32_split(lo, &m, &e);
    /* the next float32 is value(lo) + 2^e, so the halfway point is (2m + 1) * 2^(e-1) */
    mid_m = 2u * m + 1u;
    c = dec_cmp(&d, m, e) == 0 ? -1 : dec_cmp(&d, mid_m, e - 1);
    if (c > 0 || (c == 0 && (lo & 1u) != 0u)) {
        ++lo;
    }
    if (lo >= 0x7F800000u) {
        return BN_DEC_OVERFLOW;
    }
    *bits = sign | lo;
    return BN_DEC_OK;
}

/* ---- float32 -> '{:.9g}' ------------------------------------------------------------------ */
static size_t put_text(char *out, const char *text)
{
    size_t n = 0;
    while (text[n] != '\0') {
        out[n] = text[n];
        ++n;
    }
    return n;
}

size_t bn_format_g9(uint32_t bits, char *out)
{
    static big_t N; /* below 2^371: 24-bit mantissa times 5^149 */
    static char dig[120];
    char sig[9];
    size_t len = 0, nd = 0, i;
    uint32_t m, chunk;
    int e, X, nsig, k;

    if ((bits & 0x7F800000u) == 0x7F800000u) {
        if ((bits & 0x7FFFFFu) != 0u) {
            return put_text(out, "nan");
        }
        return put_text(out, bits >> 31 ? "-inf" : "inf");
    }
    if (bits >> 31) {
        out[len++] = '-';
    }
    f32_split(bits & 0x7FFFFFFFu, &m, &e);
    if (m == 0u) {
        out[len++] = '0';
        return len;
    }
    /* exact value = N * 10^k */
    big_set(&N, m);
    k = 0;
    if (e >= 0) {
        big_shl(&N, (unsigned)e);
    } else {
        for (i = 0; i < (size_t)-e; ++i) {
            big_mul_add(&N, 5u, 0u);
        }
        k = e;
    }
    /* decimal digits of N, least significant chunk of 9 first, then reversed */
    while (N.n > 0u) {
        chunk = big_divmod(&N, 1000000000u);
        for (i = 0; i < 9u && nd < sizeof dig; ++i) {
            dig[nd++] = (char)('0' + (int)(chunk % 10u));
            chunk /= 10u;
        }
    }
    while (nd > 1u && dig[nd - 1u] == '0') {
        --nd; /* leading zeros of the top chunk */
    }
    for (i = 0; i < nd / 2u; ++i) {
        char t = dig[i];
        dig[i] = dig[nd - 1u - i];
        dig[nd - 1u - i] = t;
    }
    X = (int)nd - 1 + k; /* decimal exponent of the first digit */

    /* round to 9 significant digits, half to even on the exact digits */
    nsig = nd < 9u ? (int)nd : 9;
    for (i = 0; i < (size_t)nsig; ++i) {
        sig[i] = dig[i];
    }
    if (nd > 9u) {
        int up = dig[9] > '5';
        if (dig[9] == '5') {
            int rest = 0;
            for (i = 10; i < nd; ++i) {
                rest |= dig[i] != '0';
            }
            up = rest || ((sig[8] - '0') & 1);
        }
        if (up) {
            int j = 8;
            while (j >= 0 && sig[j] == '9') {
                sig[j--] = '0';
            }
            if (j >= 0) {
                ++sig[j];
            } else {
                sig[0] = '1'; /* 999999999.5 -> 1000000000 */
                ++X;
            }
        }
    }
    while (nsig > 1 && sig[nsig - 1] == '0') {
        --nsig;
    }

    if (X >= -4 && X < 9) {
        if (X >= 0) {
            for (k = 0; k <= X; ++k) {
                out[len++] = k < nsig ? sig[k] : '0';
            }
            if (nsig > X + 1) {
                out[len++] = '.';
                for (k = X + 1; k < nsig; ++k) {
                    out[len++] = sig[k];
                }
            }
        } else {
            out[len++] = '0';
            out[len++] = '.';
            for (k = 0; k < -X - 1; ++k) {
                out[len++] = '0';
            }
            for (k = 0; k < nsig; ++k) {
                out[len++] = sig[k];
            }
        }
        return len;
    }
    out[len++] = sig[0];
    if (nsig > 1) {
        out[len++] = '.';
        for (k = 1; k < nsig; ++k) {
            out[len++] = sig[k];
        }
    }
    out[len++] = 'e';
    out[len++] = X < 0 ? '-' : '+';
    if (X < 0) {
        X = -X;
    }
    if (X >= 10) {
        out[len++] = (char)('0' + X / 10);
    } else {
        out[len++] = '0';
    }
    out[len++] = (char)('0' + X % 10);
    return len;
}
