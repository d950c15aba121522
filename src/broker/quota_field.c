/*
 * quota_field.c - where each response keeps throttle_time_ms: the API key,
 * the first version that has the field and its offset in the generated
 * response struct (proto/gen/kafka_msgs.h), so request.c sets it for any
 * API without the handlers knowing about quotas. Listed from the generated
 * header; an API missing here has no such field at any version.
 */
#include <stddef.h>
#include <string.h>

#include "broker/quota.h"
#include "proto/gen/kafka_msgs.h"

typedef struct throttle_field {
    int16_t key;
    int16_t since; /* first version with the field */
    size_t off;
} throttle_field;

static const throttle_field fields[] = {
    {0, 1, offsetof(kafka_produce_response, throttle_time_ms)},
    {1, 1, offsetof(kafka_fetch_response, throttle_time_ms)},
    {2, 2, offsetof(kafka_list_offsets_response, throttle_time_ms)},
    {3, 3, offsetof(kafka_metadata_response, throttle_time_ms)},
    {8, 3, offsetof(kafka_offset_commit_response, throttle_time_ms)},
    {9, 3, offsetof(kafka_offset_fetch_response, throttle_time_ms)},
    {10, 1, offsetof(kafka_find_coordinator_response, throttle_time_ms)},
    {11, 2, offsetof(kafka_join_group_response, throttle_time_ms)},
    {12, 1, offsetof(kafka_heartbeat_response, throttle_time_ms)},
    {13, 1, offsetof(kafka_leave_group_response, throttle_time_ms)},
    {14, 1, offsetof(kafka_sync_group_response, throttle_time_ms)},
    {15, 1, offsetof(kafka_describe_groups_response, throttle_time_ms)},
    {16, 1, offsetof(kafka_list_groups_response, throttle_time_ms)},
    {18, 1, offsetof(kafka_api_versions_response, throttle_time_ms)},
    {19, 2, offsetof(kafka_create_topics_response, throttle_time_ms)},
    {20, 1, offsetof(kafka_delete_topics_response, throttle_time_ms)},
    {21, 0, offsetof(kafka_delete_records_response, throttle_time_ms)},
    {22, 0, offsetof(kafka_init_producer_id_response, throttle_time_ms)},
    {23, 2, offsetof(kafka_offset_for_leader_epoch_response, throttle_time_ms)},
    {24, 0, offsetof(kafka_add_partitions_to_txn_response, throttle_time_ms)},
    {25, 0, offsetof(kafka_add_offsets_to_txn_response, throttle_time_ms)},
    {26, 0, offsetof(kafka_end_txn_response, throttle_time_ms)},
    {28, 0, offsetof(kafka_txn_offset_commit_response, throttle_time_ms)},
    {29, 0, offsetof(kafka_describe_acls_response, throttle_time_ms)},
    {30, 0, offsetof(kafka_create_acls_response, throttle_time_ms)},
    {31, 0, offsetof(kafka_delete_acls_response, throttle_time_ms)},
    {32, 0, offsetof(kafka_describe_configs_response, throttle_time_ms)},
    {33, 0, offsetof(kafka_alter_configs_response, throttle_time_ms)},
    {34, 0, offsetof(kafka_alter_replica_log_dirs_response, throttle_time_ms)},
    {35, 0, offsetof(kafka_describe_log_dirs_response, throttle_time_ms)},
    {37, 0, offsetof(kafka_create_partitions_response, throttle_time_ms)},
    {38, 0, offsetof(kafka_create_delegation_token_response, throttle_time_ms)},
    {39, 0, offsetof(kafka_renew_delegation_token_response, throttle_time_ms)},
    {40, 0, offsetof(kafka_expire_delegation_token_response, throttle_time_ms)},
    {41, 0, offsetof(kafka_describe_delegation_token_response, throttle_time_ms)},
    {42, 0, offsetof(kafka_delete_groups_response, throttle_time_ms)},
    {43, 0, offsetof(kafka_elect_leaders_response, throttle_time_ms)},
    {44, 0, offsetof(kafka_incremental_alter_configs_response, throttle_time_ms)},
    {45, 0, offsetof(kafka_alter_partition_reassignments_response, throttle_time_ms)},
    {46, 0, offsetof(kafka_list_partition_reassignments_response, throttle_time_ms)},
    {47, 0, offsetof(kafka_offset_delete_response, throttle_time_ms)},
    {48, 0, offsetof(kafka_describe_client_quotas_response, throttle_time_ms)},
    {49, 0, offsetof(kafka_alter_client_quotas_response, throttle_time_ms)},
    {50, 0, offsetof(kafka_describe_user_scram_credentials_response, throttle_time_ms)},
    {51, 0, offsetof(kafka_alter_user_scram_credentials_response, throttle_time_ms)},
    {56, 0, offsetof(kafka_alter_partition_response, throttle_time_ms)},
    {57, 0, offsetof(kafka_update_features_response, throttle_time_ms)},
    {59, 0, offsetof(kafka_fetch_snapshot_response, throttle_time_ms)},
    {60, 0, offsetof(kafka_describe_cluster_response, throttle_time_ms)},
    {61, 0, offsetof(kafka_describe_producers_response, throttle_time_ms)},
    {62, 0, offsetof(kafka_broker_registration_response, throttle_time_ms)},
    {63, 0, offsetof(kafka_broker_heartbeat_response, throttle_time_ms)},
    {64, 0, offsetof(kafka_unregister_broker_response, throttle_time_ms)},
    {65, 0, offsetof(kafka_describe_transactions_response, throttle_time_ms)},
    {66, 0, offsetof(kafka_list_transactions_response, throttle_time_ms)},
    {67, 0, offsetof(kafka_allocate_producer_ids_response, throttle_time_ms)},
    {68, 0, offsetof(kafka_consumer_group_heartbeat_response, throttle_time_ms)},
    {69, 0, offsetof(kafka_consumer_group_describe_response, throttle_time_ms)},
    {70, 0, offsetof(kafka_controller_registration_response, throttle_time_ms)},
    {71, 0, offsetof(kafka_get_telemetry_subscriptions_response, throttle_time_ms)},
    {72, 0, offsetof(kafka_push_telemetry_response, throttle_time_ms)},
    {73, 0, offsetof(kafka_assign_replicas_to_dirs_response, throttle_time_ms)},
    {74, 0, offsetof(kafka_list_client_metrics_resources_response, throttle_time_ms)},
    {75, 0, offsetof(kafka_describe_topic_partitions_response, throttle_time_ms)},
    {76, 0, offsetof(kafka_share_group_heartbeat_response, throttle_time_ms)},
    {77, 0, offsetof(kafka_share_group_describe_response, throttle_time_ms)},
    {78, 0, offsetof(kafka_share_fetch_response, throttle_time_ms)},
    {79, 0, offsetof(kafka_share_acknowledge_response, throttle_time_ms)},
    {80, 0, offsetof(kafka_add_raft_voter_response, throttle_time_ms)},
    {81, 0, offsetof(kafka_remove_raft_voter_response, throttle_time_ms)},
    {82, 0, offsetof(kafka_update_raft_voter_response, throttle_time_ms)},
};

bool bquota_set_throttle_field(int16_t key, int16_t version, void *resp, int32_t ms) {
    for (size_t i = 0; i < sizeof fields / sizeof fields[0]; i++)
        if (fields[i].key == key) {
            if (version < fields[i].since)
                return false;
            int32_t *p = (int32_t *)((char *)resp + fields[i].off);
            if (ms > *p)
                *p = ms;
            return true;
        }
    return false;
}
