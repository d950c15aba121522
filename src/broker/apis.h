/*
 * apis.h - the broker's Kafka API handlers, one function per API. Each takes
 * a decoded request (r->req, the generated kafka_<api>_request struct) and
 * fills r->resp (kafka_<api>_response, already set to defaults). See
 * request.h for the return values. The table that routes to them is in
 * request.c.
 */
#ifndef SLUICE_BROKER_APIS_H
#define SLUICE_BROKER_APIS_H

#include "broker/errors.h"
#include "broker/request.h"

breq_status api_versions(breq *r);
breq_status api_produce(breq *r);
breq_status api_fetch(breq *r);
breq_status api_list_offsets(breq *r);
breq_status api_delete_records(breq *r);
breq_status api_offset_for_leader_epoch(breq *r);
/* Metadata and admin APIs (api_metadata.c, api_topics.c, api_configs.c, api_cluster.c). */
breq_status api_metadata(breq *r);
breq_status api_create_topics(breq *r);
breq_status api_delete_topics(breq *r);
breq_status api_create_partitions(breq *r);
breq_status api_describe_configs(breq *r);
breq_status api_alter_configs(breq *r);
breq_status api_incremental_alter_configs(breq *r);
breq_status api_describe_cluster(breq *r);
breq_status api_elect_leaders(breq *r);
breq_status api_unregister_broker(breq *r);
/* metadata.version (api_features.c): UpdateFeatures; ApiVersions reports the levels */
breq_status api_update_features(breq *r);
struct kafka_api_versions_response;
void api_versions_features(breq *r, struct kafka_api_versions_response *resp);
breq_status api_alter_partition(breq *r);
breq_status api_describe_log_dirs(breq *r);
/* group coordinator (api_groups.c) */
breq_status api_find_coordinator(breq *r);
breq_status api_join_group(breq *r);
breq_status api_sync_group(breq *r);
breq_status api_heartbeat(breq *r);
breq_status api_leave_group(breq *r);
breq_status api_offset_commit(breq *r);
breq_status api_offset_fetch(breq *r);
breq_status api_describe_groups(breq *r);
breq_status api_list_groups(breq *r);
breq_status api_delete_groups(breq *r);
breq_status api_offset_delete(breq *r);
breq_status api_consumer_group_heartbeat(breq *r);
breq_status api_consumer_group_describe(breq *r);
/* the KRaft quorum (api_quorum.c): Vote, BeginQuorumEpoch, EndQuorumEpoch, DescribeQuorum */
breq_status api_quorum(breq *r);
breq_status api_broker_registration(breq *r);
breq_status api_broker_heartbeat(breq *r);
/* idempotent producers (api_producer_ids.c, api_describe_producers.c) */
breq_status api_init_producer_id(breq *r);
breq_status api_allocate_producer_ids(breq *r);
breq_status api_describe_producers(breq *r);
/* transactions (api_txn.c) */
breq_status api_init_producer_id_txn(breq *r);
breq_status api_add_partitions_to_txn(breq *r);
breq_status api_add_offsets_to_txn(breq *r);
breq_status api_end_txn(breq *r);
breq_status api_txn_offset_commit(breq *r);
breq_status api_write_txn_markers(breq *r);
breq_status api_describe_transactions(breq *r);
breq_status api_list_transactions(breq *r);
/* SCRAM users (api_scram.c); SaslHandshake and SaslAuthenticate are in sasl.h */
breq_status api_alter_user_scram_credentials(breq *r);
breq_status api_describe_user_scram_credentials(breq *r);
/* ACLs (api_acls.c) */
breq_status api_create_acls(breq *r);
breq_status api_describe_acls(breq *r);
breq_status api_delete_acls(breq *r);
/* Client quotas (api_quotas.c) */
breq_status api_describe_client_quotas(breq *r);
breq_status api_alter_client_quotas(breq *r);

#endif
