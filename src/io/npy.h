/* npy.h: the header of a NumPy .npy array (the format numpy.save writes and numpy.savez packs into
 * a zip archive), parsed without trusting anything it says. */
#ifndef AT_NPY_H
#define AT_NPY_H

#include "advtrain.h"

#define AT_NPY_MAX_DIMS 8
/* Bytes that always hold the header's own length: magic (6), version (2), length (2 or 4). */
#define AT_NPY_PREFIX 12
/* numpy itself refuses headers above 10000 bytes unless told otherwise; real ones are 128. */
#define AT_NPY_MAX_HEADER 65536

typedef struct at_npy_header {
    char descr[16];        /* as written, e.g. "<i8", for messages */
    char kind;             /* 'u' unsigned, 'i' signed, 'f' float, 'b' bool, ... */
    int itemsize;          /* bytes per element */
    bool big_endian;       /* byte order '>' (numpy writes '<' or '|' on little-endian hosts) */
    int ndim;
    int64_t shape[AT_NPY_MAX_DIMS];
    size_t header_bytes;   /* where the data starts */
    size_t data_bytes;     /* product of the shape times itemsize */
} at_npy_header;

/* How many bytes the whole header takes, from its first `size` bytes (at least AT_NPY_PREFIX, or
 * the whole array when it is shorter). `what` names the array in messages ("x.npz: image.npy"). */
int at_npy_header_length(const uint8_t *bytes, size_t size, const char *what, size_t *length,
                         at_error *err);
/* Parses a whole header (`size` bytes, at least its length): magic, version 1.0, 2.0 or 3.0, and
 * the dict literal with exactly 'descr', 'fortran_order' and 'shape'. A Fortran-order array and a
 * structured dtype are errors: nothing here reads them. */
int at_npy_header_parse(const uint8_t *bytes, size_t size, const char *what, at_npy_header *out,
                        at_error *err);

#endif
