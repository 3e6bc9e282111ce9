//! The consultation loop as a student (HTTP) and a desk unit (MQTT) live it, over the embedded
//! broker and Mosquitto, on SQLite and PostgreSQL: the request reaches the desk's retained queue,
//! the desk acks and answers, the student's stream shows each step; answers are checked, never go
//! backwards, survive a server restart, and a student sees only their own requests.

use domain::consultation::{Action, State};
use serde_json::json;
use testkit::sse::SseConn;
use testkit::{Broker, Browser, Database, TestServer, eventually};

/// A server on `broker` (its own embedded one, or Mosquitto) and a fresh `database`; `None` when
/// a service is unreachable and not required.
async fn server(broker: Broker, database: Database) -> Option<TestServer> {
    let b = TestServer::builder().database(database.fresh().await?);
    Some(match broker {
        Broker::Embedded => b.start().await,
        Broker::Mosquitto => b.broker(broker.addr().await?).start().await,
    })
}

async fn signed_in(s: &TestServer, number: &str) -> Browser {
    s.student(number, &format!("Student {number}"), "135790", None).await;
    let mut b = s.browser();
    let r = b.post_json("/api/student/sign-in", json!({ "number": number, "pin": "135790" })).await;
    assert_eq!(r.status, 204);
    b
}

/// Opens the student's stream with their cookie, from their list's cursor.
async fn stream(s: &TestServer, b: &mut Browser) -> SseConn {
    let cursor = b.get("/api/me/requests").await.json()["cursor"].as_i64().unwrap();
    let cookie: Vec<String> = b.cookies.iter().map(|(k, v)| format!("{k}={v}")).collect();
    SseConn::open(&format!("{}/api/me/events?after={cursor}", s.url), &[("cookie", &cookie.join("; "))]).await.unwrap()
}

/// A form post to a server function, answered in JSON.
async fn form_post(b: &mut Browser, path: &str, body: String) -> testkit::Reply {
    let headers = [("content-type", "application/x-www-form-urlencoded"), ("accept", "application/json")];
    b.send(reqwest::Method::POST, path, Some(body), &headers).await
}

/// The next request event on the stream, as (state, version).
async fn next_state(sse: &mut SseConn) -> (String, i64) {
    loop {
        let ev = sse.next_event().await.expect("the stream is open");
        if ev.event == "request" {
            let v: serde_json::Value = serde_json::from_str(&ev.data).unwrap();
            return (v["state"].as_str().unwrap().to_owned(), v["version"].as_i64().unwrap());
        }
    }
}

/// Faculty member `name` at desk `desk`, present and available on the board, the desk following
/// its queue.
async fn available_desk(s: &TestServer, name: &str, desk: &str) -> (i64, testkit::Desk) {
    let f = s.faculty(name, desk).await;
    let mut d = s.desk(desk, 1, 0).await;
    d.state(true, false).await;
    d.subscribe_queue().await;
    eventually(&format!("{name} is available"), || async {
        s.store.snapshot().await.unwrap().faculty.iter().any(|x| x.id == f && x.status == domain::Status::Available)
    })
    .await;
    (f, d)
}

/// Runs each case over both brokers, on SQLite.
macro_rules! brokers {
    ($($case:ident),* $(,)?) => {$(
        mod $case {
            use super::*;
            #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
            async fn embedded() {
                super::$case(Broker::Embedded).await;
            }
            #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
            async fn mosquitto() {
                super::$case(Broker::Mosquitto).await;
            }
        }
    )*};
}

brokers!(
    defect_the_servers_own_queue_snapshots_came_back_as_rejected_desk_messages,
    a_session_from_an_older_server_loses_its_catch_all_filter,
);

/// Runs each case over both brokers and both databases.
macro_rules! matrix {
    ($($case:ident),* $(,)?) => {$(
        mod $case {
            use super::*;
            #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
            async fn embedded_sqlite() {
                super::$case(Broker::Embedded, Database::Sqlite).await;
            }
            #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
            async fn mosquitto_sqlite() {
                super::$case(Broker::Mosquitto, Database::Sqlite).await;
            }
            #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
            async fn embedded_postgres() {
                super::$case(Broker::Embedded, Database::Postgres).await;
            }
            #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
            async fn mosquitto_postgres() {
                super::$case(Broker::Mosquitto, Database::Postgres).await;
            }
        }
    )*};
}

matrix!(
    a_request_reaches_the_desk_and_the_answer_reaches_the_student_live,
    answers_from_the_wrong_desk_or_out_of_order_change_nothing,
    a_rebooted_desk_gets_its_queue_back_from_the_retained_snapshot,
    answers_sent_while_the_server_is_down_are_applied_after_it_restarts,
    an_admin_cancels_a_request_with_a_reason_the_student_and_the_desk_see,
);

async fn a_request_reaches_the_desk_and_the_answer_reaches_the_student_live(broker: Broker, database: Database) {
    let Some(s) = server(broker, database).await else { return };
    let f = s.faculty("Ada Lovelace", "cq1").await;
    let mut desk = s.desk("cq1", 1, 0).await;
    desk.state(true, false).await;
    desk.subscribe_queue().await;
    eventually("Ada is available", || async {
        s.store.snapshot().await.unwrap().faculty.iter().any(|x| x.id == f && x.status == domain::Status::Available)
    })
    .await;
    let mut student = signed_in(&s, "S-1").await;
    let mut sse = stream(&s, &mut student).await;
    let r = student
        .post_json(
            "/api/requests",
            json!({ "faculty_id": f, "course": "CS101", "message": "Recursion and stacks, please" }),
        )
        .await;
    assert_eq!(r.status, 201, "{}", r.body);
    let req = r.json();
    let id = req["id"].as_i64().unwrap();
    assert_eq!((req["state"].as_str(), req["position"].as_i64()), (Some("queued"), Some(1)));
    assert_eq!(next_state(&mut sse).await.0, "queued", "sent");

    // The desk gets its whole queue, retained and versioned, and says it shows it.
    let snap = desk.snapshot_above(0).await;
    assert_eq!(snap.items.len(), 1);
    assert_eq!(
        (snap.items[0].id, snap.items[0].student.as_str(), snap.items[0].course.as_deref()),
        (id, "Student S-1", Some("CS101"))
    );
    desk.ack(snap.version).await;
    assert_eq!(next_state(&mut sse).await.0, "delivered", "on the desk");
    desk.reply(id, Action::Accept, Some("come in")).await;
    let (state, v_accept) = next_state(&mut sse).await;
    assert_eq!(state, "accepted");
    desk.reply(id, Action::Done, None).await;
    let (state, v_done) = next_state(&mut sse).await;
    assert_eq!(state, "done");
    assert!(v_done > v_accept);
    // The board counted it while it waited.
    assert_eq!(s.store.snapshot().await.unwrap().faculty.iter().find(|x| x.id == f).unwrap().waiting, 0);
    let mine = student.get("/api/me/requests").await.json();
    assert_eq!(mine["requests"][0]["state"], "done");
    assert_eq!(mine["requests"][0]["note"], "come in");
}

/// The admin's consultations page (its server functions): the open request is listed with who
/// asked whom; cancelled with a reason, the student's stream shows it with the reason, the desk's
/// next snapshot drops the item, the audit has it; a finished request cannot be cancelled again.
async fn an_admin_cancels_a_request_with_a_reason_the_student_and_the_desk_see(broker: Broker, database: Database) {
    let Some(s) = server(broker, database).await else { return };
    let f = s.faculty("Chien-Shiung Wu", "cq9").await;
    let mut desk = s.desk("cq9", 1, 0).await;
    desk.state(true, false).await;
    desk.subscribe_queue().await;
    eventually("Wu is available", || async {
        s.store.snapshot().await.unwrap().faculty.iter().any(|x| x.id == f && x.status == domain::Status::Available)
    })
    .await;
    let mut student = signed_in(&s, "S-9").await;
    let mut sse = stream(&s, &mut student).await;
    let r = student.post_json("/api/requests", json!({ "faculty_id": f, "message": "Beta decay and parity" })).await;
    let id = r.json()["id"].as_i64().unwrap();
    assert_eq!(next_state(&mut sse).await.0, "queued");
    let snap = desk.snapshot_above(0).await;
    assert_eq!(snap.items.len(), 1);

    s.admin("ada", "correct horse battery staple").await;
    let mut admin = s.browser();
    let r = admin
        .post_json("/api/admin/sign-in", json!({ "username": "ada", "password": "correct horse battery staple" }))
        .await;
    assert_eq!(r.status, 204);
    let r = form_post(&mut admin, "/api/admin_requests", format!("state=open&faculty={f}")).await;
    let listed = r.json();
    assert_eq!(listed["requests"][0]["id"].as_i64(), Some(id), "{listed}");
    assert_eq!(listed["requests"][0]["student"], "Student S-9 (S-9)");
    let r = form_post(&mut admin, "/api/admin_request_cancel", format!("id={id}&reason=")).await;
    assert_eq!((r.status, r.json()["Invalid"]["field"].as_str()), (400, Some("reason")), "a reason is required");
    let r = form_post(&mut admin, "/api/admin_request_cancel", format!("id={id}&reason=Office+closed+today")).await;
    assert_eq!(r.status, 200, "{}", r.body);

    assert_eq!(next_state(&mut sse).await.0, "cancelled", "the student sees it live");
    let mine = student.get("/api/me/requests").await.json();
    assert_eq!(mine["requests"][0]["note"], "Office closed today");
    assert!(desk.snapshot_above(snap.version).await.items.is_empty(), "the desk's queue drops it");
    let r = form_post(&mut admin, "/api/admin_request_cancel", format!("id={id}&reason=Again")).await;
    assert_eq!(r.status, 409, "{}", r.body);
    let log = s.store.audit_log(50).await.unwrap();
    assert!(log.iter().any(|e| e.action == "request_cancelled"
        && e.actor == "admin:ada"
        && e.detail.as_deref().is_some_and(|d| d.contains("Office closed today"))));
}

/// Original defect 5: a late BUSY overwrote a CANCELLED consultation, and any desk could answer
/// any consultation. Replies from another desk are refused and counted; a cancelled request stays
/// cancelled; a repeated or reordered answer changes nothing; the next snapshot drops the item.
async fn answers_from_the_wrong_desk_or_out_of_order_change_nothing(broker: Broker, database: Database) {
    let Some(s) = server(broker, database).await else { return };
    let f = s.faculty("Grace Hopper", "cq2").await;
    let _g = s.faculty("Alan Turing", "cq3").await;
    let mut desk = s.desk("cq2", 1, 0).await;
    let mut other = s.desk("cq3", 1, 0).await;
    desk.state(true, false).await;
    desk.subscribe_queue().await;
    eventually("Grace is available", || async {
        s.store.snapshot().await.unwrap().faculty.iter().any(|x| x.id == f && x.status == domain::Status::Available)
    })
    .await;
    let mut student = signed_in(&s, "S-2").await;
    let r =
        student.post_json("/api/requests", json!({ "faculty_id": f, "message": "Compiler question for you" })).await;
    let id = r.json()["id"].as_i64().unwrap();
    let snap = desk.snapshot_above(0).await;
    assert_eq!(snap.items.len(), 1);
    // Another faculty member's desk tries to answer it.
    other.reply(id, Action::Accept, None).await;
    eventually("the wrong desk's answer is refused", || async { s.metrics().rejected("wrong_desk") == 1 }).await;
    // The student cancels; the desk's queue empties; a late busy changes nothing.
    let r = student.post_json(&format!("/api/requests/{id}/cancel"), json!({})).await;
    assert_eq!((r.status, r.json()["state"].as_str()), (200, Some("cancelled")));
    let emptied = desk.snapshot_above(snap.version).await;
    assert!(emptied.items.is_empty(), "the next snapshot drops the item");
    desk.reply(id, Action::Busy, None).await;
    let stale_before =
        s.metrics().desk_answers.get_or_create(&server::telemetry::metrics::ReasonLabel { reason: "stale" }).get();
    eventually("the late busy is seen and ignored", || async {
        s.metrics().desk_answers.get_or_create(&server::telemetry::metrics::ReasonLabel { reason: "stale" }).get()
            > stale_before
    })
    .await;
    let view = s.store.request_view(id).await.unwrap().unwrap();
    assert_eq!(view.state, State::Cancelled);
    // A new request; an accept and a done delivered in reverse order still end in done.
    let r =
        student.post_json("/api/requests", json!({ "faculty_id": f, "message": "Another compiler question" })).await;
    let id2 = r.json()["id"].as_i64().unwrap();
    let accept =
        domain::protocol::Payload::Reply { clock: desk.next_clock(), request: id2, action: Action::Accept, note: None };
    let done =
        domain::protocol::Payload::Reply { clock: desk.next_clock(), request: id2, action: Action::Done, note: None };
    desk.send(&done, false).await;
    desk.send(&accept, false).await;
    desk.send(&accept, false).await;
    eventually("done, whatever the order", || async {
        s.store.request_view(id2).await.unwrap().unwrap().state == State::Done
    })
    .await;
}

/// A desk that reboots subscribes again and gets its current queue at once (retained); a snapshot
/// it already showed is never replaced by an older one.
async fn a_rebooted_desk_gets_its_queue_back_from_the_retained_snapshot(broker: Broker, database: Database) {
    let Some(s) = server(broker, database).await else { return };
    let f = s.faculty("Katherine Johnson", "cq4").await;
    let mut desk = s.desk("cq4", 1, 0).await;
    desk.state(true, false).await;
    eventually("Katherine is available", || async {
        s.store.snapshot().await.unwrap().faculty.iter().any(|x| x.id == f && x.status == domain::Status::Available)
    })
    .await;
    let mut student = signed_in(&s, "S-3").await;
    let r =
        student.post_json("/api/requests", json!({ "faculty_id": f, "message": "Orbital mechanics question" })).await;
    assert_eq!(r.status, 201);
    // Published while no desk listened: retained.
    tokio::time::sleep(std::time::Duration::from_millis(300)).await;
    desk.kill();
    let mut rebooted = s.desk("cq4", 2, 0).await;
    rebooted.subscribe_queue().await;
    let snap = rebooted.snapshot_above(0).await;
    assert_eq!(snap.items.len(), 1);
    assert_eq!(snap.faculty.name, "Katherine Johnson");
}

/// Original loss: requests and answers in flight when the server went down were gone. The desk's
/// ack and answers, published while the server is stopped, wait in the server's persistent broker
/// session (acknowledged only after commit) and apply, in order, when it is back; the student's list
/// and stream (resumed from its cursor) show the outcome, and the desk's queue is current again.
async fn answers_sent_while_the_server_is_down_are_applied_after_it_restarts(broker: Broker, database: Database) {
    // A broker that outlives the server: Mosquitto, or the tests' standalone embedded broker.
    let Some(addr) = broker.addr().await else { return };
    let Some(db) = database.fresh().await else { return };
    let s = TestServer::builder().database(db).broker(addr).start().await;
    let f = s.faculty("Mary Jackson", "cq7").await;
    let mut desk = s.desk("cq7", 1, 0).await;
    desk.state(true, false).await;
    desk.subscribe_queue().await;
    eventually("Mary is available", || async {
        s.store.snapshot().await.unwrap().faculty.iter().any(|x| x.id == f && x.status == domain::Status::Available)
    })
    .await;
    let mut student = signed_in(&s, "S-7").await;
    let mut other = signed_in(&s, "S-8").await;
    let mut ids = Vec::new();
    for (b, message) in [(&mut student, "Wind tunnel data, please"), (&mut other, "Another question on drag")] {
        let r = b.post_json("/api/requests", json!({ "faculty_id": f, "message": message })).await;
        assert_eq!(r.status, 201, "{}", r.body);
        ids.push(r.json()["id"].as_i64().unwrap());
    }
    let mut snap = desk.snapshot_above(0).await;
    while snap.items.len() < 2 {
        snap = desk.snapshot_above(snap.version).await;
    }
    assert_eq!(snap.items.iter().map(|i| i.id).collect::<Vec<_>>(), ids);
    let cursor = student.get("/api/me/requests").await.json()["cursor"].as_i64().unwrap();

    let prefix = s.prefix.clone();
    let again = s.stop_for_restart().await;
    // The desk answers while nobody is there to hear it.
    desk.ack(snap.version).await;
    desk.reply(ids[0], Action::Accept, Some("now")).await;
    desk.reply(ids[1], Action::Decline, None).await;
    desk.reply(ids[0], Action::Done, None).await;
    let s = again.start().await;
    assert_eq!(s.prefix, prefix);

    let store = s.store.clone();
    eventually("every answer is applied", || {
        let store = store.clone();
        let ids = ids.clone();
        async move {
            store.request_view(ids[0]).await.unwrap().unwrap().state == State::Done
                && store.request_view(ids[1]).await.unwrap().unwrap().state == State::Declined
        }
    })
    .await;
    // The student, back on a fresh connection from the cursor they held: the replay carries each
    // changed request once, as it is now (never an older step after a newer one).
    let mut student = student.moved_to(&s.url);
    let cookie: Vec<String> = student.cookies.iter().map(|(k, v)| format!("{k}={v}")).collect();
    let mut sse = SseConn::open(&format!("{}/api/me/events?after={cursor}", s.url), &[("cookie", &cookie.join("; "))])
        .await
        .unwrap();
    let newest = s.store.request_view(ids[0]).await.unwrap().unwrap().version;
    assert_eq!(next_state(&mut sse).await, ("done".to_owned(), newest));
    assert_eq!(student.get("/api/me/requests").await.json()["requests"][0]["note"], "now");
    // The desk's queue is current again: both answered, nothing waits.
    let mut after = desk.snapshot_above(snap.version).await;
    while !after.items.is_empty() {
        after = desk.snapshot_above(after.version).await;
    }
}

/// A student never sees anything of another's requests: not by id, not in lists, not on streams.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn one_student_never_sees_anothers_requests() {
    let s = TestServer::start().await;
    let f = s.faculty("Dorothy Vaughan", "cq5").await;
    let mut desk = s.desk("cq5", 1, 0).await;
    desk.state(true, false).await;
    eventually("Dorothy is available", || async {
        s.store.snapshot().await.unwrap().faculty.iter().any(|x| x.id == f && x.status == domain::Status::Available)
    })
    .await;
    let mut a = signed_in(&s, "A-1").await;
    let mut b = signed_in(&s, "B-1").await;
    let mut b_stream = stream(&s, &mut b).await;
    let r = a.post_json("/api/requests", json!({ "faculty_id": f, "message": "A's private question" })).await;
    let id = r.json()["id"].as_i64().unwrap();
    // B tries A's request by id.
    let r = b.post_json(&format!("/api/requests/{id}/cancel"), json!({})).await;
    assert_eq!(r.status, 404);
    assert!(!r.body.contains("private"));
    let list = b.get("/api/me/requests").await;
    assert!(!list.body.contains("private") && list.json()["requests"].as_array().unwrap().is_empty());
    // Nothing of A's appears on B's stream, while B's own request does.
    let r = b.post_json("/api/requests", json!({ "faculty_id": f, "message": "B's own question here" })).await;
    assert_eq!(r.status, 201);
    let ev = loop {
        let ev = b_stream.next_event().await.unwrap();
        if ev.event == "request" {
            break ev;
        }
    };
    assert!(ev.data.contains("B's own question") && !ev.data.contains("private"), "{}", ev.data);
    // Without a session: 401; an admin's session is not a student's: 403.
    let mut nobody = s.browser();
    assert_eq!(nobody.get("/api/me/requests").await.status, 401);
    assert_eq!(
        nobody.post_json("/api/requests", json!({ "faculty_id": f, "message": "anonymous question" })).await.status,
        401
    );
    s.admin("root", "correct horse battery").await;
    let mut admin = s.browser();
    admin.post_json("/api/admin/sign-in", json!({ "username": "root", "password": "correct horse battery" })).await;
    assert_eq!(admin.get("/api/me/requests").await.status, 403);
    assert_eq!(a.get("/api/me/requests").await.json()["requests"].as_array().unwrap().len(), 1);
}

/// The ticket links in a page, as (request id, path `/t/{token}`).
fn ticket_links(html: &str) -> Vec<String> {
    html.split("data-ticket-link=\"")
        .skip(1)
        .filter_map(|rest| rest.split('"').next())
        .filter_map(|url| url.find("/t/").map(|i| url[i..].to_owned()))
        .collect()
}

/// A kiosk shows a QR code of a signed, short-lived link per open request; on a phone (no session)
/// the link opens that one request's progress, live, without the student's words; a forged,
/// altered or expired link opens nothing, and a phone gains no session from it.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_kiosk_ticket_link_follows_one_request_on_a_phone_and_nothing_else() {
    let s = TestServer::start().await;
    let f = s.faculty("Katherine Johnson", "cq9").await;
    let g = s.faculty("Mary Jackson", "cq10").await;
    let mut desk = s.desk("cq9", 1, 0).await;
    desk.state(true, false).await;
    desk.subscribe_queue().await;
    eventually("Katherine is available", || async {
        s.store.snapshot().await.unwrap().faculty.iter().any(|x| x.id == f && x.status == domain::Status::Available)
    })
    .await;
    s.student("S-1", "Grace", "135790", Some("04A1B2C3")).await;
    let (_, code) = s.auth().add_kiosk("Lobby", "test", &auth::Client::default()).await.unwrap();
    let mut kiosk = s.browser();
    assert_eq!(kiosk.post_json("/api/kiosk/enrol", json!({ "code": code })).await.status, 204);
    assert_eq!(kiosk.post_json("/api/kiosk/card-sign-in", json!({ "card": "04A1B2C3" })).await.status, 204);
    let r = kiosk
        .post_json(
            "/api/requests",
            json!({ "faculty_id": f, "course": "MA201", "message": "Orbital mechanics homework" }),
        )
        .await;
    assert_eq!(r.status, 201, "{}", r.body);
    let (id, ticket) = (r.json()["id"].as_i64().unwrap(), r.json()["ticket"].as_str().unwrap().to_owned());
    let r = kiosk
        .post_json("/api/requests", json!({ "faculty_id": g, "message": "A second, private question", "hold": true }))
        .await;
    assert_eq!(r.status, 201, "{}", r.body);
    let other = r.json()["id"].as_i64().unwrap();

    // At the kiosk, /me shows one QR code per open request.
    let page = kiosk.get("/me").await;
    assert_eq!(page.status, 200);
    assert_eq!(page.body.matches("<svg").count(), 2, "a QR code per open request");
    let links = ticket_links(&page.body);
    assert_eq!(links.len(), 2, "{links:?}");
    let link = links.iter().find(|l| l.starts_with(&format!("/t/{id}."))).expect("the first request's link").clone();

    // The phone opens it without a session: the ticket, the faculty member, the state; not the words.
    let mut phone = s.browser();
    let t = phone.get(&link).await;
    assert_eq!(t.status, 200);
    assert!(t.body.contains(&ticket) && t.body.contains("Katherine Johnson"), "{}", t.body);
    assert!(!t.body.contains("Orbital") && !t.body.contains("MA201") && !t.body.contains("private"));
    let token = &link["/t/".len()..];
    let j = phone.get(&format!("/api/tickets/{token}")).await;
    assert_eq!(j.status, 200, "{}", j.body);
    let j = j.json();
    assert_eq!((j["request"]["id"].as_i64(), j["request"]["message"].as_str()), (Some(id), Some("")));
    assert!(j["request"]["course"].is_null());
    let (follow, cursor) = (j["follow"].as_str().unwrap().to_owned(), j["cursor"].as_i64().unwrap());
    assert_eq!(phone.get("/api/me/requests").await.status, 401, "a ticket link is not a session");

    // Live: the desk's answer reaches the phone; the student's other request never does.
    let mut sse = SseConn::open(&format!("{}/api/tickets/{follow}/events?after={cursor}", s.url), &[]).await.unwrap();
    assert_eq!(kiosk.post_json(&format!("/api/requests/{other}/cancel"), json!({})).await.status, 200);
    let snap = desk.snapshot_above(0).await;
    desk.ack(snap.version).await;
    desk.reply(id, Action::Accept, Some("room 4")).await;
    let mut states = Vec::new();
    while states.last().map(String::as_str) != Some("accepted") {
        let ev = sse.next_event().await.expect("the ticket's stream is open");
        if ev.event == "request" {
            let v: serde_json::Value = serde_json::from_str(&ev.data).unwrap();
            assert_eq!(v["id"].as_i64(), Some(id), "only the ticket's request: {}", ev.data);
            assert!(!ev.data.contains("Orbital"), "{}", ev.data);
            states.push(v["state"].as_str().unwrap().to_owned());
        }
    }
    // The ack and the answer may commit in one batch: then the stream shows only the newer state.
    assert!(states == ["delivered", "accepted"] || states == ["accepted"], "{states:?}");

    // Altered, forged, re-targeted or expired links open nothing.
    let mut bad = token.to_owned();
    let last = bad.pop().unwrap();
    bad.push(if last == '0' { '1' } else { '0' });
    let (_, rest) = token.split_once('.').unwrap();
    for forged in [bad.clone(), format!("{other}.{rest}"), "1.99999999999999.00".into(), "not-a-token".into()] {
        for path in [format!("/t/{forged}"), format!("/api/tickets/{forged}"), format!("/api/tickets/{forged}/events")]
        {
            let r = phone.get(&path).await;
            assert_eq!(r.status, 404, "{path}: {}", r.body);
            // The ticket as a page or JSON shows it ("T1" alone also turns up in random nonces).
            let shown = [format!(">{ticket}<"), format!("\"{ticket}\"")];
            assert!(!r.body.contains("Katherine") && !shown.iter().any(|t| r.body.contains(t)), "{path}");
        }
    }
    let expired = s.auth().tickets().await.unwrap().sign(id, store::now_ms() - 1);
    assert_eq!(phone.get(&format!("/t/{expired}")).await.status, 410);
    let r = phone.get(&format!("/api/tickets/{expired}/events")).await;
    assert_eq!((r.status, r.json()["error"].as_str()), (410, Some("gone")));

    // On the student's own phone (signed in there, not at a kiosk) /me has no QR codes.
    let mut own = signed_in(&s, "S-2").await;
    own.post_json("/api/requests", json!({ "faculty_id": f, "message": "Another question here" })).await;
    assert!(ticket_links(&own.get("/me").await.body).is_empty());
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn broken_rules_come_back_with_the_field_and_a_clear_message() {
    let s = TestServer::start().await;
    let f = s.faculty("Hedy Lamarr", "cq6").await;
    let mut b = signed_in(&s, "S-9").await;
    let r = b.post_json("/api/requests", json!({ "faculty_id": f, "message": "too short" })).await;
    assert_eq!((r.status, r.json()["field"].as_str()), (400, Some("message")));
    let r = b
        .post_json("/api/requests", json!({ "faculty_id": f, "course": "X1", "message": "A long enough message" }))
        .await;
    assert_eq!((r.status, r.json()["field"].as_str()), (400, Some("course")));
    // Hedy's desk has said nothing: offline. Without hold, refused; with hold, held.
    let r = b.post_json("/api/requests", json!({ "faculty_id": f, "message": "A long enough message" })).await;
    assert_eq!(r.status, 409, "{}", r.body);
    assert!(r.json()["message"].as_str().unwrap().contains("offline"));
    let r = b
        .post_json("/api/requests", json!({ "faculty_id": f, "message": "A long enough message", "hold": true }))
        .await;
    assert_eq!((r.status, r.json()["state"].as_str()), (201, Some("held")));
    let r = b
        .post_json("/api/requests", json!({ "faculty_id": f, "message": "A long enough message", "hold": true }))
        .await;
    assert_eq!(r.status, 409, "one open request per faculty member");
    let r = b.post_json("/api/requests", json!({ "faculty_id": 424242, "message": "A long enough message" })).await;
    assert_eq!(r.status, 404);
    // Hedy comes in: the held request joins the queue by itself.
    let mut desk = s.desk("cq6", 1, 0).await;
    desk.state(true, false).await;
    let store = s.store.clone();
    let sid = store.student_by_number("S-9").await.unwrap().unwrap().id;
    eventually("the held request is released", || {
        let store = store.clone();
        async move { store.student_requests(sid).await.unwrap().requests[0].state == State::Queued }
    })
    .await;
    assert_eq!(b.get("/api/me/requests").await.json()["requests"][0]["state"], "queued");
}

/// `consultease desk-sim` speaks the whole protocol: it shows (and acknowledges) the queue it is
/// sent, its buttons answer, and in its automatic mode it answers by itself.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_simulated_desk_acknowledges_its_queue_and_answers() {
    use server::desk_sim::{Presence, SimDesk, run_random};
    let s = TestServer::start().await;
    let f = s.faculty("Frances Allen", "sim1").await;
    let g = s.faculty("John Backus", "sim2").await;
    let here = Presence { present: true, busy: false };
    let desk = SimDesk::connect(&s.broker(), &s.prefix, "sim1", 1, here).await.unwrap();
    let auto = SimDesk::connect(&s.broker(), &s.prefix, "sim2", 1, here).await.unwrap();
    eventually("both are available", || async {
        let snap = s.store.snapshot().await.unwrap();
        [f, g].iter().all(|id| snap.faculty.iter().any(|x| x.id == *id && x.status == domain::Status::Available))
    })
    .await;
    let mut student = signed_in(&s, "S-11").await;
    let r = student.post_json("/api/requests", json!({ "faculty_id": f, "message": "Optimising compilers" })).await;
    let id = r.json()["id"].as_i64().unwrap();
    let store = s.store.clone();
    let state = |id: i64| {
        let store = store.clone();
        async move { store.request_view(id).await.unwrap().unwrap().state }
    };
    eventually("the desk shows it and says so", || async { state(id).await == State::Delivered }).await;
    assert_eq!(desk.queue().borrow().as_ref().unwrap().items[0].id, id);
    desk.reply(id, Action::Accept, Some("2 min".into())).await.unwrap();
    eventually("accepted", || async { state(id).await == State::Accepted }).await;

    // Automatic mode: accepted a few seconds after it arrives, then done.
    let stop = tokio_util::sync::CancellationToken::new();
    let long = std::time::Duration::from_secs(3600);
    tokio::spawn(run_random(vec![auto], long, long, stop.clone()));
    let r = student.post_json("/api/requests", json!({ "faculty_id": g, "message": "FORTRAN in practice" })).await;
    let id2 = r.json()["id"].as_i64().unwrap();
    eventually("the automatic desk accepts", || async { state(id2).await == State::Accepted }).await;
    stop.cancel();
}

/// Regression (found measuring BENCHMARKS.md row 8b‴): the server subscribed to `P/desk/+/+`, which
/// also matches the queue snapshots it publishes itself, so every snapshot came back to it and was
/// counted and logged as a rejected desk message (`bad_topic`) — once a second in normal use, and
/// 4 of every 10 messages its ingest read under load.
async fn defect_the_servers_own_queue_snapshots_came_back_as_rejected_desk_messages(broker: Broker) {
    let Some(s) = server(broker, Database::Sqlite).await else { return };
    let (f, mut desk) = available_desk(&s, "Grace Hopper", "cq9").await;
    let mut student = signed_in(&s, "S-9").await;
    let r =
        student.post_json("/api/requests", json!({ "faculty_id": f, "message": "Compilers, briefly please" })).await;
    assert_eq!(r.status, 201, "{}", r.body);
    let snap = desk.snapshot_above(0).await;
    assert_eq!(snap.items.len(), 1);
    // The snapshot reached the desk; had it come back to the server, it would have by now.
    tokio::time::sleep(std::time::Duration::from_millis(300)).await;
    let m = s.metrics();
    assert_eq!(m.rejected("bad_topic"), 0);
    assert_eq!(m.mqtt_received.get(), 2, "the desk's announcement and state, nothing of the server's own");
}

/// A server upgraded from a build that subscribed to `P/desk/+/+` finds that filter in its
/// persistent session at the broker: it unsubscribes from it when it connects, so its own
/// snapshots do not come back to it there either.
async fn a_session_from_an_older_server_loses_its_catch_all_filter(broker: Broker) {
    let Some(addr) = broker.addr().await else { return };
    let s = TestServer::builder().broker(addr.clone()).start().await;
    let prefix = s.prefix.clone();
    let again = s.stop_for_restart().await;
    // What the older build left in the session: the catch-all filter.
    let mut opts = addr.mqtt_options(again.client_id());
    opts.set_clean_session(false);
    let (client, mut events) = rumqttc::AsyncClient::new(opts, 10);
    client.subscribe(format!("{prefix}/desk/+/+"), rumqttc::QoS::AtLeastOnce).await.unwrap();
    tokio::time::timeout(std::time::Duration::from_secs(10), async {
        loop {
            if let rumqttc::Event::Incoming(rumqttc::Packet::SubAck(_)) = events.poll().await.unwrap() {
                break;
            }
        }
    })
    .await
    .expect("the old filter is subscribed");
    client.disconnect().await.unwrap();
    while events.poll().await.is_ok() {}

    let s = again.start().await;
    let (f, mut desk) = available_desk(&s, "Katherine Johnson", "cq8").await;
    let mut student = signed_in(&s, "S-8").await;
    let r =
        student.post_json("/api/requests", json!({ "faculty_id": f, "message": "Orbital mechanics, please" })).await;
    assert_eq!(r.status, 201, "{}", r.body);
    assert_eq!(desk.snapshot_above(0).await.items.len(), 1);
    tokio::time::sleep(std::time::Duration::from_millis(300)).await;
    assert_eq!(s.metrics().rejected("bad_topic"), 0, "the server's own snapshot did not come back");
}
