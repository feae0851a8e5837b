/* hash.c: SHA-256 (through GNU Nettle) of files and data sets, for reports that name exactly which
 * checkpoint and which data they measured. */
#include "core/util.h"

#include <nettle/sha2.h>
#include <errno.h>
#include <stdio.h>
#include <string.h>

static void to_hex(const uint8_t digest[SHA256_DIGEST_SIZE], char hex[65])
{
    static const char digits[] = "0123456789abcdef";
    for (int i = 0; i < SHA256_DIGEST_SIZE; i++) {
        hex[2 * i] = digits[digest[i] >> 4];
        hex[2 * i + 1] = digits[digest[i] & 15];
    }
    hex[64] = '\0';
}

int at_file_sha256(const char *path, char hex[65], at_error *err)
{
    FILE *f = fopen(path, "rb");
    if (!f)
        return at_fail(err, AT_ERR_IO, "%s: cannot open: %s", path, strerror(errno));
    struct sha256_ctx ctx;
    sha256_init(&ctx);
    uint8_t buf[1 << 16];
    size_t got;
    while ((got = fread(buf, 1, sizeof buf, f)) > 0)
        sha256_update(&ctx, got, buf);
    int failed = ferror(f);
    fclose(f);
    if (failed)
        return at_fail(err, AT_ERR_IO, "%s: read error", path);
    uint8_t digest[SHA256_DIGEST_SIZE];
    sha256_digest(&ctx, sizeof digest, digest);
    to_hex(digest, hex);
    return AT_OK;
}

void at_dataset_sha256(const at_dataset *ds, char hex[65])
{
    struct sha256_ctx ctx;
    sha256_init(&ctx);
    /* the shape first, so equal bytes in another layout hash differently */
    int32_t header[4] = {ds->n, ds->c, ds->h, ds->w};
    sha256_update(&ctx, sizeof header, (const uint8_t *)header);
    if (ds->n > 0) {
        sha256_update(&ctx, (size_t)ds->n * ds->c * ds->h * ds->w, ds->images);
        sha256_update(&ctx, (size_t)ds->n * sizeof(int32_t), (const uint8_t *)ds->labels);
    }
    uint8_t digest[SHA256_DIGEST_SIZE];
    sha256_digest(&ctx, sizeof digest, digest);
    to_hex(digest, hex);
}
