/* boardnet_text.h - numbers as text for the serial protocol, without floating point.
 *
 * Every function works on the bits of a float32 (uint32_t), never on a float: no float
 * operation, no double, no libm, no printf. Decimal conversions are exact (small
 * fixed-size big integers on the stack, no malloc), so they give the same text and the
 * same bits on every machine:
 *
 * - bn_format_g9: the shortest text of Python's '{:.9g}'.format(v) for a float32 v,
 *   9 significant digits correctly rounded (half to even) from the exact value; 9 digits
 *   are enough to bring every float32 back to the same bits.
 * - bn_parse_decimal_f32: decimal text -> the nearest float32 (ties to even), correctly
 *   rounded for any number of digits (the first 128 significant digits are kept, the rest
 *   only say "more than that", which is all rounding needs: a float32 halfway point has at
 *   most 112 significant digits).
 */
#ifndef BOARDNET_TEXT_H
#define BOARDNET_TEXT_H

#include <stddef.h>
#include <stdint.h>

/* Longest text bn_format_g9 writes: "-1.23456789e-38" is 15 characters. */
#define BN_G9_MAX 16
/* Longest text bn_format_u64 writes. */
#define BN_U64_MAX 20

/* Results of bn_parse_decimal_f32. */
#define BN_DEC_OK 0
#define BN_DEC_SYNTAX (-1)    /* not a number */
#define BN_DEC_NONFINITE (-2) /* "nan", "inf" or "infinity" (any case, optional sign) */
#define BN_DEC_OVERFLOW (-3)  /* finite, but rounds beyond the largest float32 */

/* s[0..7] as 8 hex digits (either case) -> *bits; 0, or -1 when n != 8 or a digit is bad. */
int bn_parse_hex32(const char *s, size_t n, uint32_t *bits);

/* bits as 8 lower-case hex digits, most significant first (no terminating NUL). */
void bn_format_hex32(uint32_t bits, char out[8]);

/* Decimal text -> float32 bits, nearest (ties to even). Syntax, as Python's float() less
 * the underscores: [+-] then digits [. [digits]] or . digits, then optional [eE] [+-] digits;
 * or [+-] nan / inf / infinity. Values below half the smallest subnormal give +-0. */
int bn_parse_decimal_f32(const char *s, size_t n, uint32_t *bits);

/* float32 bits -> Python's '{:.9g}' text ("0.430535704", "1e-05", "-0", "inf", "nan");
 * writes at most BN_G9_MAX bytes, no NUL; returns the length. */
size_t bn_format_g9(uint32_t bits, char *out);

/* v in decimal; writes at most BN_U64_MAX bytes, no NUL; returns the length. */
size_t bn_format_u64(uint64_t v, char *out);

/* 1 when s[0..n-1] is `word` (lower case) in any case: "Hello", "NaN". */
int bn_word_is(const char *s, size_t n, const char *word);

/* s[0..n-1], 1 to max_digits ASCII digits (max_digits <= 9) -> *v; 0, or -1 otherwise. */
int bn_parse_u32(const char *s, size_t n, size_t max_digits, uint32_t *v);

#endif /* BOARDNET_TEXT_H */
