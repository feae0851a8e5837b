/* npz.h: writing images and labels as a NumPy .npz archive (npz_write.c), the format of the
 * generated data sets of Gowal et al. (2021), which numpy.load and at_dataset_load_file read. */
#ifndef ADVTRAIN_NPZ_H
#define ADVTRAIN_NPZ_H

#include "advtrain.h"

/* `image` uint8 (n, h, w, c) from NCHW images, `label` int64 (n,), and, when metadata is not
 * NULL, `metadata`: a 0-d unicode array holding that (ASCII) text. Members are stored, not
 * deflated, and dated 1980-01-01, so the same arrays always give the same bytes. Written through
 * a temp file, synced, then renamed over `path`. */
int cli_write_npz(const char *path, const uint8_t *images, int n, int c, int h, int w,
                  const int32_t *labels, const char *metadata, at_error *err);

#endif
