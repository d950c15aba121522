/*
 * fuzz_dump_log.c - libFuzzer target for `sluice dump-log` (src/tools/dump_log.c),
 * which reads segment files an operator points it at: possibly corrupt,
 * possibly hostile.
 *
 * Input layout: byte 0 picks the file dumped (0 .log, 1 .index, 2 .timeindex)
 * and the options (bit 2: print records, bit 3: JSON); bytes 1-2 (big-endian)
 * say how many of the remaining bytes form the .log; the rest is the index
 * file. Both are written to a private directory on each run, the dump goes
 * to /dev/null.
 *
 * Invariants: no crash, no sanitizer report, bounded memory; a file that is
 * not a multiple of the entry size always yields a problem.
 */
#include <assert.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "tools/dump_log.h"

static char dir[64];
static char log_path[128], idx_path[128], tidx_path[128];
static FILE *devnull;

static void write_file(const char *path, const uint8_t *p, size_t n) {
    FILE *f = fopen(path, "wb");
    assert(f != NULL);
    if (n > 0)
        fwrite(p, 1, n, f);
    fclose(f);
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size) {
    if (devnull == NULL) {
        snprintf(dir, sizeof dir, "/tmp/sluice-fuzz-dumplog-%d", (int)getpid());
        if (mkdir(dir, 0700) != 0 && access(dir, W_OK) != 0)
            abort();
        snprintf(log_path, sizeof log_path, "%s/00000000000000000000.log", dir);
        snprintf(idx_path, sizeof idx_path, "%s/00000000000000000000.index", dir);
        snprintf(tidx_path, sizeof tidx_path, "%s/00000000000000000000.timeindex", dir);
        devnull = fopen("/dev/null", "w");
        assert(devnull != NULL);
    }
    if (size < 3)
        return 0;
    int kind = data[0] & 3;
    size_t log_len = ((size_t)data[1] << 8) | data[2];
    data += 3;
    size -= 3;
    if (log_len > size)
        log_len = size;
    write_file(log_path, data, log_len);
    const char *path = log_path;
    size_t other = size - log_len;
    if (kind == 1) {
        write_file(idx_path, data + log_len, other);
        path = idx_path;
    } else if (kind == 2) {
        write_file(tidx_path, data + log_len, other);
        path = tidx_path;
    }
    dump_opts o = {0};
    o.deep = o.print_data = (data[-3] & 4) != 0;
    o.json = (data[-3] & 8) != 0;
    dump_result res;
    dump_log_file(path, &o, devnull, &res);
    if (kind == 1 && other % 8 != 0)
        assert(res.problems > 0);
    if (kind == 2 && other % 12 != 0)
        assert(res.problems > 0);
    return 0;
}
