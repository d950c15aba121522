/*
 * fuzz_metadata.c - libFuzzer target for the KRaft metadata record decoder
 * (metadata/records.c) and the one path that changes metadata
 * (md_apply in metadata/image.c). Both read __cluster_metadata-0 from disk
 * at start, where a damaged or hostile file must give errors, never a
 * broken image.
 *
 * Input layout: a sequence of frames, each a 2-byte big-endian length and
 * that many bytes of one framed metadata record. A frame length of 0 ends
 * the current delta (publishes it) and begins another.
 *
 * Invariants: no crash, no sanitizer report; whatever md_apply accepted
 * gives an image whose snapshot records (md_image_records) encode, decode
 * and apply to the empty image again, into an image md_image_equal to it.
 */
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>

#include "core/arena.h"
#include "metadata/image.h"
#include "metadata/records.h"

typedef struct reload {
    md_delta *d;
    arena *a;
    int failed;
    char err[256];
} reload;

static int reload_one(void *ctx, const mdrec *rec) {
    reload *rc = ctx;
    uint8_t *buf;
    size_t len;
    mdrec back;
    if (mdrec_encode_alloc(rec, rc->a, &buf, &len) != MDREC_OK ||
        mdrec_decode(buf, len, rc->a, &back) != MDREC_OK ||
        md_apply(rc->d, &back, rc->err, sizeof rc->err) != MD_OK) {
        rc->failed++;
        return 1;
    }
    return 0;
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size) {
    static int verbose = -1;
    if (verbose < 0)
        verbose = getenv("FUZZ_VERBOSE") != NULL;
    arena a;
    arena_init(&a, 1 << 24);
    md_image *img = md_image_empty();
    md_delta *d = md_delta_begin(img);
    int64_t offset = 0;
    char err[256];
    size_t i = 0;
    while (i + 2 <= size) {
        size_t n = (size_t)data[i] << 8 | data[i + 1];
        i += 2;
        if (n > size - i)
            n = size - i;
        if (n == 0) {
            md_image *next = md_delta_publish(d, ++offset, 0);
            if (next == NULL)
                abort();
            md_image_unref(img);
            img = next;
            d = md_delta_begin(img);
            continue;
        }
        mdrec rec;
        int rc = mdrec_decode(data + i, n, &a, &rec);
        if (rc == MDREC_OK)
            rc = md_apply(d, &rec, err, sizeof err);
        else
            snprintf(err, sizeof err, "%s", mdrec_strerror(rc));
        if (verbose) /* FUZZ_VERBOSE=1: what each frame did (checking seeds) */
            fprintf(stderr, "frame of %zu bytes: %s\n", n, rc == 0 ? "applied" : err);
        i += n;
    }
    md_image *last = md_delta_publish(d, ++offset, 0);
    if (last == NULL)
        abort();
    md_image_unref(img);
    img = last;

    /* The snapshot of what was accepted rebuilds the same image. */
    md_image *empty = md_image_empty();
    reload rc = {md_delta_begin(empty), &a, 0, ""};
    md_image_records(img, reload_one, &rc);
    md_image *back = md_delta_publish(rc.d, offset, 0);
    char why[512];
    if (rc.failed) {
        fprintf(stderr, "a snapshot record did not reload: %s\n", rc.err);
        abort();
    }
    if (back == NULL || !md_image_equal(img, back, why, sizeof why)) {
        fprintf(stderr, "the snapshot rebuilt a different image: %s\n", back ? why : "out of memory");
        abort();
    }
    md_image_unref(back);
    md_image_unref(empty);
    md_image_unref(img);
    arena_reset(&a);
    return 0;
}
