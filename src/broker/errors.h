/*
 * errors.h - the one place where the broker turns the error values of the
 * layers below into Kafka error codes for a client.
 *
 * Storage returns its own storage_err values (storage/storage.h), which are
 * deliberately not Kafka codes. Every site where a storage result reaches a
 * client answer goes through broker_kafka_error(), so the mapping is written
 * once and a new storage error cannot leak onto the wire unmapped.
 */
#ifndef SLUICE_BROKER_ERRORS_H
#define SLUICE_BROKER_ERRORS_H

#include <stdint.h>

/* The Kafka error code for a storage result: STORAGE_OK gives
 * KAFKA_ERR_NONE; a value storage does not define gives
 * KAFKA_ERR_UNKNOWN_SERVER_ERROR. (The switch names every storage_err, so
 * -Wswitch fails the build when one is added without its Kafka code.) */
int16_t broker_kafka_error(int storage_err);

#endif
