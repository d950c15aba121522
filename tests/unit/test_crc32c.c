/* Unit tests for src/core/crc32c.c: published check values, agreement of the
 * accelerated and portable paths on every length and alignment, and
 * incremental computation. */
#include "core/crc32c.h"
#include "unit.h"

#include <stdint.h>
#include <stdlib.h>
#include <string.h>

static void test_vectors(void) {
    uint8_t buf[32];
    CHECK_EQ_INT(crc32c(0, "123456789", 9), 0xE3069283u);
    CHECK_EQ_INT(crc32c_portable(0, "123456789", 9), 0xE3069283u);

    memset(buf, 0, sizeof buf);
    CHECK_EQ_INT(crc32c(0, buf, 32), 0x8A9136AAu);
    CHECK_EQ_INT(crc32c_portable(0, buf, 32), 0x8A9136AAu);

    memset(buf, 0xff, sizeof buf);
    CHECK_EQ_INT(crc32c(0, buf, 32), 0x62A8AB43u);
    CHECK_EQ_INT(crc32c_portable(0, buf, 32), 0x62A8AB43u);

    for (int i = 0; i < 32; i++)
        buf[i] = (uint8_t)i;
    CHECK_EQ_INT(crc32c(0, buf, 32), 0x46DD794Eu);
    CHECK_EQ_INT(crc32c_portable(0, buf, 32), 0x46DD794Eu);

    /* Empty input leaves the value alone. */
    CHECK_EQ_INT(crc32c(0, NULL, 0), 0);
    CHECK_EQ_INT(crc32c(0x12345678u, buf, 0), 0x12345678u);
}

/* xorshift64: deterministic pseudo-random bytes without libc state. */
static uint64_t rng_state = 0x9E3779B97F4A7C15ull;
static uint8_t rnd8(void) {
    rng_state ^= rng_state << 13;
    rng_state ^= rng_state >> 7;
    rng_state ^= rng_state << 17;
    return (uint8_t)(rng_state >> 24);
}

static void test_accelerated_matches_portable(void) {
    enum { MAXLEN = 1024, MAXSKEW = 8 };
    static uint8_t buf[MAXLEN + MAXSKEW];
    for (size_t i = 0; i < sizeof buf; i++)
        buf[i] = rnd8();
    printf("crc32c implementation: %s\n", crc32c_impl());
    /* A run that means to test one path (make test-aarch64: armv8) says so,
     * so a silent fallback to the portable code cannot pass for it. */
    const char *want = getenv("SLUICE_CRC32C_EXPECT");
    if (want != NULL && want[0] != '\0')
        CHECK(strcmp(crc32c_impl(), want) == 0);
    int mismatches = 0;
    for (size_t skew = 0; skew < MAXSKEW; skew++)
        for (size_t len = 0; len <= MAXLEN; len++)
            if (crc32c(0, buf + skew, len) != crc32c_portable(0, buf + skew, len))
                mismatches++;
    CHECK_EQ_INT(mismatches, 0);
    /* Longer buffers run many rounds of the interleaved lanes. */
    static uint8_t big[100003];
    for (size_t i = 0; i < sizeof big; i++)
        big[i] = rnd8();
    size_t lens[] = {767, 768, 769, 1535, 1536, 2304 + 5, 4096, 65536, sizeof big - 3};
    for (size_t i = 0; i < sizeof lens / sizeof lens[0]; i++)
        for (size_t skew = 0; skew < 3; skew++)
            CHECK_EQ_INT(crc32c(0, big + skew, lens[i]), crc32c_portable(0, big + skew, lens[i]));
}

static void test_incremental(void) {
    static uint8_t buf[600];
    for (size_t i = 0; i < sizeof buf; i++)
        buf[i] = rnd8();
    uint32_t whole = crc32c(0, buf, sizeof buf);
    CHECK_EQ_INT(whole, crc32c_portable(0, buf, sizeof buf));
    int bad = 0;
    for (size_t split = 0; split <= sizeof buf; split++) {
        uint32_t c = crc32c(0, buf, split);
        c = crc32c(c, buf + split, sizeof buf - split);
        uint32_t p = crc32c_portable(0, buf, split);
        p = crc32c_portable(p, buf + split, sizeof buf - split);
        /* Mixed: start on one path, finish on the other. */
        uint32_t m = crc32c_portable(crc32c(0, buf, split), buf + split, sizeof buf - split);
        if (c != whole || p != whole || m != whole)
            bad++;
    }
    CHECK_EQ_INT(bad, 0);
    /* Three pieces of odd sizes. */
    uint32_t c = crc32c(0, buf, 7);
    c = crc32c(c, buf + 7, 333);
    c = crc32c(c, buf + 340, sizeof buf - 340);
    CHECK_EQ_INT(c, whole);
}

int main(void) {
    UNIT_RUN(test_vectors);
    UNIT_RUN(test_accelerated_matches_portable);
    UNIT_RUN(test_incremental);
    return UNIT_END("test_crc32c");
}
