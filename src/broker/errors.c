/*
 * errors.c - storage results as Kafka error codes. See errors.h.
 */
#include "broker/errors.h"

#include "proto/gen/kafka_msgs.h"
#include "storage/storage.h"

int16_t broker_kafka_error(int storage_err) {
    switch ((enum storage_err)storage_err) {
    case STORAGE_OK:
        return KAFKA_ERR_NONE;
    case STORAGE_OFFSET_OUT_OF_RANGE:
        return KAFKA_ERR_OFFSET_OUT_OF_RANGE;
    case STORAGE_CORRUPT_MESSAGE:
        return KAFKA_ERR_CORRUPT_MESSAGE;
    case STORAGE_MESSAGE_TOO_LARGE:
        return KAFKA_ERR_MESSAGE_TOO_LARGE;
    case STORAGE_RECORD_LIST_TOO_LARGE:
        return KAFKA_ERR_RECORD_LIST_TOO_LARGE;
    case STORAGE_INVALID_TIMESTAMP:
        return KAFKA_ERR_INVALID_TIMESTAMP;
    case STORAGE_UNSUPPORTED_FOR_MESSAGE_FORMAT:
        return KAFKA_ERR_UNSUPPORTED_FOR_MESSAGE_FORMAT;
    case STORAGE_KAFKA_STORAGE_ERROR:
        return KAFKA_ERR_KAFKA_STORAGE_ERROR;
    case STORAGE_UNSUPPORTED_COMPRESSION_TYPE:
        return KAFKA_ERR_UNSUPPORTED_COMPRESSION_TYPE;
    case STORAGE_INVALID_RECORD:
        return KAFKA_ERR_INVALID_RECORD;
    case STORAGE_UNEXPECTED_OFFSET:
        /* Only a follower's append reports it, and the replica acts on it
         * (truncates, refetches); Kafka has no wire code for it. */
        return KAFKA_ERR_UNKNOWN_SERVER_ERROR;
    }
    return KAFKA_ERR_UNKNOWN_SERVER_ERROR;
}
