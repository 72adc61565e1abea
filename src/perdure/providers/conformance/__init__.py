"""The provider conformance suite, for any backend (pytest).

Every rule of the `Provider` contract (see `perdure.providers._base` and
docs/providers.md) has a test here. perdure runs the suite against SQLite
(a file and ``:memory:``) and PostgreSQL; a third backend proves itself by
running it too. In a test module of your own::

    import pytest

    from perdure.providers.conformance import *  # noqa: F403
    from perdure.providers.conformance import Backend


    @pytest.fixture
    def backend(tmp_path):
        yield Backend("mine", lambda: MyProvider(tmp_path / "db"), shared=True)

``backend`` is the one fixture the suite needs: ``make`` returns a new,
unopened provider on the test's storage (each test gets fresh storage), and
``shared`` says whether two providers from one ``make`` see the same data
(``False`` skips the tests that need two of them, as for SQLite
``:memory:``). The star import brings in the tests and the ``provider``,
``run`` and ``kit`` fixtures. Requires pytest (the ``dev`` dependencies).
"""

# ruff: noqa: F403, F405
from __future__ import annotations

from perdure.providers.conformance._activity_routing import *
from perdure.providers.conformance._deploy import *
from perdure.providers.conformance._fixtures import (
    LEASE,
    Backend,
    Kit,
    kit,
    provider,
    run,
)
from perdure.providers.conformance._fused import *
from perdure.providers.conformance._heartbeats import *
from perdure.providers.conformance._instances import *
from perdure.providers.conformance._lifecycle import *
from perdure.providers.conformance._occurrence import *
from perdure.providers.conformance._queries import *
from perdure.providers.conformance._queues import *
from perdure.providers.conformance._routing import *
from perdure.providers.conformance._turns import *
from perdure.providers.conformance._values import *

__all__ = [
    "Backend",
    "Kit",
    "kit",
    "LEASE",
    "provider",
    "run",
    "test_a_concurrency_limit_counts_the_leases_of_every_fetch",
    "test_a_fused_turn_commits_and_deletes_its_items",
    "test_a_fused_turn_on_a_locked_instance_is_rejected",
    "test_a_fused_turn_on_a_stale_history_is_rejected",
    "test_a_fused_turn_with_a_due_message_is_rejected",
    "test_a_fused_turn_with_a_lost_item_is_rejected",
    "test_a_locked_turn_may_acknowledge_items_too",
    "test_a_rate_limit_counts_every_start_in_its_window",
    "test_a_second_provider_object_reads_the_details",
    "test_a_session_stays_with_its_owner_until_its_lease_expires",
    "test_abandon_releases_keeps_attempt_and_delays",
    "test_abandon_with_a_stale_token_does_nothing",
    "test_abandoned_activity_comes_back_after_delay",
    "test_activities_are_locked_oldest_first",
    "test_an_expired_claim_is_fetched_by_others",
    "test_attempt_resets_after_commit",
    "test_backoff_keeps_occurrence_order",
    "test_bad_event_ids_reject_the_whole_batch",
    "test_batch_commits_good_turns_and_rejects_bad_ones",
    "test_calls_before_open_raise_a_clear_error",
    "test_cancellation_deletes_queued_work_and_renew_reports_running",
    "test_claimed_work_is_inserted_held",
    "test_clock_is_close_to_this_machine",
    "test_completion_after_lease_was_taken_is_dropped",
    "test_completion_batch_mixes_live_and_dead_results",
    "test_completion_deletes_item_and_enqueues_message",
    "test_completion_for_deleted_instance_is_dropped",
    "test_consumed_messages_of_other_instances_are_kept",
    "test_continue_as_new_moves_to_the_next_execution",
    "test_create_existing_id_raises_and_writes_nothing",
    "test_create_instance_enqueues_its_start_message",
    "test_create_instance_keeps_parent",
    "test_create_instance_stores_a_running_row",
    "test_delayed_activity_is_not_fetched_until_due",
    "test_delete_instance_removes_everything",
    "test_delete_unknown_instance_returns_false",
    "test_details_come_back_after_a_retry",
    "test_details_survive_lease_expiry",
    "test_drop_messages_deletes_keyed_messages_only",
    "test_due_messages_come_in_occurrence_order_not_arrival",
    "test_duplicate_activity_scheduling_is_ignored",
    "test_duplicate_completion_is_dropped",
    "test_empty_batch",
    "test_enqueue_appends_to_the_queue",
    "test_enqueue_to_unknown_instance_raises_and_writes_nothing",
    "test_fetch_respects_max_items_oldest_first",
    "test_future_message_is_not_fetched_until_due",
    "test_get_unknown_instance_is_none",
    "test_heartbeat_does_not_extend_the_lease",
    "test_heartbeat_with_a_lost_lease_writes_nothing",
    "test_lease_expiry_lets_another_fetch_take_over",
    "test_list_instances_newest_first",
    "test_list_instances_same_timestamp_still_newest_first",
    "test_list_instances_status_filter_and_limit",
    "test_locked_instance_is_not_fetched_again",
    "test_messages_come_in_arrival_order",
    "test_messages_from_turns_and_activities_carry_their_occurrence",
    "test_new_instance_conflict_sends_on_conflict",
    "test_new_instance_conflict_without_on_conflict_is_ignored",
    "test_non_consecutive_event_ids_raise_and_write_nothing",
    "test_none_fields_leave_stored_values_alone",
    "test_only_visible_messages_are_delivered",
    "test_open_is_idempotent_and_close_too",
    "test_outbound_to_unknown_instance_is_skipped",
    "test_purge_deletes_finished_top_level_instances_with_children",
    "test_purge_refuses_unfinished_statuses",
    "test_purge_stops_at_its_limit",
    "test_query_a_bad_cursor_is_a_value_error",
    "test_query_filters_combine",
    "test_query_pages_do_not_skip_or_repeat_when_rows_are_added",
    "test_query_pages_through_everything_newest_first",
    "test_read_history_in_event_order",
    "test_read_history_of_unknown_instance_is_empty",
    "test_read_values_of_unknown_instance_is_none",
    "test_rejected_turn_writes_no_values",
    "test_released_sessions_go_to_anyone_at_once",
    "test_renew_activity_locks_keeps_held_items",
    "test_renewed_fetch_after_expiry_does_not_touch_the_new_lease",
    "test_reopening_a_store_keeps_data_and_migrations_idempotent",
    "test_routed_fetch_takes_highest_priority_first",
    "test_routed_fetch_takes_only_registered_names",
    "test_same_instance_twice_in_a_batch_commits_once",
    "test_second_provider_object_sees_locks",
    "test_tagged_work_goes_only_to_runtimes_with_its_tag",
    "test_ties_keep_arrival_order",
    "test_timer_sent_by_a_turn_becomes_due",
    "test_turn_completion_sets_status_output_and_releases_lock",
    "test_turn_failure_stores_error",
    "test_turn_writes_all_its_parts",
    "test_unconsumed_messages_stay_queued",
    "test_values_are_written_with_their_turn",
    "test_values_in_one_batch_stay_with_their_turn",
    "test_values_move_with_the_instance_and_go_with_it",
    "test_wait_does_not_lose_a_write_between_fetch_and_wait",
    "test_wait_times_out_without_writes",
    "test_wait_wakes_activity_worker_on_scheduling",
    "test_wait_wakes_on_enqueue",
    "test_wait_wakes_status_watchers_on_completion",
    "test_waiting_activities_counts_what_routing_never_takes",
    "test_work_scheduled_and_cancelled_in_one_turn_is_gone",
    "test_wrong_history_start_is_rejected_and_writes_nothing",
    "test_wrong_lock_token_is_rejected_and_writes_nothing",
]
