/* SPDX-License-Identifier: MIT */
/* Jupyter's canonical JSON (nbjson.h): a serializer that prints exactly what Python's json.dumps prints
 * with nbformat's options, Python's repr(float), and Python's str.splitlines(keepends=True).
 *
 * Everything is written into one growable buffer. Strings are copied in runs: a 256-entry table tells
 * which bytes need a look, and the bytes between two such are copied with one memcpy. */
#include <assert.h>
#include <errno.h>
#include <math.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "dj-macro.h"
#include "nbjson.h"

typedef struct NbBuf {
        char *data;
        size_t len, cap;
} NbBuf;

/* Makes room for n more bytes and one NUL after them. */
static int nbbuf_grow(NbBuf *b, size_t n) {
        size_t need, cap;
        char *p;

        if (n > SIZE_MAX - 1 - b->len)
                return -ENOMEM;
        need = b->len + n + 1;
        cap = b->cap ?: 4096;
        while (cap < need) {
                if (cap > SIZE_MAX / 2) {
                        cap = need;
                        break;
                }
                cap *= 2;
        }
        p = realloc(b->data, cap);
        if (!p)
                return -ENOMEM;
        b->data = p;
        b->cap = cap;
        return 0;
}

static inline int nbbuf_put(NbBuf *b, const void *p, size_t n) {
        if (n >= b->cap - b->len) {
                int r = nbbuf_grow(b, n);
                if (r < 0)
                        return r;
        }
        memcpy(b->data + b->len, p, n);
        b->len += n;
        return 0;
}

static inline int nbbuf_putc(NbBuf *b, char c) {
        if (b->cap - b->len < 2) {
                int r = nbbuf_grow(b, 1);
                if (r < 0)
                        return r;
        }
        b->data[b->len++] = c;
        return 0;
}

/* A newline and one space per level (json.dumps' indent=1). */
static int nbbuf_newline(NbBuf *b, size_t level) {
        if (level + 1 >= b->cap - b->len) {
                int r = nbbuf_grow(b, level + 1);
                if (r < 0)
                        return r;
        }
        b->data[b->len++] = '\n';
        memset(b->data + b->len, ' ', level);
        b->len += level;
        return 0;
}

/* What a byte of a string needs: nothing, an escape, or (with NBJSON_PYTHON_EMBED) a look at the bytes
 * after it, as it may start U+0085 (C2 85), U+2028 (E2 80 A8) or U+2029 (E2 80 A9). */
enum {
        ESC_NONE = 0,
        ESC_YES,
        ESC_LEAD,
};

static const unsigned char escape_plain[256] = {
        [0x00 ... 0x1f] = ESC_YES,
        ['"'] = ESC_YES,
        ['\\'] = ESC_YES,
};

static const unsigned char escape_embed[256] = {
        [0x00 ... 0x1f] = ESC_YES, ['"'] = ESC_YES,   ['\\'] = ESC_YES,
        ['\''] = ESC_YES,          [0xc2] = ESC_LEAD, [0xe2] = ESC_LEAD,
};

static int dump_string(NbBuf *b, const char *str, size_t len, bool embed) {
        static const char hex[] = "0123456789abcdef";
        const unsigned char *s = (const unsigned char *) str, *table = embed ? escape_embed : escape_plain;
        size_t start = 0, i = 0;
        int r;

        r = nbbuf_putc(b, '"');
        if (r < 0)
                return r;

        while (i < len) {
                unsigned char c = s[i];
                char esc[6] = { '\\' };
                size_t esc_len = 2, skip = 1;

                if (table[c] == ESC_NONE) {
                        i++;
                        continue;
                }

                if (table[c] == ESC_LEAD) {
                        if (c == 0xc2 && i + 1 < len && s[i + 1] == 0x85)
                                memcpy(esc, "\\u0085", 6), skip = 2;
                        else if (c == 0xe2 && i + 2 < len && s[i + 1] == 0x80 && s[i + 2] == 0xa8)
                                memcpy(esc, "\\u2028", 6), skip = 3;
                        else if (c == 0xe2 && i + 2 < len && s[i + 1] == 0x80 && s[i + 2] == 0xa9)
                                memcpy(esc, "\\u2029", 6), skip = 3;
                        else {
                                i++;
                                continue;
                        }
                        esc_len = 6;
                } else
                        switch (c) {
                        case '"':
                                esc[1] = '"';
                                break;
                        case '\\':
                                esc[1] = '\\';
                                break;
                        case '\n':
                                esc[1] = 'n';
                                break;
                        case '\r':
                                esc[1] = 'r';
                                break;
                        case '\t':
                                esc[1] = 't';
                                break;
                        case '\b':
                                esc[1] = 'b';
                                break;
                        case '\f':
                                esc[1] = 'f';
                                break;
                        default: /* other controls, and ' when embedding: \u00xx in lower-case hex */
                                memcpy(esc, "\\u00", 4);
                                esc[4] = hex[c >> 4];
                                esc[5] = hex[c & 0xf];
                                esc_len = 6;
                                break;
                        }

                r = nbbuf_put(b, s + start, i - start);
                if (r < 0)
                        return r;
                r = nbbuf_put(b, esc, esc_len);
                if (r < 0)
                        return r;
                i += skip;
                start = i;
        }

        r = nbbuf_put(b, s + start, len - start);
        if (r < 0)
                return r;
        return nbbuf_putc(b, '"');
}

static int dump_integer(NbBuf *b, json_int_t v) {
        char buf[3 * sizeof(json_int_t) + 2], *p = buf + sizeof(buf);
        /* unsigned arithmetic, so that the most negative value has an absolute value too */
        unsigned long long u = v < 0 ? -(unsigned long long) v : (unsigned long long) v;

        do
                *--p = (char) ('0' + u % 10);
        while ((u /= 10) > 0);
        if (v < 0)
                *--p = '-';
        return nbbuf_put(b, p, buf + sizeof(buf) - p);
}

typedef struct NbMember {
        const char *key;
        size_t key_len;
        json_t *value;
} NbMember;

/* Code point order: UTF-8 bytes compare in code point order, and a prefix sorts first. */
static int member_cmp(const void *a, const void *b) {
        const NbMember *x = a, *y = b;
        int c = memcmp(x->key, y->key, MIN(x->key_len, y->key_len));

        if (c != 0)
                return c;
        return (x->key_len > y->key_len) - (x->key_len < y->key_len);
}

static int dump_value(NbBuf *b, const json_t *v, NbJsonFlags flags, size_t level);
static int dump_lines(NbBuf *b, const char *s, size_t len, NbJsonFlags flags, size_t level);

static int dump_object(NbBuf *b, const json_t *v, NbJsonFlags flags, size_t level) {
        NbMember small[32], *members = small;
        _cleanup_free_ NbMember *heap = NULL;
        size_t n = json_object_size(v), i = 0;
        bool indent = flags & NBJSON_INDENT;
        int r;

        if (n == 0)
                return nbbuf_put(b, "{}", 2);

        if (n > ELEMENTSOF(small)) {
                heap = calloc(n, sizeof(NbMember));
                if (!heap)
                        return -ENOMEM;
                members = heap;
        }

        for (void *it = json_object_iter((json_t *) v); it && i < n;
             it = json_object_iter_next((json_t *) v, it), i++) {
                members[i].key = json_object_iter_key(it);
#if JANSSON_VERSION_HEX >= 0x020e00
                members[i].key_len = json_object_iter_key_len(it);
#else
                members[i].key_len = strlen(members[i].key);
#endif
                members[i].value = json_object_iter_value(it);
        }
        n = i;
        qsort(members, n, sizeof(NbMember), member_cmp);

        r = nbbuf_putc(b, '{');
        if (r < 0)
                return r;
        for (i = 0; i < n; i++) {
                if (i > 0) {
                        r = nbbuf_putc(b, ',');
                        if (r < 0)
                                return r;
                }
                if (indent) {
                        r = nbbuf_newline(b, level + 1);
                        if (r < 0)
                                return r;
                }
                r = dump_string(b, members[i].key, members[i].key_len, flags & NBJSON_PYTHON_EMBED);
                if (r < 0)
                        return r;
                r = indent ? nbbuf_put(b, ": ", 2) : nbbuf_putc(b, ':');
                if (r < 0)
                        return r;
                if ((flags & NBJSON_SPLIT_SOURCES) && json_is_string(members[i].value) &&
                    members[i].key_len == 6 && memcmp(members[i].key, "source", 6) == 0)
                        r = dump_lines(b, json_string_value(members[i].value),
                                       json_string_length(members[i].value), flags, level + 1);
                else
                        r = dump_value(b, members[i].value, flags, level + 1);
                if (r < 0)
                        return r;
        }
        if (indent) {
                r = nbbuf_newline(b, level);
                if (r < 0)
                        return r;
        }
        return nbbuf_putc(b, '}');
}

static int dump_array(NbBuf *b, const json_t *v, NbJsonFlags flags, size_t level) {
        size_t n = json_array_size(v);
        bool indent = flags & NBJSON_INDENT;
        int r;

        if (n == 0)
                return nbbuf_put(b, "[]", 2);

        r = nbbuf_putc(b, '[');
        if (r < 0)
                return r;
        for (size_t i = 0; i < n; i++) {
                if (i > 0) {
                        r = nbbuf_putc(b, ',');
                        if (r < 0)
                                return r;
                }
                if (indent) {
                        r = nbbuf_newline(b, level + 1);
                        if (r < 0)
                                return r;
                }
                r = dump_value(b, json_array_get(v, i), flags, level + 1);
                if (r < 0)
                        return r;
        }
        if (indent) {
                r = nbbuf_newline(b, level);
                if (r < 0)
                        return r;
        }
        return nbbuf_putc(b, ']');
}

static int dump_value(NbBuf *b, const json_t *v, NbJsonFlags flags, size_t level) {
        char real[NBJSON_REAL_MAX];

        switch (json_typeof(v)) {
        case JSON_OBJECT:
                return dump_object(b, v, flags, level);
        case JSON_ARRAY:
                return dump_array(b, v, flags, level);
        case JSON_STRING:
                return dump_string(b, json_string_value(v), json_string_length(v),
                                   flags & NBJSON_PYTHON_EMBED);
        case JSON_INTEGER:
                return dump_integer(b, json_integer_value(v));
        case JSON_REAL:
                return nbbuf_put(b, real, nbjson_format_real(json_real_value(v), real));
        case JSON_TRUE:
                return nbbuf_put(b, "true", 4);
        case JSON_FALSE:
                return nbbuf_put(b, "false", 5);
        case JSON_NULL:
        default:
                return nbbuf_put(b, "null", 4);
        }
}

int nbjson_dumps_hint(const json_t *v, NbJsonFlags flags, size_t hint, char **ret, size_t *ret_len) {
        _cleanup_free_ char *data = NULL;
        NbBuf b = {};
        int r;

        assert(v && ret);

        /* One allocation of about the right size: growing by doubling would copy the text again and
         * touch twice the memory (each fresh page a fault). */
        if (hint > 0 && nbbuf_grow(&b, hint) < 0)
                return -ENOMEM;

        r = dump_value(&b, v, flags, 0);
        data = b.data; /* freed on failure */
        if (r < 0)
                return r;
        data[b.len] = '\0'; /* every value writes something, and nbbuf_grow() keeps room for the NUL */
        if (ret_len)
                *ret_len = b.len;
        *ret = TAKE_PTR(data);
        return 0;
}

int nbjson_dumps(const json_t *v, NbJsonFlags flags, char **ret, size_t *ret_len) {
        return nbjson_dumps_hint(v, flags, 0, ret, ret_len);
}

/* Reads "<digits>e<exp>" (no decimal point, so the locale does not matter) and tells if it is x. */
static bool digits_read_back(const char *digits, int n, int exp, double x) {
        char buf[NBJSON_REAL_MAX + 8];

        (void) snprintf(buf, sizeof(buf), "%.*se%d", n, digits, exp);
        return strtod(buf, NULL) == x;
}

/* Finds n significant digits that read back as x (x >= 0, finite), as digits[0..n) x 10^(decpt - n).
 * Those are the correctly rounded ones; but at a power of two the doubles below are twice as close as those
 * above, so the rounded digits may fall just outside while the next ones up still read back as x: Gay's
 * dtoa (mode 0, which Python's repr uses) takes those, e.g. 2^-24 is 5.960464477539063e-08, not the
 * 17 digits 5.9604644775390625e-08. Whether some n digits read back only grows with n (a zero appended
 * still does), so the shortest can be found by bisection. */
static bool real_digits(double x, int n, char digits[static 24], int *ret_decpt) {
        char tmp[48];
        const char *e;
        int k = 0, decpt;

        (void) snprintf(tmp, sizeof(tmp), "%.*e", n - 1, x);
        for (e = tmp; *e && *e != 'e'; e++)
                if (*e >= '0' && *e <= '9' && k < n)
                        digits[k++] = *e;
        decpt = (int) strtol(*e ? e + 1 : e, NULL, 10) + 1;
        if (k != n)
                return false; /* cannot happen */

        if (strtod(tmp, NULL) != x) { /* snprintf() and strtod() agree on the decimal point */
                char up[24];
                int i = n;

                if (n >= 17)
                        return false; /* cannot happen: 17 digits always do */
                memcpy(up, digits, n);
                while (i > 0 && up[i - 1] == '9')
                        up[--i] = '0';
                if (i > 0)
                        up[i - 1]++;
                else {
                        up[0] = '1';
                        decpt++;
                }
                if (!digits_read_back(up, n, decpt - n, x))
                        return false;
                memcpy(digits, up, n);
        }
        *ret_decpt = decpt;
        return true;
}

size_t nbjson_format_real(double x, char buf[static NBJSON_REAL_MAX]) {
        char digits[24], *p = buf;
        int lo = 1, hi = 17, decpt = 1;
        size_t n;

        if (isnan(x))
                return (size_t) snprintf(buf, NBJSON_REAL_MAX, "NaN");
        if (isinf(x))
                return (size_t) snprintf(buf, NBJSON_REAL_MAX, "%sInfinity", x < 0 ? "-" : "");

        if (signbit(x))
                *p++ = '-';
        x = fabs(x);

        /* the fewest digits that read back as x */
        while (lo < hi) {
                int mid = (lo + hi) / 2;

                if (real_digits(x, mid, digits, &decpt))
                        hi = mid;
                else
                        lo = mid + 1;
        }
        (void) real_digits(x, lo, digits, &decpt); /* the last try may have been a longer one */
        n = (size_t) lo;
        while (n > 1 && digits[n - 1] == '0')
                n--;

        if (decpt > -4 && decpt <= 16) {
                /* positional, always with a fractional part */
                if (decpt <= 0) {
                        memcpy(p, "0.", 2), p += 2;
                        memset(p, '0', -decpt), p += -decpt;
                        memcpy(p, digits, n), p += n;
                } else if ((size_t) decpt < n) {
                        memcpy(p, digits, decpt), p += decpt;
                        *p++ = '.';
                        memcpy(p, digits + decpt, n - decpt), p += n - decpt;
                } else {
                        memcpy(p, digits, n), p += n;
                        memset(p, '0', decpt - n), p += decpt - n;
                        memcpy(p, ".0", 2), p += 2;
                }
                *p = '\0';
        } else {
                int exp = decpt - 1;

                *p++ = digits[0];
                if (n > 1) {
                        *p++ = '.';
                        memcpy(p, digits + 1, n - 1), p += n - 1;
                }
                p += snprintf(p, NBJSON_REAL_MAX - (p - buf), "e%c%02d", exp < 0 ? '-' : '+', abs(exp));
        }
        return (size_t) (p - buf);
}

/* The end (exclusive) of the line that starts at start: after its line break, or len. */
static size_t line_end(const char *s, size_t len, size_t start) {
        const unsigned char *u = (const unsigned char *) s;

        for (size_t i = start; i < len; i++)
                switch (u[i]) {
                case '\r':
                        return i + 1 < len && u[i + 1] == '\n' ? i + 2 : i + 1;
                case '\n':
                case '\v':
                case '\f':
                case 0x1c:
                case 0x1d:
                case 0x1e:
                        return i + 1;
                case 0xc2:
                        if (i + 1 < len && u[i + 1] == 0x85)
                                return i + 2;
                        break;
                case 0xe2:
                        if (i + 2 < len && u[i + 1] == 0x80 && (u[i + 2] == 0xa8 || u[i + 2] == 0xa9))
                                return i + 3;
                        break;
                default:
                        break;
                }
        return len;
}

json_t *nbjson_splitlines(const char *s, size_t len) {
        json_auto_t *lines = json_array();

        if (!lines)
                return NULL;
        for (size_t start = 0, end; start < len; start = end) {
                end = line_end(s, len, start);
                if (json_array_append_new(lines, json_stringn(s + start, end - start)) < 0)
                        return NULL;
        }
        return TAKE_PTR(lines);
}

/* NBJSON_SPLIT_SOURCES: a "source" string written as the array of its lines, as nbformat writes it
 * (split_lines), without making a JSON string of each line. */
static int dump_lines(NbBuf *b, const char *s, size_t len, NbJsonFlags flags, size_t level) {
        bool indent = flags & NBJSON_INDENT;
        int r;

        if (len == 0)
                return nbbuf_put(b, "[]", 2);
        r = nbbuf_putc(b, '[');
        for (size_t start = 0, end; r >= 0 && start < len; start = end) {
                end = line_end(s, len, start);
                if (start > 0)
                        r = nbbuf_putc(b, ',');
                if (r >= 0 && indent)
                        r = nbbuf_newline(b, level + 1);
                if (r >= 0)
                        r = dump_string(b, s + start, end - start, flags & NBJSON_PYTHON_EMBED);
        }
        if (r >= 0 && indent)
                r = nbbuf_newline(b, level);
        return r < 0 ? r : nbbuf_putc(b, ']');
}

int nbjson_join_lines(const json_t *v, char **ret, size_t *ret_len) {
        size_t total = 0, i;
        json_t *e;
        char *s, *p;

        if (json_is_string(v))
                total = json_string_length(v);
        else if (json_is_array(v))
                json_array_foreach (v, i, e) {
                        if (!json_is_string(e))
                                return -EINVAL;
                        total += json_string_length(e);
                }
        else
                return -EINVAL;
        s = p = malloc(total + 1);
        if (!s)
                return -ENOMEM;
        if (json_is_string(v)) {
                memcpy(p, json_string_value(v), total);
                p += total;
        } else
                json_array_foreach (v, i, e) {
                        memcpy(p, json_string_value(e), json_string_length(e));
                        p += json_string_length(e);
                }
        *p = '\0';
        if (ret_len)
                *ret_len = total;
        *ret = s;
        return 0;
}
