//! The conformance suite: one set of behaviour tests, run against every backend.
//!
//! Each backend is one line at the bottom of this file; each test gets a fresh store of its own and a
//! [`ManualClock`](session_management::ManualClock), so expiry is tested without waiting.

mod bad_input;
mod harness;
mod outbox;
#[path = "../support/redis_prefix.rs"]
mod redis_prefix;
mod sessions;
#[path = "../support/test_db.rs"]
mod test_db;
mod users;

/// Instantiates every conformance test for one backend, as `<backend>::<test>`.
macro_rules! conformance_suite {
    ($backend:ident => $make:path) => {
        conformance_suite!(@tests $backend => $make;
            users::user_is_created_and_found_by_id_and_normalised_email,
            users::duplicate_email_conflicts_within_an_app_but_not_across_apps,
            users::users_are_listed_in_cursor_pages_per_app,
            users::update_changes_email_and_name_and_keeps_emails_unique,
            users::deleting_a_user_revokes_all_their_sessions,
            users::unknown_user_ids_are_not_found,
            sessions::session_validates_with_its_own_token_only,
            sessions::session_keeps_metadata_and_data,
            sessions::session_never_validates_at_or_after_expires_at,
            sessions::touch_extends_only_when_less_than_half_the_ttl_remains,
            sessions::touch_never_extends_past_the_maximum_lifetime,
            sessions::rotation_issues_a_new_token_and_the_old_one_dies_at_once,
            sessions::concurrent_rotations_of_one_token_let_exactly_one_win,
            sessions::update_data_is_optimistic_and_a_stale_version_conflicts,
            sessions::revoke_by_id_and_by_token_are_final,
            sessions::no_write_brings_back_a_revoked_or_expired_session,
            sessions::list_sessions_shows_only_that_users_live_sessions,
            sessions::revoke_all_revokes_only_that_users_sessions,
            sessions::purge_expired_deletes_only_expired_sessions,
            sessions::nothing_crosses_apps,
            sessions::reset_of_one_app_leaves_other_apps_untouched,
            sessions::every_component_of_the_store_reports_healthy,
            bad_input::invalid_user_input_is_rejected_and_changes_nothing,
            bad_input::invalid_session_input_is_rejected_and_changes_nothing,
            bad_input::malformed_and_unknown_tokens_and_ids_are_rejected,
        );
    };
    (@tests $backend:ident => $make:path; $($module:ident :: $test:ident),* $(,)?) => {
        mod $backend {
            $(
                #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
                async fn $test() {
                    let harness = $make().await;
                    crate::$module::$test(&harness).await;
                }
            )*
        }
    };
}

/// The invalidation outbox of a durable store (one that can sit under a `TieredStore`).
macro_rules! outbox_suite {
    ($backend:ident => $make:path) => {
        mod $backend {
            #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
            async fn every_session_deletion_is_recorded_in_the_outbox_in_order() {
                let harness = $make().await;
                crate::outbox::every_session_deletion_is_recorded_in_the_outbox_in_order(&harness)
                    .await;
            }
        }
    };
}

conformance_suite!(memory => crate::harness::memory);
conformance_suite!(sqlite => crate::harness::sqlite);
conformance_suite!(postgres => crate::harness::postgres);
conformance_suite!(tiered_postgres => crate::harness::tiered_postgres);
conformance_suite!(tiered_sqlite => crate::harness::tiered_sqlite);

mod outbox_of {
    outbox_suite!(memory => crate::harness::memory_with_outbox);
    outbox_suite!(sqlite => crate::harness::sqlite_with_outbox);
    outbox_suite!(postgres => crate::harness::postgres_with_outbox);
}
