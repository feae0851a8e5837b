/* extra_data.h: what the readers behind at_dataset_load_file share (extra_data.c reads
 * safetensors files, npz.c NumPy archives): the checks of shapes and labels, so both formats
 * refuse the same things with the same messages. */
#ifndef AT_EXTRA_DATA_H
#define AT_EXTRA_DATA_H

#include "advtrain.h"

/* The image array `array` of `path` must be [N, C, H, W] (channels_last false) or [N, H, W, C],
 * or [N, H, W] when C is 1 and channels_last is set (a grey-scale NumPy array), with (C, H, W)
 * those of `want` and 1 <= N <= INT32_MAX; *n gets N. */
int at_extra_check_images(const char *path, const char *array, int ndim, const int64_t *shape,
                          bool channels_last, const at_dataset *want, int *n, at_error *err);
/* The label array must be [n]. */
int at_extra_check_labels(const char *path, const char *array, int ndim, const int64_t *shape,
                          const char *image_array, int n, at_error *err);
/* n little-endian integers of `itemsize` bytes (1, 2, 4 or 8; signed or not) into int32 labels,
 * each within [0, num_classes). */
int at_extra_convert_labels(const char *path, const char *array, const uint8_t *data,
                            int itemsize, bool is_signed, int n, int num_classes, int32_t *labels,
                            at_error *err);

/* Reads `path` as an npz archive into `out`, whose c, h, w and num_classes are set. */
int at_extra_load_npz(at_dataset *out, const char *path, at_error *err);

#endif
