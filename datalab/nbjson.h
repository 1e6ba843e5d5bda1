/* SPDX-License-Identifier: MIT */
#pragma once

/* Jupyter's canonical JSON, byte for byte.
 *
 * nbformat writes a notebook with Python's
 *     json.dumps(nb, sort_keys=True, indent=1, separators=(",", ": "), ensure_ascii=False)
 * after splitting every multi-line source and text into lines with str.splitlines(keepends=True).
 * A notebook we write must be what that prints, or opening and saving it in Jupyter would change it. */

#include <jansson.h>
#include <stdbool.h>
#include <stddef.h>

typedef enum NbJsonFlags {
        /* indent 1, ", " -> ",\n", ": " between key and value (nbformat's form); without it the compact
         * form of json.dumps(separators=(",", ":"), sort_keys=True, ensure_ascii=False) */
        NBJSON_INDENT = 1 << 0,
        /* also escape ' (as \u0027), U+0085, U+2028 and U+2029, so that the text has no line break but
         * its own '\n's and can sit inside a Python raw string r'''...''' */
        NBJSON_PYTHON_EMBED = 1 << 1,
        /* write a string under the key "source" as the array of its lines (nbjson_splitlines), as nbformat
         * writes cell sources: the notebook keeps one string per cell until it is written */
        NBJSON_SPLIT_SOURCES = 1 << 2,
} NbJsonFlags;

/* Serializes v (any JSON value) as Python's json.dumps would with sort_keys=True and ensure_ascii=False:
 * keys sorted by code point, strings escaped as Python escapes them (\" \\ \n \r \t \b \f, other
 * controls as \u00XX in lower-case hex, everything else kept as UTF-8), integers in decimal, reals as
 * Python's repr (nbjson_format_real). No trailing newline. *ret is NUL-terminated and owned by the caller;
 * *ret_len (ret_len may be NULL) is its length, and strlen(*ret) == *ret_len since a NUL in a string is
 * escaped as \u0000. Strings and keys are read with their jansson lengths (a key that only differs from
 * another by what follows a NUL sorts after that one, its prefix, as in Python). Indentation and
 * separators are json.dumps' exactly: "[]" and "{}" when empty, else one item per line.
 * Returns 0, or -ENOMEM; *ret is untouched on failure. */
int nbjson_dumps(const json_t *v, NbJsonFlags flags, char **ret, size_t *ret_len);
/* The same, with room for about hint bytes allocated at once (for texts of megabytes). */
int nbjson_dumps_hint(const json_t *v, NbJsonFlags flags, size_t hint, char **ret, size_t *ret_len);

/* Python's repr(float) of x: the shortest decimal that reads back as x (David Gay's dtoa mode 0, which at
 * a power of two is not always the correctly rounded one: 2^-24 is "5.960464477539063e-08"), positional
 * when its decimal exponent is -4 <= exponent < 16 ("0.0001", "123.0", "1234567890123456.0", always with a
 * fractional part), else scientific with at least two exponent digits ("1e-05", "1e+16", "1.5e+300",
 * "5e-324"); "-0.0" for negative zero. x should be finite (jansson reals are); NaN and infinities come out
 * as json.dumps spells them ("NaN", "Infinity", "-Infinity"). Independent of LC_NUMERIC. Writes a
 * NUL-terminated string and returns its length (< NBJSON_REAL_MAX). */
#define NBJSON_REAL_MAX 32
size_t nbjson_format_real(double x, char buf[static NBJSON_REAL_MAX]);

/* Python's str.splitlines(keepends=True) over UTF-8 text: a line ends after "\n", "\r\n", "\r", "\v",
 * "\f", "\x1c", "\x1d", "\x1e", U+0085, U+2028 or U+2029 ("\r\n" is one break; "\r\r\n" two). Every line
 * keeps its break; a last line without one is kept as it is. Only the len bytes at s are read (s may be NULL
 * when len is 0; a NUL is an ordinary character). Returns a new JSON array of the lines (an empty array for
 * empty text), NULL on OOM. */
json_t *nbjson_splitlines(const char *s, size_t len);

/* The other way: a notebook's "multiline string" (a string, or an array of strings concatenated as they
 * are) as one NUL-terminated string in *ret (its length in *ret_len, which may be NULL; a NUL inside is an
 * ordinary character). -EINVAL when v is neither (nothing allocated then), -ENOMEM. */
int nbjson_join_lines(const json_t *v, char **ret, size_t *ret_len);
