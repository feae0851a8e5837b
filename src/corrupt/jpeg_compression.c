/* jpeg_compression.c: CIFAR-10-C's "jpeg_compression" (Hendrycks and Dietterich, ICLR 2019): the
 * 8-bit image is saved as a JPEG at the quality of the CIFAR-10 severity table and decoded back.
 * The original does this with PIL, which drives libjpeg with its defaults; here libjpeg is called
 * directly, in memory (jpeg_mem_dest / jpeg_mem_src), with those same defaults: jpeg_set_defaults
 * (4:2:0 chroma subsampling for colour, the slow integer DCT) and jpeg_set_quality(q, baseline).
 * Grey images are coded as JCS_GRAYSCALE, colour ones as JCS_RGB. Pixels are rounded to 8 bits
 * on the way in (round(255 x)) and come back as k / 255. JPEG works on 8x8 blocks at any size.
 *
 * libjpeg reports errors (an image over 65500 pixels a side, say) through an error manager whose
 * default calls exit(); the one here jumps back (setjmp/longjmp) and the error is returned as an
 * at_error, and its warnings are not printed. Everything the jump can leave behind lives in one
 * heap block reachable from a pointer set before setjmp, so nothing depends on locals changed
 * after it. */
#include "corrupt/corruption.h"

#include <setjmp.h>
#include <stdint.h>
#include <stdio.h> /* jpeglib.h needs FILE */
#include <stdlib.h>

#include <jpeglib.h>

static const int quality[5] = {80, 65, 58, 50, 40};

typedef struct jpeg_job {
    struct jpeg_error_mgr manager;
    jmp_buf jump;
    char message[JMSG_LENGTH_MAX];
    struct jpeg_compress_struct enc;
    struct jpeg_decompress_struct dec;
    unsigned char *file;   /* the JPEG file in memory, malloc'ed by jpeg_mem_dest */
    unsigned long bytes;
    uint8_t *pixels;       /* [h, w, c] interleaved, as libjpeg reads and writes scanlines */
} jpeg_job;

static void on_error(j_common_ptr info)
{
    jpeg_job *job = (jpeg_job *)info->err;
    (*info->err->format_message)(info, job->message);
    longjmp(job->jump, 1);
}

static void no_output(j_common_ptr info) { (void)info; }

static void job_free(jpeg_job *job)
{
    jpeg_destroy_compress(&job->enc);
    jpeg_destroy_decompress(&job->dec);
    free(job->file);
    free(job->pixels);
    free(job);
}

int at_corrupt_jpeg_compression(float *image, int c, int h, int w, int severity, at_rng *rng,
                                at_error *err)
{
    (void)rng;
    jpeg_job *const job = calloc(1, sizeof *job);
    const size_t plane = (size_t)h * w;
    if (job)
        job->pixels = malloc(plane * c);
    if (!job || !job->pixels) {
        free(job);
        return at_fail(err, AT_ERR_NOMEM, "jpeg_compression: out of memory for a %dx%d image", h, w);
    }
    for (size_t p = 0; p < plane; p++)
        for (int ch = 0; ch < c; ch++)
            job->pixels[p * c + ch] = (uint8_t)(image[ch * plane + p] * 255.0f + 0.5f);
    job->enc.err = jpeg_std_error(&job->manager);
    job->dec.err = &job->manager;
    job->manager.error_exit = on_error;
    job->manager.output_message = no_output;
    if (setjmp(job->jump)) {
        int status = at_fail(err, AT_ERR_FORMAT, "jpeg_compression: libjpeg: %s", job->message);
        job_free(job);
        return status;
    }

    jpeg_create_compress(&job->enc);
    jpeg_mem_dest(&job->enc, &job->file, &job->bytes);
    job->enc.image_width = (JDIMENSION)w;
    job->enc.image_height = (JDIMENSION)h;
    job->enc.input_components = c;
    job->enc.in_color_space = c == 1 ? JCS_GRAYSCALE : JCS_RGB;
    jpeg_set_defaults(&job->enc);
    jpeg_set_quality(&job->enc, quality[severity - 1], TRUE);
    jpeg_start_compress(&job->enc, TRUE);
    while (job->enc.next_scanline < job->enc.image_height) {
        JSAMPROW row = job->pixels + (size_t)job->enc.next_scanline * w * c;
        jpeg_write_scanlines(&job->enc, &row, 1);
    }
    jpeg_finish_compress(&job->enc);

    jpeg_create_decompress(&job->dec);
    jpeg_mem_src(&job->dec, job->file, job->bytes);
    jpeg_read_header(&job->dec, TRUE);
    job->dec.out_color_space = c == 1 ? JCS_GRAYSCALE : JCS_RGB;
    jpeg_start_decompress(&job->dec);
    if (job->dec.output_width != (JDIMENSION)w || job->dec.output_height != (JDIMENSION)h ||
        job->dec.output_components != c) {
        job_free(job);
        return at_fail(err, AT_ERR_FORMAT, "jpeg_compression: libjpeg decoded another shape");
    }
    while (job->dec.output_scanline < job->dec.output_height) {
        JSAMPROW row = job->pixels + (size_t)job->dec.output_scanline * w * c;
        jpeg_read_scanlines(&job->dec, &row, 1);
    }
    jpeg_finish_decompress(&job->dec);

    for (size_t p = 0; p < plane; p++)
        for (int ch = 0; ch < c; ch++)
            image[ch * plane + p] = job->pixels[p * c + ch] / 255.0f;
    job_free(job);
    return 0;
}
