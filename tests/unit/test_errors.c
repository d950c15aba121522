/*
 * test_errors.c - the one mapping of storage results to Kafka error codes
 * (broker/errors.c): every storage_err has its Kafka code, and none of
 * storage's values passes for a Kafka code by itself.
 */
#include "unit.h"

#include "broker/errors.h"
#include "proto/gen/kafka_msgs.h"
#include "storage/storage.h"

static void test_every_storage_error_mapped(void) {
    static const struct {
        int storage;
        int16_t kafka;
    } want[] = {
        {STORAGE_OK, KAFKA_ERR_NONE},
        {STORAGE_OFFSET_OUT_OF_RANGE, KAFKA_ERR_OFFSET_OUT_OF_RANGE},
        {STORAGE_CORRUPT_MESSAGE, KAFKA_ERR_CORRUPT_MESSAGE},
        {STORAGE_MESSAGE_TOO_LARGE, KAFKA_ERR_MESSAGE_TOO_LARGE},
        {STORAGE_RECORD_LIST_TOO_LARGE, KAFKA_ERR_RECORD_LIST_TOO_LARGE},
        {STORAGE_INVALID_TIMESTAMP, KAFKA_ERR_INVALID_TIMESTAMP},
        {STORAGE_UNSUPPORTED_FOR_MESSAGE_FORMAT, KAFKA_ERR_UNSUPPORTED_FOR_MESSAGE_FORMAT},
        {STORAGE_KAFKA_STORAGE_ERROR, KAFKA_ERR_KAFKA_STORAGE_ERROR},
        {STORAGE_UNSUPPORTED_COMPRESSION_TYPE, KAFKA_ERR_UNSUPPORTED_COMPRESSION_TYPE},
        {STORAGE_INVALID_RECORD, KAFKA_ERR_INVALID_RECORD},
        {STORAGE_UNEXPECTED_OFFSET, KAFKA_ERR_UNKNOWN_SERVER_ERROR},
    };
    int n = (int)(sizeof want / sizeof want[0]);
    CHECK_EQ_INT(n, STORAGE_ERR_LAST - STORAGE_ERR_FIRST + 2); /* every value, and OK */
    for (int i = 0; i < n; i++)
        CHECK_EQ_INT(broker_kafka_error(want[i].storage), want[i].kafka);
    /* storage's numbers are not Kafka codes: a site that forgot the mapping
     * would send one no client knows */
    for (int e = STORAGE_ERR_FIRST; e <= STORAGE_ERR_LAST; e++) {
        CHECK(e != broker_kafka_error(e));
        CHECK(kafka_error_name(e) == NULL);
        CHECK(kafka_error_name(broker_kafka_error(e)) != NULL);
    }
    CHECK_EQ_INT(broker_kafka_error(-5), KAFKA_ERR_UNKNOWN_SERVER_ERROR);
    CHECK_EQ_INT(broker_kafka_error(STORAGE_ERR_LAST + 1), KAFKA_ERR_UNKNOWN_SERVER_ERROR);
}

int main(void) {
    UNIT_RUN(test_every_storage_error_mapped);
    return UNIT_END("test_errors");
}
