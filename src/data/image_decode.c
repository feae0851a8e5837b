/* image_decode.c: PNG (libpng) and JPEG (libjpeg) files in memory to 8-bit grey or RGB pixels.
 *
 * Both libraries report errors through callbacks whose defaults print and exit (libjpeg) or
 * abort the process (libpng without setjmp). Here each error callback formats the message and
 * jumps back (setjmp/longjmp); everything the jump may leave behind lives in one heap block
 * reachable from a pointer set before setjmp, so nothing depends on locals changed after it.
 * libjpeg's warnings are errors too: a truncated JPEG is only a warning to libjpeg ("Premature end
 * of JPEG file", after which it pads the image with grey), and a data set must not silently hold
 * such padding. */
#include "core/util.h"
#include "data/image.h"

#include <png.h>
#include <setjmp.h>
#include <stdio.h> /* jpeglib.h needs FILE */
#include <stdlib.h>
#include <string.h>

#include <jpeglib.h>

/* Larger images are refused before anything is allocated (far above any training image). */
#define IMAGE_MAX_SIDE 32768
#define IMAGE_MAX_PIXELS (1L << 26)

void image_pixels_free(image_pixels *img)
{
    free(img->data);
    memset(img, 0, sizeof *img);
}

static int check_size(long w, long h, const char *path, at_error *err)
{
    if (w < 1 || h < 1 || w > IMAGE_MAX_SIDE || h > IMAGE_MAX_SIDE || w * h > IMAGE_MAX_PIXELS)
        return at_fail(err, AT_ERR_FORMAT, "%s: image size %ldx%ld is outside 1..%d a side and "
                       "%ld pixels", path, w, h, IMAGE_MAX_SIDE, IMAGE_MAX_PIXELS);
    return AT_OK;
}

/* ---------------------------------------------------------------------------------------------
 * PNG */

typedef struct png_job {
    jmp_buf jump;
    char message[200];
    const uint8_t *bytes;
    size_t size, at;
    png_structp png;
    png_infop info;
    png_bytep *rows;
    uint8_t *pixels;
} png_job;

static void png_on_error(png_structp png, png_const_charp message)
{
    png_job *job = png_get_error_ptr(png);
    snprintf(job->message, sizeof job->message, "%s", message);
    longjmp(job->jump, 1);
}

static void png_on_warning(png_structp png, png_const_charp message) { (void)png, (void)message; }

static void png_read_memory(png_structp png, png_bytep out, png_size_t length)
{
    png_job *job = png_get_io_ptr(png);
    if (length > job->size - job->at)
        png_error(png, "truncated: the file ends early");
    memcpy(out, job->bytes + job->at, length);
    job->at += length;
}

static int decode_png(image_pixels *out, const uint8_t *bytes, size_t size, const char *path,
                      at_error *err)
{
    png_job *const job = calloc(1, sizeof *job);
    if (!job)
        return at_fail(err, AT_ERR_NOMEM, "%s: out of memory", path);
    job->bytes = bytes;
    job->size = size;
    int status = AT_OK;
    if (setjmp(job->jump)) {
        status = at_fail(err, AT_ERR_FORMAT, "%s: damaged PNG: %s", path, job->message);
        goto done;
    }
    job->png = png_create_read_struct(PNG_LIBPNG_VER_STRING, job, png_on_error, png_on_warning);
    if (!job->png || !(job->info = png_create_info_struct(job->png))) {
        status = at_fail(err, AT_ERR_NOMEM, "%s: out of memory", path);
        goto done;
    }
    png_set_read_fn(job->png, job, png_read_memory);
    png_read_info(job->png, job->info);
    const long w = (long)png_get_image_width(job->png, job->info);
    const long h = (long)png_get_image_height(job->png, job->info);
    if ((status = check_size(w, h, path, err)))
        goto done;
    /* palette to RGB, 1/2/4-bit grey to 8 bits, 16 bits rounded to 8, alpha dropped */
    png_set_expand(job->png);
    png_set_scale_16(job->png);
    png_set_strip_alpha(job->png);
    png_set_interlace_handling(job->png);
    png_read_update_info(job->png, job->info);
    const int c = png_get_channels(job->png, job->info);
    if ((c != 1 && c != 3) || png_get_rowbytes(job->png, job->info) != (size_t)w * c) {
        status = at_fail(err, AT_ERR_FORMAT, "%s: PNG of an unexpected pixel layout", path);
        goto done;
    }
    job->pixels = malloc((size_t)w * h * c);
    job->rows = malloc((size_t)h * sizeof *job->rows);
    if (!job->pixels || !job->rows) {
        status = at_fail(err, AT_ERR_NOMEM, "%s: out of memory for a %ldx%ld image", path, w, h);
        goto done;
    }
    for (long r = 0; r < h; r++)
        job->rows[r] = job->pixels + (size_t)r * w * c;
    png_read_image(job->png, job->rows);
    png_read_end(job->png, NULL); /* checks the CRCs and that nothing is missing after the pixels */
    *out = (image_pixels){.c = c, .h = (int)h, .w = (int)w, .data = job->pixels};
    job->pixels = NULL;
done:
    png_destroy_read_struct(&job->png, &job->info, NULL);
    free(job->rows);
    free(job->pixels);
    free(job);
    return status;
}

/* ---------------------------------------------------------------------------------------------
 * JPEG */

typedef struct jpeg_job {
    struct jpeg_error_mgr manager;
    jmp_buf jump;
    char message[JMSG_LENGTH_MAX];
    struct jpeg_decompress_struct dec;
    uint8_t *pixels;
} jpeg_job;

static void jpeg_on_error(j_common_ptr info)
{
    jpeg_job *job = (jpeg_job *)info->err;
    (*info->err->format_message)(info, job->message);
    longjmp(job->jump, 1);
}

/* Level -1 is a warning (damaged data libjpeg would paper over); higher levels are trace
 * messages, which are ignored. */
static void jpeg_on_message(j_common_ptr info, int level)
{
    if (level < 0)
        jpeg_on_error(info);
}

static int decode_jpeg(image_pixels *out, const uint8_t *bytes, size_t size, const char *path,
                       at_error *err)
{
    jpeg_job *const job = calloc(1, sizeof *job);
    if (!job)
        return at_fail(err, AT_ERR_NOMEM, "%s: out of memory", path);
    int status = AT_OK;
    job->dec.err = jpeg_std_error(&job->manager);
    job->manager.error_exit = jpeg_on_error;
    job->manager.emit_message = jpeg_on_message;
    if (setjmp(job->jump)) {
        status = at_fail(err, AT_ERR_FORMAT, "%s: damaged JPEG: %s", path, job->message);
        goto done;
    }
    jpeg_create_decompress(&job->dec);
    jpeg_mem_src(&job->dec, bytes, (unsigned long)size);
    jpeg_read_header(&job->dec, TRUE);
    const J_COLOR_SPACE space = job->dec.jpeg_color_space;
    if (space == JCS_CMYK || space == JCS_YCCK) {
        status = at_fail(err, AT_ERR_FORMAT, "%s: CMYK JPEG: only grey and colour (YCbCr, RGB) "
                         "JPEGs are read", path);
        goto done;
    }
    job->dec.out_color_space = space == JCS_GRAYSCALE ? JCS_GRAYSCALE : JCS_RGB;
    jpeg_start_decompress(&job->dec);
    const long w = (long)job->dec.output_width, h = (long)job->dec.output_height;
    const int c = job->dec.output_components;
    if ((status = check_size(w, h, path, err)))
        goto done;
    if (c != 1 && c != 3) {
        status = at_fail(err, AT_ERR_FORMAT, "%s: JPEG with %d components", path, c);
        goto done;
    }
    if (!(job->pixels = malloc((size_t)w * h * c))) {
        status = at_fail(err, AT_ERR_NOMEM, "%s: out of memory for a %ldx%ld image", path, w, h);
        goto done;
    }
    while (job->dec.output_scanline < job->dec.output_height) {
        JSAMPROW row = job->pixels + (size_t)job->dec.output_scanline * w * c;
        jpeg_read_scanlines(&job->dec, &row, 1);
    }
    jpeg_finish_decompress(&job->dec);
    *out = (image_pixels){.c = c, .h = (int)h, .w = (int)w, .data = job->pixels};
    job->pixels = NULL;
done:
    jpeg_destroy_decompress(&job->dec);
    free(job->pixels);
    free(job);
    return status;
}

int image_decode(image_pixels *out, const uint8_t *bytes, size_t size, const char *path,
                 at_error *err)
{
    static const uint8_t png_signature[8] = {0x89, 'P', 'N', 'G', '\r', '\n', 0x1a, '\n'};
    static const uint8_t jpeg_signature[3] = {0xff, 0xd8, 0xff}; /* SOI, then a marker */
    memset(out, 0, sizeof *out);
    if (size >= sizeof png_signature && memcmp(bytes, png_signature, sizeof png_signature) == 0)
        return decode_png(out, bytes, size, path, err);
    if (size >= sizeof jpeg_signature && memcmp(bytes, jpeg_signature, sizeof jpeg_signature) == 0)
        return decode_jpeg(out, bytes, size, path, err);
    return at_fail(err, AT_ERR_FORMAT, "%s: not a PNG or JPEG image (%s)", path,
                   size == 0 ? "empty file" : "unknown signature");
}
