"""Every key of loki/loki-config.yaml is a Loki 3.x configuration key, in the block it belongs to.

Loki refuses to start on an unknown key ("field xyz not found in type ..."), but nothing here
can run Loki, so a typo (or a key put in the wrong block) would only show when a user starts
the bundle. The allow-list below is Loki's configuration reference:

    grafana/loki, docs/sources/shared/configuration.md (generated from the config structs by
    `make doc`), commit 002ee222b2bb07240a7a304d7158b17cda47d2bf,
    https://grafana.com/docs/loki/latest/configure/

For the blocks this config uses, every key the reference lists is here (nested blocks the
config uses are spelled out; the others are ``ANY``: their content is not checked); other
top-level blocks are listed by name only. The reference is generated from a later main branch
than the pinned image (grafana/loki:3.7.2), so it may list a few newer keys; the keys this
config uses have all been in Loki since 2.x/3.0 (tsdb, v13, structured metadata).
"""

from __future__ import annotations

import pytest
import yaml

from tests import bundle_queries as bq

ANY = None  # a value (or a block) whose content is not checked


def keys(*names: str) -> dict:
    return dict.fromkeys(names, ANY)


class ListOf:
    """A list whose items are blocks of the given schema."""

    def __init__(self, item: dict):
        self.item = item


KVSTORE = keys("store", "prefix", "consul", "etcd", "multi")

SERVER = keys(
    "http_listen_network", "http_listen_address", "http_listen_port", "http_listen_conn_limit",
    "grpc_listen_network", "grpc_listen_address", "grpc_listen_port", "grpc_listen_conn_limit",
    "grpc_collect_max_streams_by_conn", "proxy_protocol_enabled", "tls_cipher_suites", "tls_min_version",
    "http_tls_config", "grpc_tls_config", "register_instrumentation",
    "report_grpc_codes_in_instrumentation_label_enabled", "graceful_shutdown_timeout",
    "http_server_read_timeout", "http_server_read_header_timeout", "http_server_write_timeout",
    "http_server_idle_timeout", "http_log_closed_connections_without_response_enabled",
    "grpc_server_max_recv_msg_size", "grpc_server_max_send_msg_size", "grpc_server_max_concurrent_streams",
    "grpc_server_max_connection_idle", "grpc_server_max_connection_age", "grpc_server_max_connection_age_grace",
    "grpc_server_keepalive_time", "grpc_server_keepalive_timeout", "grpc_server_min_time_between_pings",
    "grpc_server_ping_without_stream_allowed", "grpc_server_num_workers", "grpc_server_stats_tracking_enabled",
    "grpc_server_recv_buffer_pools_enabled", "grpc_server_read_buffer_size", "grpc_server_write_buffer_size",
    "log_format", "log_level", "log_source_ips_enabled", "log_source_ips_full", "log_source_ips_header",
    "log_source_ips_regex", "log_request_headers", "log_request_at_info_level_enabled",
    "log_request_exclude_headers_list", "trace_request_headers", "trace_request_exclude_headers_list",
    "http_path_prefix", "cluster_validation", "create_new_traces")

COMMON = {
    **keys("path_prefix", "persist_tokens", "replication_factor", "instance_interface_names", "instance_addr",
           "compactor_address", "compactor_grpc_address", "scratch_path"),
    "storage": {**keys("s3", "gcs", "azure", "alibabacloud", "bos", "swift", "hedging", "cos",
                       "congestion_control", "object_store"),
                "filesystem": keys("chunks_directory", "rules_directory")},
    "ring": {**keys("heartbeat_period", "heartbeat_timeout", "tokens_file_path", "zone_awareness_enabled",
                    "num_tokens", "replication_factor", "instance_id", "instance_interface_names",
                    "instance_port", "instance_addr", "instance_availability_zone", "instance_enable_ipv6"),
             "kvstore": KVSTORE},
}

PERIOD_CONFIG = {
    **keys("from", "store", "object_store", "schema", "row_shards"),
    "index": keys("path_prefix", "prefix", "period", "tags"),
    "chunks": keys("prefix", "period", "tags"),
}

INGESTER = {
    **keys("lifecycler", "concurrent_flushes", "flush_check_period", "flush_op_backoff", "flush_op_timeout",
           "chunk_retain_period", "chunk_idle_period", "chunk_block_size", "chunk_target_size",
           "chunk_encoding", "max_chunk_age", "autoforget_unhealthy", "sync_period", "sync_min_utilization",
           "max_returned_stream_errors", "query_store_max_look_back_period", "index_shards",
           "max_dropped_streams", "shutdown_marker_path", "owned_streams_check_interval",
           "delegate_stream_limits_enabled", "kafka_ingestion"),
    "wal": keys("enabled", "dir", "checkpoint_duration", "flush_on_shutdown", "replay_memory_ceiling",
                "disk_full_threshold"),
}

QUERIER = {
    **keys("tail_max_duration", "extra_query_delay", "query_ingesters_within", "max_concurrent",
           "query_store_only", "query_ingester_only", "multi_tenant_queries_enabled",
           "per_request_limits_enabled", "query_partition_ingesters"),
    "engine": keys("max_look_back_period", "max_count_min_sketch_heap_size"),
}

LIMITS_CONFIG = keys(
    "ingestion_rate_strategy", "ingestion_rate_mb", "ingestion_burst_size_mb", "max_label_name_length",
    "max_label_value_length", "max_label_names_per_series", "reject_old_samples", "reject_old_samples_max_age",
    "creation_grace_period", "max_line_size", "max_line_size_truncate", "max_line_size_truncate_identifier",
    "increment_duplicate_timestamp", "simulated_push_latency", "enable_multi_variant_queries",
    "discover_generic_fields", "discover_service_name", "discover_log_levels", "log_level_fields",
    "log_level_from_json_max_depth", "use_owned_stream_count", "max_streams_per_user",
    "max_global_streams_per_user", "unordered_writes", "per_stream_rate_limit", "per_stream_rate_limit_burst",
    "max_chunks_per_query", "max_query_series", "max_query_lookback", "max_query_length", "max_query_range",
    "max_query_parallelism", "tsdb_max_query_parallelism", "tsdb_max_bytes_per_shard", "tsdb_sharding_strategy",
    "tsdb_precompute_chunks", "cardinality_limit", "max_streams_matchers_per_query",
    "max_concurrent_tail_requests", "max_entries_limit_per_query", "max_cache_freshness_per_query",
    "max_metadata_cache_freshness", "max_stats_cache_freshness", "max_queriers_per_tenant", "max_query_capacity",
    "query_ready_index_num_days", "query_timeout", "split_queries_by_interval",
    "split_metadata_queries_by_interval", "split_recent_metadata_queries_by_interval",
    "recent_metadata_query_window", "split_instant_metric_queries_by_interval",
    "engine_results_cache_time_bucket_interval", "split_ingester_queries_by_interval", "min_sharding_lookback",
    "max_query_bytes_read", "max_querier_bytes_read", "volume_enabled", "volume_max_series",
    "ruler_max_rules_per_rule_group", "ruler_max_rule_groups_per_tenant", "ruler_tenant_shard_size",
    "ruler_enable_wal_replay", "ruler_remote_write_disabled", "ruler_remote_write_url",
    "ruler_remote_write_timeout", "ruler_remote_write_headers", "ruler_remote_write_relabel_configs",
    "ruler_remote_write_queue_capacity", "ruler_remote_write_queue_min_shards",
    "ruler_remote_write_queue_max_shards", "ruler_remote_write_queue_max_samples_per_send",
    "ruler_remote_write_queue_batch_send_deadline", "ruler_remote_write_queue_min_backoff",
    "ruler_remote_write_queue_max_backoff", "ruler_remote_write_queue_retry_on_ratelimit",
    "ruler_remote_write_sigv4_config", "ruler_remote_write_config", "ruler_remote_evaluation_timeout",
    "ruler_remote_evaluation_max_response_size", "deletion_mode", "retention_period", "retention_stream",
    "per_tenant_override_config", "per_tenant_override_period", "allow_deletes", "shard_streams",
    "blocked_queries", "required_labels", "minimum_labels_number", "index_gateway_shard_size",
    "index_gateway_max_capacity", "bloom_gateway_enable_filtering", "bloom_build_max_builders",
    "bloom_build_task_max_retries", "bloom_build_builder_response_timeout", "bloom_creation_enabled",
    "bloom_planning_strategy", "bloom_split_series_keyspace_by", "bloom_task_target_series_chunk_size",
    "bloom_block_encoding", "bloom_prefetch_blocks", "bloom_max_block_size", "bloom_max_bloom_size",
    "allow_structured_metadata", "max_structured_metadata_size", "max_structured_metadata_entries_count",
    "otlp_config", "block_ingestion_policy_until", "block_ingestion_until", "block_ingestion_status_code",
    "enforced_labels", "policy_enforced_labels", "policy_stream_mapping", "ingestion_partitions_tenant_shard_size",
    "shard_aggregations", "pattern_ingester_tokenizable_json_fields_default",
    "pattern_ingester_tokenizable_json_fields_append", "pattern_ingester_tokenizable_json_fields_delete",
    "metric_aggregation_enabled", "pattern_persistence_enabled", "pattern_persistence_granularity",
    "pattern_rate_threshold", "s3_sse_type", "s3_sse_kms_key_id", "s3_sse_kms_encryption_context",
    "max_scan_task_parallelism", "debug_engine_tasks", "debug_engine_streams")

COMPACTOR = keys(
    "working_directory", "compaction_interval", "apply_retention_interval", "retention_enabled",
    "retention_delete_delay", "retention_delete_worker_count", "retention_table_timeout",
    "retention_backoff_config", "delete_request_store", "delete_request_store_key_prefix",
    "delete_request_store_db_type", "backup_delete_request_store_db_type", "delete_batch_size",
    "delete_request_cancel_period", "delete_max_interval", "max_compaction_parallelism", "upload_parallelism",
    "compactor_ring", "tables_to_compact", "skip_latest_n_tables", "horizontal_scaling_mode", "worker_config",
    "jobs_config", "deletion_marker_object_store_prefix")

ANALYTICS = keys("reporting_enabled", "usage_stats_url", "proxy_url", "tls_config")

LOKI_CONFIG_SCHEMA = {
    **keys("target", "auth_enabled", "ballast_bytes", "ui", "distributor", "query_engine", "query_scheduler",
           "frontend", "query_range", "ruler", "ruler_storage", "ingester_client", "pattern_ingester",
           "index_gateway", "bloom_build", "bloom_gateway", "storage_config", "chunk_store_config",
           "compactor_grpc_client", "frontend_worker", "memberlist", "kafka_config", "dataobj", "rate_service",
           "rate_service_client", "ingest_limits", "ingest_limits_frontend", "ingest_limits_frontend_client",
           "runtime_config", "operational_config", "tracing", "profiling", "tenant_limits_allow_publish",
           "shutdown_delay", "metrics_namespace"),
    "server": SERVER,
    "common": COMMON,
    "schema_config": {"configs": ListOf(PERIOD_CONFIG)},
    "ingester": INGESTER,
    "querier": QUERIER,
    "limits_config": LIMITS_CONFIG,
    "compactor": COMPACTOR,
    "analytics": ANALYTICS,
}


def unknown_keys(value, schema, path: str = "") -> list[str]:
    """Dotted paths of the keys of ``value`` that ``schema`` does not allow (or of blocks that are
    not a mapping / a list where the schema wants one)."""
    if schema is ANY:
        return []
    if isinstance(schema, ListOf):
        if not isinstance(value, list):
            return [f"{path}: a list of blocks, not {type(value).__name__}"]
        return [e for i, item in enumerate(value) for e in unknown_keys(item, schema.item, f"{path}[{i}]")]
    if not isinstance(value, dict):
        return [f"{path}: a block of keys, not {type(value).__name__}"]
    out = []
    for key, sub in value.items():
        where = f"{path}.{key}" if path else str(key)
        if key not in schema:
            out.append(where)
        else:
            out.extend(unknown_keys(sub, schema[key], where))
    return out


def test_every_loki_config_key_is_a_loki_key_in_its_block():
    assert unknown_keys(bq.load_yaml(bq.LOKI_CONFIG), LOKI_CONFIG_SCHEMA) == []


@pytest.mark.parametrize("broken, where", [
    ("server:\n  http_server_write_timout: 130s\n", "server.http_server_write_timout"),          # typo
    ("server:\n  query_timeout: 2m\n", "server.query_timeout"),                                   # wrong block
    ("ingester:\n  wal:\n    dirr: /loki/wal\n", "ingester.wal.dirr"),                            # nested typo
    ("common:\n  ring:\n    kvstore:\n      stor: inmemory\n", "common.ring.kvstore.stor"),
    ("schema_config:\n  configs:\n    - from: 2020-01-01\n      index: {perod: 24h}\n",
     "schema_config.configs[0].index.perod"),
    ("limit_config:\n  query_timeout: 2m\n", "limit_config"),                                    # top-level typo
])
def test_a_typo_or_a_key_in_the_wrong_block_is_caught(broken, where):
    assert unknown_keys(yaml.safe_load(broken), LOKI_CONFIG_SCHEMA) == [where]


def test_schema_config_needs_a_list():
    assert unknown_keys({"schema_config": {"configs": {"from": "2020-01-01"}}}, LOKI_CONFIG_SCHEMA) == [
        "schema_config.configs: a list of blocks, not dict"]
