/*
 * test_cli.c - unit tests of the `sluice` command line's shared helpers
 * (tools/cli.c): strict number and size parsing, key=value splitting, JSON
 * string escaping (always valid JSON, even for invalid UTF-8) and the
 * byte printer used for keys and values.
 */
#include <stdint.h>
#include <stdlib.h>

#include "tools/cli.h"
#include "unit.h"

static char *buf;
static size_t len;

static const char *json_of(const char *s, ptrdiff_t n) {
    free(buf);
    buf = NULL;
    FILE *f = open_memstream(&buf, &len);
    cli_json_str(f, s, n);
    fclose(f);
    return buf;
}

static const char *printed(const char *s, size_t n) {
    free(buf);
    buf = NULL;
    FILE *f = open_memstream(&buf, &len);
    cli_print_bytes(f, s, n);
    fclose(f);
    return buf;
}

static void test_parse_i64(void) {
    int64_t v = 0;
    CHECK(cli_parse_i64("42", 0, 100, &v) && v == 42);
    CHECK(cli_parse_i64("-1", -1, 100, &v) && v == -1);
    CHECK(!cli_parse_i64("101", 0, 100, &v));
    CHECK(!cli_parse_i64("-2", -1, 100, &v));
    CHECK(!cli_parse_i64("", 0, 100, &v));
    CHECK(!cli_parse_i64("12x", 0, 100, &v));
    CHECK(!cli_parse_i64("x", 0, 100, &v));
    CHECK(!cli_parse_i64("99999999999999999999999", INT64_MIN, INT64_MAX, &v));
    CHECK(cli_parse_i64("9223372036854775807", 0, INT64_MAX, &v) && v == INT64_MAX);
}

static void test_parse_size(void) {
    int64_t v = 0;
    CHECK(cli_parse_size("100", 1 << 30, &v) && v == 100);
    CHECK(cli_parse_size("4k", 1 << 30, &v) && v == 4096);
    CHECK(cli_parse_size("1m", 1 << 30, &v) && v == 1 << 20);
    CHECK(cli_parse_size("2G", INT64_MAX, &v) && v == 2LL << 30);
    CHECK(!cli_parse_size("2g", 1 << 30, &v));
    CHECK(!cli_parse_size("k", 1 << 30, &v));
    CHECK(!cli_parse_size("1.5m", 1 << 30, &v));
    CHECK(!cli_parse_size("-1k", 1 << 30, &v));
}

static void test_split_kv(void) {
    char b[32];
    const char *k, *v;
    CHECK(cli_split_kv("acks=all", '=', b, sizeof b, &k, &v) && strcmp(k, "acks") == 0 &&
          strcmp(v, "all") == 0);
    CHECK(cli_split_kv("a=b=c", '=', b, sizeof b, &k, &v) && strcmp(k, "a") == 0 && strcmp(v, "b=c") == 0);
    CHECK(cli_split_kv("k=", '=', b, sizeof b, &k, &v) && strcmp(v, "") == 0);
    CHECK(!cli_split_kv("=v", '=', b, sizeof b, &k, &v));
    CHECK(!cli_split_kv("novalue", '=', b, sizeof b, &k, &v));
    CHECK(!cli_split_kv("this-key-is-far-too-long-for-the-buffer=1", '=', b, sizeof b, &k, &v));
}

static void test_json_str(void) {
    CHECK(strcmp(json_of("plain", -1), "\"plain\"") == 0);
    CHECK(strcmp(json_of("q\"b\\", -1), "\"q\\\"b\\\\\"") == 0);
    CHECK(strcmp(json_of("a\nb\tc\r", -1), "\"a\\nb\\tc\\r\"") == 0);
    CHECK(strcmp(json_of("\x01\x7f", 2), "\"\\u0001\\u007f\"") == 0);
    CHECK(strcmp(json_of("a\0b", 3), "\"a\\u0000b\"") == 0);
    CHECK(strcmp(json_of("caf\xc3\xa9", -1), "\"caf\xc3\xa9\"") == 0); /* valid UTF-8 kept */
    CHECK(strcmp(json_of("\xff"
                         "a",
                         2),
                 "\"\\ufffda\"") == 0);                                          /* invalid byte */
    CHECK(strcmp(json_of("\xc3", 1), "\"\\ufffd\"") == 0);                       /* truncated sequence */
    CHECK(strcmp(json_of("\xc0\xaf", 2), "\"\\ufffd\\ufffd\"") == 0);            /* overlong */
    CHECK(strcmp(json_of("\xed\xa0\x80", 3), "\"\\ufffd\\ufffd\\ufffd\"") == 0); /* surrogate */
    CHECK(strcmp(json_of("\xf0\x9f\x98\x80", 4), "\"\xf0\x9f\x98\x80\"") == 0);  /* 4-byte kept */
}

static void test_print_bytes(void) {
    CHECK(strcmp(printed("hello", 5), "hello") == 0);
    CHECK(strcmp(printed("a\nb", 3), "a\\x0ab") == 0);
    CHECK(strcmp(printed("\xff\x00", 2), "\\xff\\x00") == 0);
    CHECK(strcmp(printed("\xc3\xa9", 2), "\xc3\xa9") == 0);
}

int main(void) {
    UNIT_RUN(test_parse_i64);
    UNIT_RUN(test_parse_size);
    UNIT_RUN(test_split_kv);
    UNIT_RUN(test_json_str);
    UNIT_RUN(test_print_bytes);
    free(buf);
    return UNIT_END("test_cli");
}
