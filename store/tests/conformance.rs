//! The store's conformance suite, run against SQLite and PostgreSQL alike.
//!
//! PostgreSQL: `CONSULTEASE_TEST_POSTGRES_URL` (default postgres://postgres@127.0.0.1:5432/test);
//! each test gets its own throw-away database. Skipped when unreachable, unless
//! `CONSULTEASE_REQUIRE_SERVICES=1` (CI), where unreachable is a failure.

use domain::{DeskClock, DeskMessage, DeskRecord, DeskUpdate, Status};
use sqlx::Connection;
use store::{Change, NewFaculty, Outcome, Store, StoreError};

struct TestDb {
    store: Store,
    url: String,
    _dir: Option<tempfile::TempDir>,
}

async fn sqlite() -> TestDb {
    let dir = tempfile::tempdir().unwrap();
    let url = format!("sqlite://{}/test.db", dir.path().display());
    TestDb { store: Store::connect(&url).await.unwrap(), url, _dir: Some(dir) }
}

async fn postgres() -> Option<TestDb> {
    let base = std::env::var("CONSULTEASE_TEST_POSTGRES_URL")
        .unwrap_or_else(|_| "postgres://postgres@127.0.0.1:5432/test".into());
    let required = std::env::var("CONSULTEASE_REQUIRE_SERVICES").is_ok_and(|v| v == "1");
    let mut admin = match sqlx::PgConnection::connect(&base).await {
        Ok(c) => c,
        Err(e) if !required => {
            eprintln!("skipping: PostgreSQL at {base} unreachable ({e})");
            return None;
        }
        Err(e) => panic!("PostgreSQL required (CONSULTEASE_REQUIRE_SERVICES=1) but {base} is unreachable: {e}"),
    };
    drop_leftovers(&mut admin).await;
    let name = format!("consultease_test_{}_{}", std::process::id(), unique());
    sqlx::query(&format!("CREATE DATABASE {name}")).execute(&mut admin).await.unwrap();
    let url = match base.rsplit_once('/') {
        Some((head, _)) => format!("{head}/{name}"),
        None => panic!("bad PostgreSQL URL {base}"),
    };
    Some(TestDb { store: Store::connect(&url).await.unwrap(), url, _dir: None })
}

/// Drops the databases earlier test processes left behind (this process's own are in use).
async fn drop_leftovers(admin: &mut sqlx::PgConnection) {
    let mine = format!("consultease_test_{}_%", std::process::id());
    let names: Vec<String> = sqlx::query_scalar(
        "SELECT datname FROM pg_database WHERE datname LIKE 'consultease_test_%' AND datname NOT LIKE $1",
    )
    .bind(mine)
    .fetch_all(&mut *admin)
    .await
    .unwrap_or_default();
    for name in names {
        let _ = sqlx::query(&format!("DROP DATABASE IF EXISTS {name} WITH (FORCE)")).execute(&mut *admin).await;
    }
}

fn unique() -> u64 {
    use std::sync::atomic::{AtomicU64, Ordering};
    static N: AtomicU64 = AtomicU64::new(0);
    let t = std::time::SystemTime::now().duration_since(std::time::UNIX_EPOCH).unwrap().as_nanos() as u64;
    (t % 1_000_000_000) * 1000 + N.fetch_add(1, Ordering::Relaxed)
}

/// Runs each case on SQLite and on PostgreSQL.
macro_rules! conformance {
    ($($case:ident),* $(,)?) => {$(
        mod $case {
            #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
            async fn sqlite() {
                super::$case(super::sqlite().await).await;
            }
            #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
            async fn postgres() {
                if let Some(db) = super::postgres().await {
                    super::$case(db).await;
                }
            }
        }
    )*};
}

conformance!(
    messages_apply_with_versions_and_events,
    stale_and_unknown_change_nothing,
    concurrent_writers_lose_no_update,
    two_instances_on_one_database_lose_no_update,
    permutations_and_replays_are_idempotent,
    snapshot_cursor_and_event_log_agree,
    timeout_makes_a_silent_desk_offline,
    admin_errors_are_clear,
    a_pinned_clock_is_freed_by_a_reset,
    a_request_goes_through_its_life_and_the_board_counts_it,
    requests_refuse_what_breaks_the_rules,
    desk_answers_are_checked_and_never_go_backwards,
    held_requests_join_the_queue_when_the_faculty_member_returns,
    two_requests_for_the_last_slot_at_once_one_wins,
    a_burst_of_placements_is_judged_in_order_and_lined_up_once_each,
    a_batch_of_desk_answers_is_judged_in_order_and_published_once,
    a_batch_over_several_lines_settles_each_line_once,
    a_faculty_edit_is_a_compare_and_set_with_its_event_and_audit,
    an_override_ranks_above_the_desk_and_ends_once,
    the_audit_log_filters_by_actor_action_and_time,
    admins_list_requests_by_state_faculty_and_time_and_cancel_with_a_reason,
    a_deactivated_faculty_member_leaves_the_board_and_takes_no_requests,
    retention_deletes_old_events_keeps_the_newest_and_raises_the_watermark,
    office_hours_are_saved_with_the_row_and_ride_on_every_event,
    returns_to_availability_are_drawn_from_the_log_once,
    a_desk_moves_between_faculty_members_and_retires,
    wait_estimates_use_each_lines_twenty_newest_durations,
);

async fn available(store: &Store, name: &str, desk: &str) -> i64 {
    let id = faculty_with_desk(store, name, desk).await;
    store.apply(&[online(desk, 1, 1, true), state(desk, 1, 2, true, false)]).await.unwrap();
    id
}

async fn student(store: &Store, number: &str) -> i64 {
    store
        .add_student(
            &store::NewStudent { number: number.into(), name: format!("Student {number}"), ..Default::default() },
            None,
        )
        .await
        .unwrap()
}

fn ask(student_id: i64, faculty_id: i64, hold: bool) -> store::NewRequest {
    store::NewRequest {
        student_id,
        faculty_id,
        course: Some("CS101".into()),
        message: "Help with recursion, please".into(),
        hold,
    }
}

async fn a_request_goes_through_its_life_and_the_board_counts_it(db: TestDb) {
    use domain::consultation::{Action, Input, State};
    let store = &db.store;
    let f = available(store, "Ada", "rq1").await;
    let (s1, s2) = (student(store, "S1").await, student(store, "S2").await);
    let mut board = store.bus().subscribe();
    let before = view(store, f).await.version;
    let r1 = store.place_request(&ask(s1, f, false)).await.unwrap();
    assert_eq!((r1.state, r1.position, r1.ticket.as_str()), (State::Queued, Some(1), format!("T{}", r1.id).as_str()));
    let r2 = store.place_request(&ask(s2, f, false)).await.unwrap();
    assert_eq!(r2.position, Some(2));
    assert_eq!((r2.wait_min, r2.wait_max), (Some(5), Some(15)), "the default estimate without history");
    let v = view(store, f).await;
    assert_eq!((v.waiting, v.version), (2, before + 2), "each new request is a new version of the board's row");
    assert_eq!(board.recv().await.unwrap().faculty.waiting, 1);
    assert_eq!(board.recv().await.unwrap().faculty.waiting, 2);
    // The desk's queue: both, in order, at the current queue version.
    let (desk, q) = store.queue_snapshot(f).await.unwrap().unwrap();
    assert_eq!(desk, "rq1");
    assert_eq!(q.items.iter().map(|i| i.id).collect::<Vec<_>>(), [r1.id, r2.id]);
    assert!(q.accepting && q.version >= 2);
    // The desk shows it: both delivered.
    assert_eq!(store.queue_ack("rq1", q.version).await.unwrap(), 2);
    assert_eq!(store.request_view(r1.id).await.unwrap().unwrap().state, State::Delivered);
    // Accept the first: it leaves the line, the second moves up.
    let clock = domain::DeskClock::new(1, 10);
    assert_eq!(store.desk_reply("rq1", clock, r1.id, Action::Accept, None).await.unwrap(), store::DeskOutcome::Applied);
    assert_eq!(store.request_view(r2.id).await.unwrap().unwrap().position, Some(1));
    assert_eq!(view(store, f).await.waiting, 1);
    let done = domain::DeskClock::new(1, 11);
    assert_eq!(
        store.desk_reply("rq1", done, r1.id, Action::Done, Some("see you")).await.unwrap(),
        store::DeskOutcome::Applied
    );
    let r1 = store.request_view(r1.id).await.unwrap().unwrap();
    assert_eq!((r1.state, r1.note.as_deref(), r1.position), (State::Done, Some("see you"), None));
    // The second withdraws; the student's own list and stream cursor see every change.
    let cancelled =
        store.change_request(r2.id, Input::Cancel, &store::Actor::Student(s2), None).await.unwrap().unwrap();
    assert_eq!(cancelled.state, State::Cancelled);
    assert_eq!(view(store, f).await.waiting, 0);
    let mine = store.student_requests(s1).await.unwrap();
    assert_eq!(mine.requests.len(), 1);
    assert!(mine.cursor > 0);
    let events = store.request_events_after(s1, 0, 100).await.unwrap();
    assert!(events.iter().all(|e| e.student_id == s1), "a student's events are theirs alone");
    assert_eq!(events.last().unwrap().request.state, State::Done);
}

async fn requests_refuse_what_breaks_the_rules(db: TestDb) {
    use store::PlaceError;
    let store = &db.store;
    let f = available(store, "Grace", "rq2").await;
    let away = faculty_with_desk(store, "Alan", "rq3").await; // offline: no desk message yet
    let s = student(store, "S3").await;
    let mut bad = ask(s, f, false);
    bad.message = "short".into();
    assert!(matches!(store.place_request(&bad).await, Err(PlaceError::Invalid("message", _))));
    let mut bad = ask(s, f, false);
    bad.course = Some("C1".into());
    assert!(matches!(store.place_request(&bad).await, Err(PlaceError::Invalid("course", _))));
    assert!(matches!(store.place_request(&ask(s, away, false)).await, Err(PlaceError::Away(Status::Offline))));
    assert!(matches!(store.place_request(&ask(s, 9999, false)).await, Err(PlaceError::NoFaculty)));
    store.place_request(&ask(s, f, false)).await.unwrap();
    assert!(matches!(
        store.place_request(&ask(s, f, false)).await,
        Err(PlaceError::Limit(domain::consultation::Limit::OnePerFaculty))
    ));
    // Three open in all at most.
    let g = available(store, "Barbara", "rq4").await;
    let h = available(store, "Edsger", "rq5").await;
    store.place_request(&ask(s, g, false)).await.unwrap();
    store.place_request(&ask(s, away, true)).await.unwrap(); // held counts as open
    assert!(matches!(
        store.place_request(&ask(s, h, false)).await,
        Err(PlaceError::Limit(domain::consultation::Limit::OpenTotal))
    ));
    // Someone else's request is not found, whatever they try.
    let other = student(store, "S4").await;
    let theirs = store.place_request(&ask(other, h, false)).await.unwrap();
    let r = store.change_request(theirs.id, domain::consultation::Input::Cancel, &store::Actor::Student(s), None).await;
    assert!(matches!(r, Err(StoreError::NotFound(_))), "{r:?}");
}

/// Original defect 5: a late BUSY overwrote a CANCELLED consultation; any desk could answer any
/// consultation. Here neither can happen, and a repeated or older answer changes nothing.
async fn desk_answers_are_checked_and_never_go_backwards(db: TestDb) {
    use domain::consultation::{Action, Input, State};
    use store::DeskOutcome;
    let store = &db.store;
    let f = available(store, "Katherine", "rq6").await;
    let _other = available(store, "Dorothy", "rq7").await;
    let s = student(store, "S5").await;
    let r = store.place_request(&ask(s, f, false)).await.unwrap();
    let c = |seq| domain::DeskClock::new(1, seq);
    assert_eq!(store.desk_reply("rq7", c(5), r.id, Action::Accept, None).await.unwrap(), DeskOutcome::WrongDesk);
    assert_eq!(store.desk_reply("nope", c(5), r.id, Action::Accept, None).await.unwrap(), DeskOutcome::WrongDesk);
    assert_eq!(
        store.desk_reply("rq6", c(5), 987_654, Action::Accept, None).await.unwrap(),
        DeskOutcome::UnknownRequest
    );
    assert_eq!(store.desk_reply("rq6", c(5), r.id, Action::Accept, None).await.unwrap(), DeskOutcome::Applied);
    let after_accept = store.request_view(r.id).await.unwrap().unwrap();
    // The same answer again, an older one, a second accept: nothing changes.
    assert_eq!(store.desk_reply("rq6", c(5), r.id, Action::Accept, None).await.unwrap(), DeskOutcome::Stale);
    assert_eq!(store.desk_reply("rq6", c(4), r.id, Action::Decline, None).await.unwrap(), DeskOutcome::Stale);
    assert_eq!(store.desk_reply("rq6", c(6), r.id, Action::Accept, None).await.unwrap(), DeskOutcome::Stale);
    assert_eq!(store.request_view(r.id).await.unwrap().unwrap(), after_accept);
    // Cancelled, then a late busy: still cancelled.
    let r2 = store.place_request(&ask(student(store, "S6").await, f, false)).await.unwrap();
    let admin =
        store::AuditEntry { actor: "admin:ada".into(), action: "request_cancelled".into(), ..Default::default() };
    let by_admin = store::Actor::Admin(Box::new(admin));
    store.change_request(r2.id, Input::Cancel, &by_admin, Some("closed early")).await.unwrap();
    assert_eq!(store.desk_reply("rq6", c(9), r2.id, Action::Busy, None).await.unwrap(), DeskOutcome::Stale);
    assert_eq!(store.request_view(r2.id).await.unwrap().unwrap().state, State::Cancelled);
    // An ack for a version that no longer holds the item changes nothing.
    let (_, q) = store.queue_snapshot(f).await.unwrap().unwrap();
    assert_eq!(store.queue_ack("rq6", q.version).await.unwrap(), 0);
}

async fn held_requests_join_the_queue_when_the_faculty_member_returns(db: TestDb) {
    use domain::consultation::State;
    let store = &db.store;
    let f = faculty_with_desk(store, "Hedy", "rq8").await;
    store.apply(&[online("rq8", 1, 1, true), state("rq8", 1, 2, false, false)]).await.unwrap(); // away
    let s = student(store, "S7").await;
    let r = store.place_request(&ask(s, f, true)).await.unwrap();
    assert_eq!((r.state, r.position), (State::Held, Some(1)));
    assert!(store.queue_snapshot(f).await.unwrap().unwrap().1.items.is_empty(), "held requests are not on the desk");
    store.apply(&[state("rq8", 1, 3, true, false)]).await.unwrap();
    assert_eq!(store.release_held(f).await.unwrap(), 1);
    assert_eq!(store.request_view(r.id).await.unwrap().unwrap().state, State::Queued);
    assert_eq!(store.queue_snapshot(f).await.unwrap().unwrap().1.items.len(), 1);
    assert_eq!(store.expire_requests(0, 0).await.unwrap(), 1);
    assert_eq!(store.request_view(r.id).await.unwrap().unwrap().state, State::Expired);
}

async fn two_requests_for_the_last_slot_at_once_one_wins(db: TestDb) {
    let store = db.store.clone();
    let f = available(&store, "Frances", "rq9").await;
    let s = student(&store, "S8").await;
    let (a, b) = (store.clone(), store.clone());
    let (x, y) = tokio::join!(
        tokio::spawn(async move { a.place_request(&ask(s, f, false)).await.is_ok() }),
        tokio::spawn(async move { b.place_request(&ask(s, f, false)).await.is_ok() }),
    );
    assert_eq!(u8::from(x.unwrap()) + u8::from(y.unwrap()), 1, "exactly one wins");
    assert_eq!(view(&store, f).await.waiting, 1);
}

/// Placements that arrive together commit together (group commit): each is still judged against
/// the ones before it (the per-student rules), each gets its own place in line and one event, and
/// the desk's queue holds exactly the placed ones, in order.
async fn a_burst_of_placements_is_judged_in_order_and_lined_up_once_each(db: TestDb) {
    let store = db.store.clone();
    let f = available(&store, "Grace", "rq10").await;
    let others: Vec<i64> = available_many(&store, 5).await;
    let mut rx = store.requests_bus().subscribe();
    let before = view(&store, f).await;
    // 20 students at once to one faculty member, and one student to five faculty members at once
    // (at most three open requests each).
    let mut students = Vec::new();
    for i in 0..20 {
        students.push(student(&store, &format!("B{i}")).await);
    }
    let greedy = student(&store, "G1").await;
    let mut tasks = Vec::new();
    for s in &students {
        let (st, s) = (store.clone(), *s);
        tasks.push(tokio::spawn(async move { st.place_request(&ask(s, f, false)).await.map(|v| v.id) }));
    }
    let mut greedy_tasks = Vec::new();
    for other in &others {
        let (st, o) = (store.clone(), *other);
        greedy_tasks.push(tokio::spawn(async move { st.place_request(&ask(greedy, o, false)).await.is_ok() }));
    }
    let mut placed = Vec::new();
    for t in tasks {
        placed.push(t.await.unwrap().expect("each of the 20 is placed"));
    }
    let mut wins = 0;
    for t in greedy_tasks {
        wins += u8::from(t.await.unwrap());
    }
    assert_eq!(wins, 3, "three open requests at most, however they arrive");
    let now = view(&store, f).await;
    assert_eq!(now.waiting, 20);
    assert!(now.version > before.version);
    // Places 1..=20, each once, in the order the requests were placed.
    let mut places = Vec::new();
    for id in &placed {
        places.push((*id, store.request_view(*id).await.unwrap().unwrap().position.unwrap()));
    }
    places.sort_unstable();
    let positions: Vec<i64> = places.iter().map(|(_, p)| *p).collect();
    assert_eq!(positions, (1..=20).collect::<Vec<i64>>(), "in line by arrival, no place twice");
    // One event per placed request (events published in id order).
    let mut seen = std::collections::HashMap::new();
    let mut last = 0;
    while let Ok(ev) = rx.try_recv() {
        assert!(ev.id > last, "events in order");
        last = ev.id;
        *seen.entry(ev.request.id).or_insert(0) += 1;
    }
    for id in &placed {
        assert_eq!(seen.get(id), Some(&1), "request {id}: one event");
    }
    let (_, q) = store.queue_snapshot(f).await.unwrap().unwrap();
    let on_desk: Vec<i64> = q.items.iter().map(|i| i.id).collect();
    let mut expect = placed.clone();
    expect.sort_unstable();
    assert_eq!(on_desk, expect, "the desk's queue holds exactly the placed ones, in order");
    // One student asking one faculty member twice at once (likely in one group): one is placed.
    let twice = student(&store, "T1").await;
    let tries: Vec<_> = (0..2)
        .map(|_| {
            let (st, o) = (store.clone(), others[4]);
            tokio::spawn(async move { st.place_request(&ask(twice, o, false)).await })
        })
        .collect();
    let mut results = Vec::new();
    for t in tries {
        results.push(t.await.unwrap());
    }
    assert_eq!(results.iter().filter(|r| r.is_ok()).count(), 1, "{results:?}");
    assert!(results.iter().any(|r| matches!(r, Err(store::PlaceError::Limit(_)))), "{results:?}");
}

/// `n` available faculty members with desks.
async fn available_many(store: &Store, n: usize) -> Vec<i64> {
    let mut ids = Vec::new();
    for i in 0..n {
        ids.push(available(store, &format!("Other {i}"), &format!("rqo{i}")).await);
    }
    ids
}

/// Regression (outside test run): one message with boot 4294967295 and seq i64::MAX pinned a desk's
/// clock for good — nothing the real desk sends can be newer — and there was no way back.
async fn a_pinned_clock_is_freed_by_a_reset(db: TestDb) {
    let store = &db.store;
    // A boot more than MAX_BOOT_JUMP past the desk's known one is refused: it cannot pin the clock.
    let id = faculty_with_desk(store, "Mary Jackson", "pinned").await;
    store.apply(&[online("pinned", 3, 1, true), state("pinned", 3, 2, true, false)]).await.unwrap();
    let huge = state("pinned", u32::MAX, i64::MAX as u64, false, true);
    assert_eq!(store.apply(&[huge]).await.unwrap(), [Outcome::Implausible]);
    assert_eq!(view(store, id).await.status, Status::Available);
    assert_eq!(store.apply(&[state("pinned", 3 + 1001, 1, false, true)]).await.unwrap(), [Outcome::Implausible]);
    let out = store.apply(&[state("pinned", 3 + 1000, 1, false, true)]).await.unwrap();
    assert!(matches!(out[..], [Outcome::Applied { .. }]), "a thousand reboots is plausible: {out:?}");
    assert_eq!(view(store, id).await.status, Status::Busy);
    // A desk whose very first message carries a huge boot has nothing to compare with, and pins
    // its clock; an admin's reset frees it (and, after a reset, any boot is plausible again).
    let id = faculty_with_desk(store, "Katherine Johnson", "pinned2").await;
    store
        .apply(&[state("pinned2", u32::MAX, i64::MAX as u64, false, true), online("pinned2", u32::MAX, 0, true)])
        .await
        .unwrap();
    assert_eq!(view(store, id).await.status, Status::Busy);
    assert_eq!(store.apply(&[state("pinned2", 4, 1, true, false)]).await.unwrap(), [Outcome::Stale]);
    store.reset_desk_clock("pinned2", None).await.unwrap();
    let out = store.apply(&[state("pinned2", 4, 1, true, false)]).await.unwrap();
    assert!(matches!(out[..], [Outcome::Applied { event: Some(_) }]), "{out:?}");
    assert!(matches!(store.reset_desk_clock("nope", None).await, Err(StoreError::NotFound(_))));
}

fn c(boot: u32, seq: u64) -> DeskClock {
    DeskClock::new(boot, seq)
}

fn state(desk: &str, boot: u32, seq: u64, present: bool, busy: bool) -> Change {
    Change::Message { desk: desk.into(), message: DeskMessage::State { clock: c(boot, seq), present, busy } }
}

fn online(desk: &str, boot: u32, seq: u64, online: bool) -> Change {
    Change::Message { desk: desk.into(), message: DeskMessage::Online { clock: c(boot, seq), online } }
}

async fn faculty_with_desk(store: &Store, name: &str, desk: &str) -> i64 {
    let id =
        store.add_faculty(&NewFaculty { name: name.into(), department: "Physics".into(), email: None }).await.unwrap();
    store.add_desk(desk, id).await.unwrap();
    id
}

async fn view(store: &Store, id: i64) -> domain::FacultyView {
    store.snapshot().await.unwrap().faculty.into_iter().find(|f| f.id == id).unwrap()
}

async fn messages_apply_with_versions_and_events(db: TestDb) {
    let store = &db.store;
    let id = faculty_with_desk(store, "Ada Lovelace", "desk-1").await;
    let before = view(store, id).await;
    assert_eq!((before.status, before.version, before.desk_online), (Status::Offline, 1, false));

    let mut rx = store.bus().subscribe();
    let out = store.apply(&[online("desk-1", 1, 1, true), state("desk-1", 1, 2, true, false)]).await.unwrap();
    assert!(matches!(out[..], [Outcome::Applied { event: Some(_) }, Outcome::Applied { event: Some(_) }]), "{out:?}");
    let after = view(store, id).await;
    assert_eq!((after.status, after.version, after.present, after.desk_online), (Status::Available, 3, true, true));
    assert!(after.last_seen.is_some());

    // Published after commit, in order, carrying the new versions.
    let e1 = rx.recv().await.unwrap();
    let e2 = rx.recv().await.unwrap();
    assert_eq!((e1.faculty.version, e1.faculty.status), (2, Status::Away));
    assert_eq!((e2.faculty.version, e2.faculty.status), (3, Status::Available));
    assert!(e2.id > e1.id);

    // Busy outranks present; an invisible heartbeat bumps nothing.
    store.apply(&[state("desk-1", 1, 3, true, true)]).await.unwrap();
    assert_eq!(view(store, id).await.status, Status::Busy);
    let hb = Change::Message { desk: "desk-1".into(), message: DeskMessage::Heartbeat { clock: c(1, 4) } };
    assert_eq!(store.apply(&[hb]).await.unwrap(), [Outcome::Applied { event: None }]);
    assert_eq!(view(store, id).await.version, 4);
    let desk = store.list_desks().await.unwrap().into_iter().find(|d| d.id == "desk-1").unwrap();
    assert_eq!((desk.boot, desk.seq, desk.online), (Some(1), Some(4), true));
}

async fn stale_and_unknown_change_nothing(db: TestDb) {
    let store = &db.store;
    let id = faculty_with_desk(store, "Alan Turing", "desk-2").await;
    store.apply(&[online("desk-2", 3, 1, true), state("desk-2", 3, 10, true, false)]).await.unwrap();
    let before = view(store, id).await;
    let events = store.newest_event_id().await.unwrap();
    let out = store
        .apply(&[
            state("desk-2", 3, 10, false, true),  // repeated clock
            state("desk-2", 3, 9, false, false),  // older seq
            state("desk-2", 2, 99, false, false), // older boot
            online("desk-2", 2, 5, false),        // a will from the previous boot
            state("nope", 9, 9, true, true),      // unknown desk
        ])
        .await
        .unwrap();
    use Outcome::*;
    assert_eq!(out, [Stale, Stale, Stale, Stale, UnknownDesk]);
    assert_eq!(view(store, id).await, before);
    assert_eq!(store.newest_event_id().await.unwrap(), events);
}

/// Many tasks write the same faculty row at once. Each message has its own clock; whichever order
/// the transactions commit in, no committed change is lost: the final version is 1 + the number of
/// events, and the events are exactly versions 2..=final in order.
async fn concurrent_writers_lose_no_update(db: TestDb) {
    let store = db.store.clone();
    let id = faculty_with_desk(&store, "Grace Hopper", "desk-3").await;
    store.apply(&[online("desk-3", 1, 1, true)]).await.unwrap();
    let start = store.newest_event_id().await.unwrap();
    let mut tasks = Vec::new();
    for w in 0..8u64 {
        let store = store.clone();
        tasks.push(tokio::spawn(async move {
            let mut applied = 0;
            for i in 0..25u64 {
                let seq = 2 + i * 8 + w;
                let out = store.apply(&[state("desk-3", 1, seq, seq % 2 == 0, false)]).await.unwrap();
                applied += out.iter().filter(|o| matches!(o, Outcome::Applied { event: Some(_) })).count();
            }
            applied
        }));
    }
    let mut applied = 0;
    for t in tasks {
        applied += t.await.unwrap();
    }
    let f = view(&store, id).await;
    let events = store.events_after(start, 10_000).await.unwrap();
    assert_eq!(events.len(), applied);
    assert_eq!(f.version as usize, 2 + applied);
    for (i, e) in events.iter().enumerate() {
        assert_eq!(e.faculty.version as usize, 3 + i, "event versions are consecutive");
    }
    assert!(applied > 0, "{f:?} {:?}", store.list_desks().await.unwrap());
}

/// Two stores (two server instances) on one database: compare-and-set and retries keep every
/// committed change.
async fn two_instances_on_one_database_lose_no_update(db: TestDb) {
    let a = db.store.clone();
    let b = Store::connect(&db.url).await.unwrap();
    let id = faculty_with_desk(&a, "Katherine Johnson", "desk-4").await;
    a.apply(&[online("desk-4", 1, 1, true)]).await.unwrap();
    let start = a.newest_event_id().await.unwrap();
    let run = |store: Store, parity: u64| {
        tokio::spawn(async move {
            let mut applied = 0;
            for i in 0..40u64 {
                let seq = 2 + i * 2 + parity;
                let out = store.apply(&[state("desk-4", 1, seq, parity == 0, false)]).await.unwrap();
                applied += out.iter().filter(|o| matches!(o, Outcome::Applied { event: Some(_) })).count();
            }
            applied
        })
    };
    let (x, y) = (run(a.clone(), 0), run(b.clone(), 1));
    let applied = x.await.unwrap() + y.await.unwrap();
    let f = view(&a, id).await;
    assert_eq!(f.version as usize, 2 + applied);
    assert_eq!(a.events_after(start, 10_000).await.unwrap().len(), applied);
    let desk = a.list_desks().await.unwrap().into_iter().find(|d| d.id == "desk-4").unwrap();
    assert_eq!(desk.seq, Some(81), "the newest message wins");
}

struct Rng(u64);
impl Rng {
    fn next(&mut self) -> u64 {
        self.0 ^= self.0 << 13;
        self.0 ^= self.0 >> 7;
        self.0 ^= self.0 << 17;
        self.0
    }
    fn below(&mut self, n: usize) -> usize {
        (self.next() % n as u64) as usize
    }
}

/// Any permutation of a desk's history, with duplicates, split into any batches, ends where the
/// in-order application ends; replaying it all again changes nothing.
async fn permutations_and_replays_are_idempotent(db: TestDb) {
    let store = &db.store;
    let mut rng = Rng(0x9e3779b97f4a7c15);
    for trial in 0..6 {
        let desk = format!("perm-{trial}");
        let id = faculty_with_desk(store, &format!("Trial {trial}"), &desk).await;
        // A history across two boots: announcements, wills, states and heartbeats.
        let mut history = vec![online(&desk, 1, 0, false), online(&desk, 1, 1, true)];
        for seq in 2..30 {
            history.push(match rng.below(4) {
                0 => Change::Message { desk: desk.clone(), message: DeskMessage::Heartbeat { clock: c(1, seq) } },
                _ => state(&desk, 1, seq, rng.below(2) == 0, rng.below(3) == 0),
            });
        }
        history.push(online(&desk, 2, 0, false));
        history.push(online(&desk, 2, 1, true));
        history.push(state(&desk, 2, 2, rng.below(2) == 0, false));
        let expected = history.iter().fold(DeskRecord::default(), |r, ch| match ch {
            Change::Message { message, .. } => match r.apply(*message) {
                DeskUpdate::Applied { record, .. } => record,
                DeskUpdate::Stale | DeskUpdate::Implausible => r,
            },
            Change::TimeOut { .. } => r,
        });
        let mut shuffled = history.clone();
        for _ in 0..10 {
            shuffled.push(history[rng.below(history.len())].clone());
        }
        for i in (1..shuffled.len()).rev() {
            shuffled.swap(i, rng.below(i + 1));
        }
        let mut rest = &shuffled[..];
        while !rest.is_empty() {
            let n = 1 + rng.below(rest.len().min(7));
            store.apply(&rest[..n]).await.unwrap();
            rest = &rest[n..];
        }
        let f = view(store, id).await;
        assert_eq!((f.present, f.busy, f.desk_online), (expected.present, expected.busy, expected.online));
        let events = store.newest_event_id().await.unwrap();
        let out = store.apply(&history).await.unwrap();
        assert!(out.iter().all(|o| *o == Outcome::Stale), "replay must be stale: {out:?}");
        assert_eq!(view(store, id).await, f);
        assert_eq!(store.newest_event_id().await.unwrap(), events);
    }
}

async fn snapshot_cursor_and_event_log_agree(db: TestDb) {
    let store = &db.store;
    let a = faculty_with_desk(store, "A", "snap-a").await;
    let b = faculty_with_desk(store, "B", "snap-b").await;
    store.apply(&[online("snap-a", 1, 1, true), online("snap-b", 1, 1, true)]).await.unwrap();
    let snap = store.snapshot().await.unwrap();
    assert!(store.events_after(snap.cursor, 100).await.unwrap().is_empty());
    store.apply(&[state("snap-a", 1, 2, true, false), state("snap-b", 1, 2, true, true)]).await.unwrap();
    let events = store.events_after(snap.cursor, 100).await.unwrap();
    let got: Vec<_> = events.iter().map(|e| (e.faculty.id, e.faculty.status, e.faculty.version)).collect();
    assert_eq!(got, [(a, Status::Available, 3), (b, Status::Busy, 3)]);
    // Applying the events to the snapshot gives the next snapshot.
    let mut board = snap.faculty.clone();
    for e in &events {
        let slot = board.iter_mut().find(|f| f.id == e.faculty.id).unwrap();
        *slot = e.faculty.clone();
    }
    let next = store.snapshot().await.unwrap();
    assert_eq!(next.cursor, events.last().unwrap().id);
    assert_eq!(board, next.faculty);
    assert_eq!(store.events_after(snap.cursor, 1).await.unwrap().len(), 1, "limit is honoured");
}

async fn timeout_makes_a_silent_desk_offline(db: TestDb) {
    let store = &db.store;
    let id = faculty_with_desk(store, "Silent", "quiet").await;
    let talk = faculty_with_desk(store, "Talker", "loud").await;
    store.apply(&[online("quiet", 4, 1, true), state("quiet", 4, 2, true, false)]).await.unwrap();
    let cutoff = store::now_ms() + 1;
    tokio::time::sleep(std::time::Duration::from_millis(5)).await;
    store.apply(&[online("loud", 1, 1, true)]).await.unwrap();
    assert_eq!(view(store, id).await.status, Status::Available);
    let gone = store.time_out_silent_desks(cutoff).await.unwrap();
    assert_eq!(gone, ["quiet"]);
    let f = view(store, id).await;
    assert_eq!((f.status, f.desk_online), (Status::Offline, false));
    assert_eq!(view(store, talk).await.status, Status::Away, "a desk that spoke after the cutoff stays");
    assert!(store.time_out_silent_desks(cutoff).await.unwrap().is_empty(), "already offline");
    // The old connection's announcement cannot revive it; a reconnection does.
    assert_eq!(store.apply(&[online("quiet", 4, 1, true)]).await.unwrap(), [Outcome::Stale]);
    // (A reconnection leaves a new will, reserved at seq 3, with the broker and announces at 4.)
    store.apply(&[online("quiet", 4, 4, true)]).await.unwrap();
    assert_eq!(view(store, id).await.status, Status::Available);
}

async fn admin_errors_are_clear(db: TestDb) {
    let store = &db.store;
    let nf = |name: &str, email: Option<&str>| NewFaculty {
        name: name.into(),
        department: "Maths".into(),
        email: email.map(Into::into),
    };
    let id = store.add_faculty(&nf("Emmy Noether", Some("emmy@uni.example"))).await.unwrap();
    let err = store.add_faculty(&nf("Other", Some("emmy@uni.example"))).await.unwrap_err();
    assert!(matches!(&err, StoreError::Conflict(m) if m.contains("emmy@uni.example")), "{err}");
    assert!(matches!(store.add_faculty(&nf("  ", None)).await, Err(StoreError::Invalid(_))));
    assert!(matches!(store.add_faculty(&nf("X", Some("no-at"))).await, Err(StoreError::Invalid(_))));
    assert!(matches!(store.add_desk("d 1", id).await, Err(StoreError::Invalid(_))));
    assert!(matches!(store.add_desk("d1", 99_999).await, Err(StoreError::NotFound(_))));
    store.add_desk("d1", id).await.unwrap();
    let err = store.add_desk("d2", id).await.unwrap_err();
    assert!(matches!(&err, StoreError::Conflict(m) if m.contains("already has desk d1")), "{err}");
    let other = store.add_faculty(&nf("Sofia Kovalevskaya", None)).await.unwrap();
    let err = store.add_desk("d1", other).await.unwrap_err();
    assert!(matches!(&err, StoreError::Conflict(m) if m.contains("exists already")), "{err}");
    let desks = store.list_desks().await.unwrap();
    assert_eq!(desks.len(), 1);
    assert_eq!((desks[0].faculty_id, desks[0].online, desks[0].boot), (Some(id), false, None));
}

/// An ingest batch's acks and answers commit together: each judged as it would be alone, against
/// what the ones before it left; one event per request on the student's side, showing the newest
/// state; one desk queue publication per faculty member.
async fn a_batch_of_desk_answers_is_judged_in_order_and_published_once(db: TestDb) {
    use domain::consultation::{Action, State};
    use store::{DeskOutcome, DeskWork};
    let store = &db.store;
    let f = available(store, "Annie", "rq20").await;
    let _g = available(store, "Evelyn", "rq21").await;
    let r = store.place_request(&ask(student(store, "S20").await, f, false)).await.unwrap();
    let r2 = store.place_request(&ask(student(store, "S21").await, f, false)).await.unwrap();
    let (_, q) = store.queue_snapshot(f).await.unwrap().unwrap();
    let mut students = store.requests_bus().subscribe();
    let mut queues = store.queues_bus().subscribe();
    let c = |seq| domain::DeskClock::new(1, seq);
    let reply = |desk: &str, seq, request, action| DeskWork::Reply {
        desk: desk.into(),
        clock: c(seq),
        request,
        action,
        note: None,
    };
    let work = [
        DeskWork::Ack { desk: "rq20".into(), version: q.version },
        reply("rq20", 5, r.id, Action::Accept),
        reply("rq21", 6, r.id, Action::Decline), // another faculty member's desk
        reply("rq20", 5, r.id, Action::Done),    // the same clock again
        reply("rq20", 7, r.id, Action::Done),
        reply("rq20", 8, 987_654, Action::Accept),
        reply("rq20", 9, r2.id, Action::Busy),
    ];
    let outcomes = store.desk_answers(&work).await.unwrap();
    use DeskOutcome::*;
    assert_eq!(outcomes, [Applied, Applied, WrongDesk, Stale, Applied, UnknownRequest, Applied]);
    let (v1, v2) =
        (store.request_view(r.id).await.unwrap().unwrap(), store.request_view(r2.id).await.unwrap().unwrap());
    assert_eq!((v1.state, v2.state, v2.position), (State::Done, State::Busy, Some(1)));
    // Published after the commit: each request once, as it is now; the desk's queue once.
    let mut seen = Vec::new();
    while let Ok(ev) = students.try_recv() {
        seen.push((ev.request.id, ev.request.state));
    }
    seen.sort_by_key(|(id, _)| *id);
    assert_eq!(seen, [(r.id, State::Done), (r2.id, State::Busy)]);
    assert_eq!(queues.try_recv().ok(), Some(f));
    assert!(queues.try_recv().is_err(), "one queue publication for the batch");
    // A batch where nothing applies writes nothing.
    let before = view(store, f).await.version;
    assert_eq!(store.desk_answers(&[reply("rq20", 3, r.id, Action::Accept)]).await.unwrap(), [Stale]);
    assert_eq!(view(store, f).await.version, before);
}

/// A batch over several faculty members' lines, judged in memory and written set-wise: an ack
/// after a reply in the same batch delivers only what is still queued; each line is renumbered,
/// counted and versioned once; one board event per line whose count moved; each request's event
/// once, as it now is.
async fn a_batch_over_several_lines_settles_each_line_once(db: TestDb) {
    use domain::consultation::{Action, State};
    use store::{DeskOutcome::*, DeskWork};
    let store = &db.store;
    let a = available(store, "Ann", "rq30").await;
    let b = available(store, "Bea", "rq31").await;
    let mut ra = Vec::new();
    for i in 0..3 {
        ra.push(store.place_request(&ask(student(store, &format!("S3{i}")).await, a, false)).await.unwrap().id);
    }
    let mut rb = Vec::new();
    for i in 0..2 {
        rb.push(store.place_request(&ask(student(store, &format!("S4{i}")).await, b, false)).await.unwrap().id);
    }
    let (_, qa) = store.queue_snapshot(a).await.unwrap().unwrap();
    let (_, qb) = store.queue_snapshot(b).await.unwrap().unwrap();
    let (fa, fb) = (view(store, a).await, view(store, b).await);
    assert_eq!((fa.waiting, fb.waiting), (3, 2));
    let board_before = store.newest_event_id().await.unwrap();
    let mut students = store.requests_bus().subscribe();
    let reply = |desk: &str, seq, request, action| DeskWork::Reply {
        desk: desk.into(),
        clock: domain::DeskClock::new(1, seq),
        request,
        action,
        note: None,
    };
    let work = [
        reply("rq30", 5, ra[0], Action::Decline), // leaves A's line before the ack
        DeskWork::Ack { desk: "rq30".into(), version: qa.version },
        reply("rq31", 5, rb[0], Action::Accept),
        DeskWork::Ack { desk: "rq31".into(), version: qb.version },
        reply("rq30", 6, ra[1], Action::Accept), // delivered by the ack just before
    ];
    assert_eq!(store.desk_answers(&work).await.unwrap(), [Applied, Applied, Applied, Applied, Applied]);
    let now = |id| async move { store.request_view(id).await.unwrap().unwrap() };
    let (a0, a1, a2, b0, b1) =
        (now(ra[0]).await, now(ra[1]).await, now(ra[2]).await, now(rb[0]).await, now(rb[1]).await);
    assert_eq!(
        [(a0.state, a0.position), (a1.state, a1.position), (a2.state, a2.position)],
        [(State::Declined, None), (State::Accepted, None), (State::Delivered, Some(1))]
    );
    assert_eq!(
        [(b0.state, b0.position), (b1.state, b1.position)],
        [(State::Accepted, None), (State::Delivered, Some(1))]
    );
    // Each line: counted once (one new row version, one board event), its queue one version on.
    let board = store.events_after(board_before, 10).await.unwrap();
    let mut counted: Vec<(i64, i64, i64)> =
        board.iter().map(|e| (e.faculty.id, e.faculty.waiting, e.faculty.version)).collect();
    counted.sort_unstable();
    assert_eq!(counted, [(a, 1, fa.version + 1), (b, 1, fb.version + 1)]);
    assert_eq!(store.queue_snapshot(a).await.unwrap().unwrap().1.version, qa.version + 1);
    assert_eq!(store.queue_snapshot(b).await.unwrap().unwrap().1.version, qb.version + 1);
    // Every request once, as it now is (its place included).
    let mut seen = Vec::new();
    while let Ok(ev) = students.try_recv() {
        seen.push((ev.request.id, ev.request.state, ev.request.position, ev.request.version));
    }
    seen.sort_by_key(|(id, ..)| *id);
    let mut want: Vec<_> = [a0, a1, a2, b0, b1].into_iter().map(|v| (v.id, v.state, v.position, v.version)).collect();
    want.sort_by_key(|(id, ..)| *id);
    assert_eq!(seen, want);
}

/// An admin's edit: saved only at the version it names, with the board's event and the audit row
/// in the same transaction; a stale one or a taken email writes nothing at all.
async fn a_faculty_edit_is_a_compare_and_set_with_its_event_and_audit(db: TestDb) {
    use domain::faculty::FacultyFields;
    let store = &db.store;
    let id = faculty_with_desk(store, "Ada", "fe1").await;
    let other = faculty_with_desk(store, "Grace", "fe2").await;
    let rec = store.faculty_record(id).await.unwrap().unwrap();
    let audit = store::AuditEntry { actor: "admin:t".into(), action: "faculty_edited".into(), ..Default::default() };
    let fields = FacultyFields {
        name: "Ada King".into(),
        department: "Computing".into(),
        email: Some("ada@x.org".into()),
        ..Default::default()
    };
    let events_before = store.newest_event_id().await.unwrap();
    let saved = match store.edit_faculty(id, rec.version, &fields, &audit).await.unwrap() {
        store::Edit::Saved(r) => r,
        other => panic!("{other:?}"),
    };
    assert_eq!(saved.version, rec.version + 1);
    let ev = store.events_after(events_before, 10).await.unwrap();
    assert_eq!(ev.len(), 1);
    assert_eq!((ev[0].faculty.name.as_str(), ev[0].faculty.version), ("Ada King", saved.version));
    // The same version again: a conflict carrying the row as it is; nothing written.
    let stale = FacultyFields { name: "Ada Lovelace".into(), ..fields.clone() };
    assert_eq!(
        store.edit_faculty(id, rec.version, &stale, &audit).await.unwrap(),
        store::Edit::Conflict(saved.clone())
    );
    // A taken email: a clear conflict, and no event, no audit row.
    let g = store.faculty_record(other).await.unwrap().unwrap();
    let taken = FacultyFields {
        name: "Grace".into(),
        department: "Navy".into(),
        email: Some("ada@x.org".into()),
        ..Default::default()
    };
    assert!(matches!(store.edit_faculty(other, g.version, &taken, &audit).await, Err(StoreError::Conflict(_))));
    assert_eq!(store.newest_event_id().await.unwrap(), ev[0].id);
    assert_eq!(store.faculty_record(other).await.unwrap().unwrap(), g);
    let log = store.audit_log(10).await.unwrap();
    assert_eq!(log.iter().filter(|e| e.action == "faculty_edited").count(), 1);
}

/// An override ranks above the desk (also for desk messages applied while it holds), carries its
/// note and end to the board, and ends once at its end time; clearing hands back to the desk.
async fn an_override_ranks_above_the_desk_and_ends_once(db: TestDb) {
    use domain::status::AdminOverride;
    let store = &db.store;
    let id = available(store, "Hedy", "ov9").await;
    let audit = store::AuditEntry { actor: "admin:t".into(), action: "override_set".into(), ..Default::default() };
    let now = store::now_ms();
    let ov = AdminOverride { status: Status::Busy, note: "In class".into(), expires_at: Some(now + 60_000) };
    let v = store.set_override(id, Some(&ov), &audit).await.unwrap();
    assert_eq!((v.status, v.note.as_deref(), v.until), (Status::Busy, Some("In class"), Some(now + 60_000)));
    store.apply(&[state("ov9", 1, 3, true, false)]).await.unwrap();
    let v = view(store, id).await;
    assert_eq!((v.status, v.note.as_deref()), (Status::Busy, Some("In class")), "the desk does not undo it");
    assert_eq!(store.expire_overrides(now + 59_000).await.unwrap(), 0, "not before its end");
    assert_eq!(store.expire_overrides(now + 60_000).await.unwrap(), 1);
    assert_eq!(store.expire_overrides(now + 61_000).await.unwrap(), 0, "once");
    let v = view(store, id).await;
    assert_eq!((v.status, v.note, v.until), (Status::Available, None, None));
    let forever = AdminOverride { status: Status::Away, note: String::new(), expires_at: None };
    assert_eq!(store.set_override(id, Some(&forever), &audit).await.unwrap().status, Status::Away);
    assert_eq!(store.expire_overrides(i64::MAX).await.unwrap(), 0, "until cleared");
    assert_eq!(store.set_override(id, None, &audit).await.unwrap().status, Status::Available);
    assert!(matches!(store.set_override(987_654, None, &audit).await, Err(StoreError::NotFound(_))));
    let log = store.audit_log(20).await.unwrap();
    assert_eq!(log.iter().filter(|e| e.action == "override_expired").count(), 1);
}

async fn the_audit_log_filters_by_actor_action_and_time(db: TestDb) {
    use store::{AuditEntry, AuditFilter};
    let store = &db.store;
    let t0 = store::now_ms();
    for (actor, action) in [("admin:a", "x"), ("admin:b", "x"), ("admin:a", "y")] {
        store.audit(&AuditEntry { actor: actor.into(), action: action.into(), ..Default::default() }).await.unwrap();
    }
    let count = |f: AuditFilter| async move { store.audit_search(&f, 100).await.unwrap().len() };
    assert_eq!(count(AuditFilter::default()).await, 3);
    assert_eq!(count(AuditFilter { actor: Some("admin:a".into()), ..Default::default() }).await, 2);
    assert_eq!(count(AuditFilter { action: Some("x".into()), ..Default::default() }).await, 2);
    assert_eq!(
        count(AuditFilter { actor: Some("admin:a".into()), action: Some("y".into()), ..Default::default() }).await,
        1
    );
    assert_eq!(count(AuditFilter { from: Some(t0 + 3_600_000), ..Default::default() }).await, 0);
    assert_eq!(count(AuditFilter { from: Some(t0 - 1), to: Some(t0 + 3_600_000), ..Default::default() }).await, 3);
    let newest = store.audit_search(&AuditFilter::default(), 1).await.unwrap();
    assert_eq!((newest.len(), newest[0].action.as_str()), (1, "y"), "newest first, limited");
}

async fn admins_list_requests_by_state_faculty_and_time_and_cancel_with_a_reason(db: TestDb) {
    use domain::consultation::{Input, State};
    let store = &db.store;
    let f = store
        .add_faculty(&store::NewFaculty { name: "Lise Meitner".into(), department: "Physics".into(), email: None })
        .await
        .unwrap();
    let g = store
        .add_faculty(&store::NewFaculty { name: "Otto Hahn".into(), department: "Chemistry".into(), email: None })
        .await
        .unwrap();
    let s = student(store, "AR1").await;
    let a = store.place_request(&ask(s, f, true)).await.unwrap();
    let b = store.place_request(&ask(s, g, true)).await.unwrap();
    let all = |filter: store::RequestFilter| async move {
        store.admin_requests(&filter, 100).await.unwrap().into_iter().map(|r| r.id).collect::<Vec<_>>()
    };
    assert_eq!(all(store::RequestFilter::default()).await, [b.id, a.id], "newest first");
    assert_eq!(all(store::RequestFilter { faculty_id: Some(f), ..Default::default() }).await, [a.id]);
    let entry =
        store::AuditEntry { actor: "admin:ada".into(), action: "request_cancelled".into(), ..Default::default() };
    let cancelled = store
        .change_request(a.id, Input::Cancel, &store::Actor::Admin(Box::new(entry.clone())), Some("Office closed today"))
        .await
        .unwrap()
        .unwrap();
    assert_eq!((cancelled.state, cancelled.note.as_deref()), (State::Cancelled, Some("Office closed today")));
    assert_eq!(all(store::RequestFilter { open_only: true, ..Default::default() }).await, [b.id]);
    assert_eq!(all(store::RequestFilter { state: Some(State::Cancelled), ..Default::default() }).await, [a.id]);
    let row = &store
        .admin_requests(&store::RequestFilter { state: Some(State::Cancelled), ..Default::default() }, 1)
        .await
        .unwrap()[0];
    assert_eq!((row.faculty_name.as_str(), row.student_number.as_str()), ("Lise Meitner", "AR1"));
    let now = store::now_ms();
    assert_eq!(all(store::RequestFilter { from: Some(now + 1), ..Default::default() }).await, Vec::<i64>::new());
    assert_eq!(all(store::RequestFilter { to: Some(now + 1), ..Default::default() }).await.len(), 2);
    // Cancelling a finished request changes nothing and audits nothing.
    let again =
        store.change_request(a.id, Input::Cancel, &store::Actor::Admin(Box::new(entry)), Some("twice")).await.unwrap();
    assert_eq!(again, None);
    let log = store
        .audit_search(&store::AuditFilter { action: Some("request_cancelled".into()), ..Default::default() }, 10)
        .await
        .unwrap();
    assert_eq!(log.len(), 1);
    assert!(log[0].detail.as_deref().is_some_and(|d| d.contains("Office closed today")), "{:?}", log[0].detail);
}

async fn a_deactivated_faculty_member_leaves_the_board_and_takes_no_requests(db: TestDb) {
    let store = &db.store;
    let f = store
        .add_faculty(&store::NewFaculty { name: "Emmy Noether".into(), department: "Maths".into(), email: None })
        .await
        .unwrap();
    let s = student(store, "DA1").await;
    let entry =
        |action: &str| store::AuditEntry { actor: "admin:ada".into(), action: action.into(), ..Default::default() };
    // Open requests first: refused, nothing changed.
    let r = store.place_request(&ask(s, f, true)).await.unwrap();
    let before = view(store, f).await;
    let err = store.set_faculty_active(f, false, &entry("faculty_deactivated")).await.unwrap_err();
    assert!(matches!(err, StoreError::Conflict(ref m) if m.contains("1 open request")), "{err:?}");
    assert_eq!(view(store, f).await, before);
    store.change_request(r.id, domain::consultation::Input::Cancel, &store::Actor::Student(s), None).await.unwrap();

    let mut events = store.bus().subscribe();
    let v = store.set_faculty_active(f, false, &entry("faculty_deactivated")).await.unwrap();
    assert!(!v.active && v.version > before.version);
    let published = events.recv().await.unwrap();
    assert!(published.faculty.id == f && !published.faculty.active, "the board hears it");
    assert!(!store.snapshot().await.unwrap().faculty.iter().any(|x| x.id == f), "not on the board");
    assert_eq!(store.inactive_faculty().await.unwrap(), [(f, "Emmy Noether".to_owned())]);
    assert!(matches!(store.place_request(&ask(s, f, true)).await, Err(store::PlaceError::NoFaculty)));
    // Twice: nothing more.
    let again = store.set_faculty_active(f, false, &entry("faculty_deactivated")).await.unwrap();
    assert_eq!(again.version, v.version);

    let back = store.set_faculty_active(f, true, &entry("faculty_reactivated")).await.unwrap();
    assert!(back.active && back.version > v.version);
    assert!(store.snapshot().await.unwrap().faculty.iter().any(|x| x.id == f));
    store.place_request(&ask(s, f, true)).await.unwrap();
    let log = store
        .audit_search(&store::AuditFilter { actor: Some("admin:ada".into()), ..Default::default() }, 10)
        .await
        .unwrap();
    let actions: Vec<&str> = log.iter().map(|e| e.action.as_str()).collect();
    assert_eq!(actions, ["faculty_reactivated", "faculty_deactivated"]);
}

async fn retention_deletes_old_events_keeps_the_newest_and_raises_the_watermark(db: TestDb) {
    let store = &db.store;
    assert_eq!(store.prune_events(store::now_ms() + 1).await.unwrap(), 0, "an empty log");
    assert_eq!(store.events_pruned_through().await.unwrap(), 0);
    let f = store
        .add_faculty(&store::NewFaculty { name: "Rosalind Franklin".into(), department: "X".into(), email: None })
        .await
        .unwrap();
    store.add_desk("ret1", f).await.unwrap();
    store.apply(&[online("ret1", 1, 1, true)]).await.unwrap();
    for seq in 2..=5 {
        store.apply(&[state("ret1", 1, seq, seq % 2 == 0, false)]).await.unwrap();
    }
    let newest = store.newest_event_id().await.unwrap();
    let before = store.events_after(0, 100).await.unwrap().len();
    assert!(before >= 5);
    // Nothing is older than an hour ago.
    assert_eq!(store.prune_events(store::now_ms() - 3_600_000).await.unwrap(), 0);
    // Everything is older than a moment from now, but the newest stays: readers resume from it.
    let deleted = store.prune_events(store::now_ms() + 1).await.unwrap();
    assert_eq!(deleted as usize, before - 1);
    assert_eq!(store.newest_event_id().await.unwrap(), newest);
    assert_eq!(store.events_after(0, 100).await.unwrap().iter().map(|e| e.id).collect::<Vec<_>>(), [newest]);
    assert_eq!(store.events_pruned_through().await.unwrap(), newest - 1);
    // The board and its cursor are untouched.
    let snap = store.snapshot().await.unwrap();
    assert_eq!(snap.cursor, newest);
    assert!(snap.faculty.iter().any(|x| x.id == f));
}

async fn office_hours_are_saved_with_the_row_and_ride_on_every_event(db: TestDb) {
    let store = &db.store;
    let f = store
        .add_faculty(&store::NewFaculty { name: "Barbara McClintock".into(), department: "Bio".into(), email: None })
        .await
        .unwrap();
    store.add_desk("oh1", f).await.unwrap();
    let rec = store.faculty_record(f).await.unwrap().unwrap();
    let fields = domain::faculty::check(&domain::faculty::FacultyFields {
        office_hours: Some("wed 9:30-11:00\nMon 14:00-16:00 Room B-204".into()),
        ..rec.fields.clone()
    })
    .unwrap();
    assert_eq!(
        fields.office_hours.as_deref(),
        Some("Mon 14:00-16:00 Room B-204\nWed 09:30-11:00"),
        "written back canonical"
    );
    let audit = store::AuditEntry { actor: "admin:ada".into(), action: "faculty_edited".into(), ..Default::default() };
    let store::Edit::Saved(saved) = store.edit_faculty(f, rec.version, &fields, &audit).await.unwrap() else {
        panic!("saved")
    };
    assert_eq!(saved.fields.office_hours, fields.office_hours);
    let hours = view(store, f).await.hours;
    assert_eq!((hours.len(), hours[0].weekday, hours[0].location.as_deref()), (2, 0, Some("Room B-204")));
    // A desk's change (the ingest's own path, not a re-read) carries them too.
    let mut events = store.bus().subscribe();
    store.apply(&[online("oh1", 1, 1, true)]).await.unwrap();
    let ev = events.recv().await.unwrap();
    assert_eq!((ev.faculty.id, ev.faculty.hours.len()), (f, 2));
    let replayed = store.events_after(0, 100).await.unwrap();
    assert!(replayed.iter().filter(|e| e.faculty.id == f).all(|e| e.faculty.hours.len() == 2));
}

async fn returns_to_availability_are_drawn_from_the_log_once(db: TestDb) {
    let store = &db.store;
    let f = store
        .add_faculty(&store::NewFaculty { name: "Lise".into(), department: "P".into(), email: None })
        .await
        .unwrap();
    store.add_desk("rt1", f).await.unwrap();
    // Online and present (available), away (not present), present again: one return after the first.
    store.apply(&[online("rt1", 1, 1, true), state("rt1", 1, 2, true, false)]).await.unwrap();
    assert!(store.record_returns(1000).await.unwrap() > 0);
    let since = store::now_ms() - 60_000;
    let before = store.faculty_returns_since(f, since).await.unwrap().len();
    store.apply(&[state("rt1", 1, 3, false, false)]).await.unwrap();
    store.apply(&[state("rt1", 1, 4, true, false)]).await.unwrap();
    store.apply(&[state("rt1", 1, 5, true, true)]).await.unwrap(); // busy: not a return
    store.record_returns(1000).await.unwrap();
    let after = store.faculty_returns_since(f, since).await.unwrap();
    assert_eq!(after.len(), before + 1, "the come-back after being away: {after:?}");
    // Nothing new: a second pass reads nothing and records nothing twice.
    assert_eq!(store.record_returns(1000).await.unwrap(), 0);
    assert_eq!(store.returns_since(since).await.unwrap().len(), after.len());
    // Imported history, and its retention.
    store.add_returns(&[(f, 1_000), (f, 2_000)]).await.unwrap();
    assert_eq!(store.faculty_returns_since(f, 0).await.unwrap().len(), after.len() + 2);
    assert_eq!(store.prune_returns(1_500).await.unwrap(), 1);
    assert_eq!(store.faculty_returns_since(f, 0).await.unwrap().len(), after.len() + 1);
}

async fn a_desk_moves_between_faculty_members_and_retires(db: TestDb) {
    use domain::Status;
    let store = &db.store;
    let add = |name: &str| {
        let f = store::NewFaculty { name: name.into(), department: "D".into(), email: None };
        async move { store.add_faculty(&f).await.unwrap() }
    };
    let (a, b) = (add("Annie Easley").await, add("Mary Winston").await);
    store.add_desk("mvd", a).await.unwrap();
    store.apply(&[online("mvd", 1, 1, true), state("mvd", 1, 2, true, false)]).await.unwrap();
    assert_eq!(view(store, a).await.status, Status::Available);
    let entry = store::AuditEntry { actor: "admin:ada".into(), action: "desk_bound".into(), ..Default::default() };
    let queue_of = |f: i64| async move { store.queue_snapshot(f).await.unwrap().map(|(d, q)| (d, q.version)) };
    let (_, a_version) = queue_of(a).await.unwrap();

    store.bind_desk("mvd", Some(b), &entry).await.unwrap();
    assert_eq!((view(store, a).await.status, view(store, b).await.status), (Status::Offline, Status::Available));
    let (desk, b_version) = queue_of(b).await.unwrap();
    assert_eq!(desk, "mvd");
    assert!(b_version > a_version, "the desk's queue version keeps growing: {a_version} then {b_version}");
    assert_eq!(queue_of(a).await, None, "no desk, no queue to publish");
    // The desk's next report is Mary's.
    store.apply(&[state("mvd", 1, 3, true, true)]).await.unwrap();
    assert_eq!((view(store, a).await.status, view(store, b).await.status), (Status::Offline, Status::Busy));

    store.bind_desk("mvd", None, &entry).await.unwrap();
    assert_eq!(view(store, b).await.status, Status::Offline);
    assert_eq!(store.list_desks().await.unwrap().iter().find(|d| d.id == "mvd").unwrap().faculty_id, None);
    // Unbound, its reports are kept for the desk and change no one's card.
    let (a_before, b_before) = (view(store, a).await, view(store, b).await);
    store.apply(&[state("mvd", 1, 4, false, false)]).await.unwrap();
    assert_eq!((view(store, a).await, view(store, b).await), (a_before, b_before));
    store.bind_desk("mvd", Some(a), &entry).await.unwrap();
    assert_eq!(view(store, a).await.status, Status::Away, "Annie takes the desk's facts (on, nobody there)");
    store.retire_desk("mvd", &entry).await.unwrap();
    assert_eq!(view(store, a).await.status, Status::Offline);
    assert!(matches!(store.retire_desk("mvd", &entry).await, Err(StoreError::NotFound(_))));
    assert!(store.desk_mqtt_hash("mvd").await.unwrap().is_none());
    let log = store
        .audit_search(&store::AuditFilter { action: Some("desk_bound".into()), ..Default::default() }, 10)
        .await
        .unwrap();
    assert_eq!(log.len(), 4);
}

/// Finished requests written straight into the table: `n` per faculty member, the newest first
/// lasting `newest_min` minutes each and the older ones 10 h (so any of those in the estimate shows).
async fn history(db: &TestDb, student: i64, faculty: &[i64], n: i64, newest: i64, newest_min: i64) {
    let insert = "INSERT INTO requests (student_id, faculty_id, message, state, requested_at, changed_at, \
                  accepted_at, finished_at) VALUES ($1, $2, 'old', 'done', $3, $3, $3, $4)";
    let rows: Vec<(i64, i64, i64)> = faculty
        .iter()
        .flat_map(|f| {
            (0..n).map(move |k| {
                let accepted = 1_000_000_000 + k * 100_000_000;
                let minutes = if k >= n - newest { newest_min } else { 600 };
                (*f, accepted, accepted + minutes * 60_000)
            })
        })
        .collect();
    if db.url.starts_with("sqlite") {
        let mut c = sqlx::SqliteConnection::connect(&db.url).await.unwrap();
        for (f, a, d) in rows {
            sqlx::query(insert).bind(student).bind(f).bind(a).bind(d).execute(&mut c).await.unwrap();
        }
    } else {
        let mut c = sqlx::PgConnection::connect(&db.url).await.unwrap();
        for (f, a, d) in rows {
            sqlx::query(insert).bind(student).bind(f).bind(a).bind(d).execute(&mut c).await.unwrap();
        }
    }
}

/// A student's wait estimate comes from that faculty member's 20 most recent accept -> done
/// durations (newest by finish), whatever lies further back, for each line in one read.
async fn wait_estimates_use_each_lines_twenty_newest_durations(db: TestDb) {
    let store = &db.store;
    let fs = [
        available(store, "Ada", "we1").await,
        available(store, "Brian", "we2").await,
        available(store, "Cleo", "we3").await,
    ];
    let old = student(store, "OLD").await;
    // 40 finished each: the 20 newest last 4 min (Ada), 8 min (Brian), 12 min (Cleo); the 20 oldest
    // 10 h (read with them, the upper quartile would be 10 h).
    for (f, min) in fs.iter().zip([4, 8, 12]) {
        history(&db, old, &[*f], 40, 20, min).await;
    }
    // Two waiting in each line: the second's estimate is one consultation ahead.
    let mut second = Vec::new();
    for (i, f) in fs.iter().enumerate() {
        let (a, b) = (student(store, &format!("A{i}")).await, student(store, &format!("B{i}")).await);
        store.place_request(&ask(a, *f, false)).await.unwrap();
        second.push(store.place_request(&ask(b, *f, false)).await.unwrap());
    }
    let estimates: Vec<_> = second.iter().map(|r| (r.position, r.wait_min, r.wait_max)).collect();
    assert_eq!(
        estimates,
        [(Some(2), Some(4), Some(4)), (Some(2), Some(8), Some(8)), (Some(2), Some(12), Some(12))],
        "the 10 h ones are older than the newest 20"
    );
    // A line with only those 5 of 10 h among its newest 20 would show them.
    let d = available(store, "Dora", "we4").await;
    history(&db, old, &[d], 25, 15, 4).await;
    let (a, b) = (student(store, "A9").await, student(store, "B9").await);
    store.place_request(&ask(a, d, false)).await.unwrap();
    let r = store.place_request(&ask(b, d, false)).await.unwrap();
    assert_eq!((r.wait_min, r.wait_max), (Some(4), Some(600)), "a quarter of the 20 newest last 10 h");
}
