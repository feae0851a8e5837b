/* npy.c: the header of a .npy array, as numpy.lib.format defines it (NEP 1):
 *
 *   "\x93NUMPY", major and minor version bytes, the header length (little-endian uint16 for
 *   version 1.0, uint32 for 2.0 and 3.0), then that many bytes of a Python dict literal such as
 *   {'descr': '<i8', 'fortran_order': False, 'shape': (3, 28, 28), } padded with spaces and
 *   ended by a newline. The data follows, in C order unless fortran_order is True.
 *
 * numpy reads the literal with ast.literal_eval; this is the subset numpy writes (strings, True,
 * False, tuples of integers), parsed strictly so that a damaged header is an error, never a guess.
 * Version 3.0 only allows UTF-8 in the header, which matters for field names of structured
 * dtypes; those are refused anyway.
 */
#include "io/npy.h"

#include "core/util.h"

#include <ctype.h>
#include <string.h>

static const uint8_t npy_magic[6] = {0x93, 'N', 'U', 'M', 'P', 'Y'};

int at_npy_header_length(const uint8_t *bytes, size_t size, const char *what, size_t *length,
                         at_error *err)
{
    if (memcmp(bytes, npy_magic, size < 6 ? size : 6) != 0)
        return at_fail(err, AT_ERR_FORMAT, "%s: not a .npy array (no \\x93NUMPY magic)", what);
    if (size < 10)
        return at_fail(err, AT_ERR_FORMAT, "%s: truncated: shorter than a .npy header", what);
    const int major = bytes[6], minor = bytes[7];
    if (minor != 0 || major < 1 || major > 3)
        return at_fail(err, AT_ERR_FORMAT, "%s: .npy version %d.%d (1.0, 2.0 and 3.0 are known)",
                       what, major, minor);
    size_t len;
    if (major == 1) {
        len = 10 + ((size_t)bytes[8] | (size_t)bytes[9] << 8);
    } else {
        if (size < AT_NPY_PREFIX)
            return at_fail(err, AT_ERR_FORMAT, "%s: truncated: shorter than a .npy header", what);
        uint32_t n = (uint32_t)bytes[8] | (uint32_t)bytes[9] << 8 | (uint32_t)bytes[10] << 16 |
                     (uint32_t)bytes[11] << 24;
        if (n > AT_NPY_MAX_HEADER)
            return at_fail(err, AT_ERR_FORMAT, "%s: oversized .npy header: %u bytes", what,
                           (unsigned)n);
        len = 12 + (size_t)n;
    }
    *length = len;
    return AT_OK;
}

/* A cursor over the dict literal. */
typedef struct lexer {
    const char *p, *end;
} lexer;

static void skip_space(lexer *lx)
{
    while (lx->p < lx->end && (*lx->p == ' ' || *lx->p == '\t' || *lx->p == '\n' || *lx->p == '\r'))
        lx->p++;
}

static bool accept(lexer *lx, char c)
{
    skip_space(lx);
    if (lx->p < lx->end && *lx->p == c) {
        lx->p++;
        return true;
    }
    return false;
}

/* A quoted string without escapes (numpy writes none), copied into out[cap]. */
static bool read_string(lexer *lx, char *out, size_t cap)
{
    skip_space(lx);
    if (lx->p >= lx->end || (*lx->p != '\'' && *lx->p != '"'))
        return false;
    const char quote = *lx->p++;
    size_t n = 0;
    while (lx->p < lx->end && *lx->p != quote) {
        if (*lx->p == '\\' || n + 1 >= cap)
            return false;
        out[n++] = *lx->p++;
    }
    if (lx->p >= lx->end)
        return false;
    lx->p++;
    out[n] = '\0';
    return true;
}

static bool read_word(lexer *lx, const char *word)
{
    skip_space(lx);
    size_t n = strlen(word);
    if ((size_t)(lx->end - lx->p) < n || strncmp(lx->p, word, n) != 0)
        return false;
    lx->p += n;
    return true;
}

/* A tuple of non-negative integers: "()", "(5,)", "(3, 28, 28)"; Python 2 files may add 'L'. */
static bool read_shape(lexer *lx, at_npy_header *h)
{
    if (!accept(lx, '('))
        return false;
    h->ndim = 0;
    bool comma = true;
    while (!accept(lx, ')')) {
        if (!comma || h->ndim == AT_NPY_MAX_DIMS)
            return false;
        skip_space(lx);
        if (lx->p >= lx->end || !isdigit((unsigned char)*lx->p))
            return false;
        int64_t v = 0;
        while (lx->p < lx->end && isdigit((unsigned char)*lx->p)) {
            if (v > (INT64_MAX - 9) / 10)
                return false;
            v = v * 10 + (*lx->p++ - '0');
        }
        if (lx->p < lx->end && *lx->p == 'L')
            lx->p++;
        h->shape[h->ndim++] = v;
        comma = accept(lx, ',');
    }
    /* (5) is the integer 5 in Python, not a tuple: numpy would refuse it too */
    return h->ndim != 1 || comma;
}

/* "<i8": byte order, kind, item size. */
static bool parse_descr(at_npy_header *h)
{
    const char *d = h->descr;
    if (!strchr("<>|=", d[0]) || !isalpha((unsigned char)d[1]) || !isdigit((unsigned char)d[2]))
        return false;
    int size = 0;
    for (const char *q = d + 2; *q; q++) {
        if (!isdigit((unsigned char)*q) || size > 1000)
            return false;
        size = size * 10 + (*q - '0');
    }
    h->kind = d[1];
    h->itemsize = size;
    h->big_endian = d[0] == '>';
    return size > 0;
}

int at_npy_header_parse(const uint8_t *bytes, size_t size, const char *what, at_npy_header *out,
                        at_error *err)
{
    memset(out, 0, sizeof *out);
    size_t length;
    int status = at_npy_header_length(bytes, size, what, &length, err);
    if (status)
        return status;
    if (size < length)
        return at_fail(err, AT_ERR_FORMAT,
                       "%s: truncated: the .npy header promises %zu bytes, there are %zu", what,
                       length, size);
    const size_t start = bytes[6] == 1 ? 10 : 12;
    lexer lx = {(const char *)bytes + start, (const char *)bytes + length};
    bool seen_descr = false, seen_order = false, seen_shape = false, fortran = false;
    if (!accept(&lx, '{'))
        return at_fail(err, AT_ERR_FORMAT, "%s: .npy header is not a dict literal", what);
    while (!accept(&lx, '}')) {
        char key[32];
        if (!read_string(&lx, key, sizeof key) || !accept(&lx, ':'))
            return at_fail(err, AT_ERR_FORMAT, "%s: .npy header: expected 'key': value", what);
        bool ok, *seen;
        if (!strcmp(key, "descr")) {
            seen = &seen_descr;
            ok = read_string(&lx, out->descr, sizeof out->descr);
            skip_space(&lx);
            if (!ok && lx.p < lx.end && *lx.p == '[')
                return at_fail(err, AT_ERR_FORMAT, "%s: structured dtype (a list of fields) is "
                               "not supported", what);
            if (ok && !parse_descr(out))
                return at_fail(err, AT_ERR_FORMAT, "%s: .npy header: unknown descr '%s'", what,
                               out->descr);
        } else if (!strcmp(key, "fortran_order")) {
            seen = &seen_order;
            ok = (fortran = read_word(&lx, "True")) || read_word(&lx, "False");
        } else if (!strcmp(key, "shape")) {
            seen = &seen_shape;
            ok = read_shape(&lx, out);
        } else {
            return at_fail(err, AT_ERR_FORMAT, "%s: .npy header: unexpected key '%s'", what, key);
        }
        if (!ok)
            return at_fail(err, AT_ERR_FORMAT, "%s: .npy header: malformed value of '%s'", what,
                           key);
        if (*seen)
            return at_fail(err, AT_ERR_FORMAT, "%s: .npy header: key '%s' given twice", what, key);
        *seen = true;
        if (!accept(&lx, ',')) {
            if (!accept(&lx, '}'))
                return at_fail(err, AT_ERR_FORMAT, "%s: .npy header: expected ',' or '}' after "
                               "'%s'", what, key);
            break;
        }
    }
    skip_space(&lx);
    if (lx.p != lx.end)
        return at_fail(err, AT_ERR_FORMAT, "%s: .npy header: text after the dict", what);
    if (!seen_descr || !seen_order || !seen_shape)
        return at_fail(err, AT_ERR_FORMAT, "%s: .npy header lacks '%s'", what,
                       !seen_descr ? "descr" : !seen_order ? "fortran_order" : "shape");
    if (fortran)
        return at_fail(err, AT_ERR_FORMAT, "%s: fortran_order is True; only C-order arrays are "
                       "read (save with numpy.ascontiguousarray)", what);
    size_t bytes_total = (size_t)out->itemsize;
    for (int d = 0; d < out->ndim; d++)
        if ((uint64_t)out->shape[d] > SIZE_MAX ||
            !at_mul_size(bytes_total, (size_t)out->shape[d], &bytes_total))
            return at_fail(err, AT_ERR_FORMAT, "%s: .npy shape overflows", what);
    out->header_bytes = length;
    out->data_bytes = bytes_total;
    return AT_OK;
}
