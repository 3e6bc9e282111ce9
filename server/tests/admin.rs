//! The admin JSON API as two admins at once, an attacker without the role, and a board watching:
//! versioned edits never overwrite silently, every edit is audited with its before and after, and
//! the board follows live.

use reqwest::Method;
use serde_json::{Value, json};
use testkit::sse::SseConn;
use testkit::{Browser, TestServer};

const PASSWORD: &str = "correct horse battery staple";

async fn admin(s: &TestServer, name: &str) -> Browser {
    s.admin(name, PASSWORD).await;
    let mut b = s.browser();
    let r = b.post_json("/api/admin/sign-in", json!({ "username": name, "password": PASSWORD })).await;
    assert_eq!(r.status, 204, "{}", r.body);
    b
}

async fn put(b: &mut Browser, path: &str, body: Value) -> testkit::Reply {
    b.send(Method::PUT, path, Some(body.to_string()), &[("content-type", "application/json")]).await
}

/// Two admins open the same faculty member; the first saves; the second's save (on the old
/// version) is told, with the current row, and nothing of the first is lost. Field errors name the
/// field; a duplicate email is a conflict message, not a 500; every save is audited.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn two_admins_edit_one_faculty_member_and_the_second_is_told() {
    let s = TestServer::start().await;
    let id = s.faculty("Ada Lovelace", "ad1").await;
    let other = s.faculty("Grace Hopper", "ad2").await;
    let mut a = admin(&s, "alice").await;
    let mut b = admin(&s, "bob").await;
    let opened_a = a.get(&format!("/api/admin/faculty/{id}")).await.json();
    let opened_b = b.get(&format!("/api/admin/faculty/{id}")).await.json();
    assert_eq!(opened_a, opened_b);
    let v = opened_a["version"].as_i64().unwrap();

    // The board is watching.
    let cursor = s.store.newest_event_id().await.unwrap();
    let mut board = SseConn::open(&format!("{}/api/events?after={cursor}", s.url), &[]).await.unwrap();

    let r = put(
        &mut a,
        &format!("/api/admin/faculty/{id}"),
        json!({
            "version": v, "name": "Ada King", "department": "Computing", "email": "ada@uni.example", "room": "B-204"
        }),
    )
    .await;
    assert_eq!(r.status, 200, "{}", r.body);
    let saved = r.json();
    assert_eq!(
        (saved["name"].as_str(), saved["room"].as_str(), saved["version"].as_i64()),
        (Some("Ada King"), Some("B-204"), Some(v + 1))
    );
    let ev = loop {
        let ev = board.next_event().await.unwrap();
        if ev.event == "faculty" {
            break ev;
        }
    };
    assert!(ev.data.contains("Ada King") && ev.data.contains("Computing"), "the board follows live: {}", ev.data);

    // Bob saves over the version he opened: a conflict with the current row; Alice's save stands.
    let r = put(
        &mut b,
        &format!("/api/admin/faculty/{id}"),
        json!({
            "version": v, "name": "Ada Lovelace", "department": "Mathematics"
        }),
    )
    .await;
    assert_eq!(r.status, 409, "{}", r.body);
    let body = r.json();
    assert_eq!(body["error"], "conflict");
    assert_eq!(
        (body["current"]["name"].as_str(), body["current"]["version"].as_i64()),
        (Some("Ada King"), Some(v + 1))
    );
    let now = a.get(&format!("/api/admin/faculty/{id}")).await.json();
    assert_eq!(
        (now["name"].as_str(), now["department"].as_str(), now["email"].as_str()),
        (Some("Ada King"), Some("Computing"), Some("ada@uni.example"))
    );
    // With the current version, his save goes through.
    let r = put(
        &mut b,
        &format!("/api/admin/faculty/{id}"),
        json!({
            "version": v + 1, "name": "Ada King", "department": "Mathematics", "email": "ada@uni.example"
        }),
    )
    .await;
    assert_eq!(r.status, 200, "{}", r.body);

    // A field error names the field; a taken email is a clear conflict; an unknown id a 404.
    let r =
        put(&mut a, &format!("/api/admin/faculty/{id}"), json!({ "version": v + 2, "name": " ", "department": "X" }))
            .await;
    assert_eq!((r.status, r.json()["field"].as_str()), (400, Some("name")));
    let r = put(
        &mut a,
        &format!("/api/admin/faculty/{id}"),
        json!({ "version": v + 2, "name": "Ada", "department": "X", "email": "not-an-email" }),
    )
    .await;
    assert_eq!((r.status, r.json()["field"].as_str()), (400, Some("email")));
    let g = a.get(&format!("/api/admin/faculty/{other}")).await.json();
    let r = put(
        &mut a,
        &format!("/api/admin/faculty/{other}"),
        json!({
            "version": g["version"], "name": "Grace Hopper", "department": "Navy", "email": "ada@uni.example"
        }),
    )
    .await;
    assert_eq!(r.status, 409, "{}", r.body);
    assert!(r.json()["message"].as_str().unwrap().contains("email"), "{}", r.body);
    assert_eq!(
        put(&mut a, "/api/admin/faculty/987654", json!({ "version": 1, "name": "X", "department": "Y" })).await.status,
        404
    );

    // Audited: who, what, before and after; the refused saves wrote nothing.
    let log = s.store.audit_log(50).await.unwrap();
    let edits: Vec<_> = log.iter().filter(|e| e.action == "faculty_edited").collect();
    assert_eq!(edits.len(), 2, "two saves, two rows");
    let alice = edits.iter().find(|e| e.actor == "admin:alice").expect("Alice's save");
    let detail: Value = serde_json::from_str(alice.detail.as_deref().unwrap()).unwrap();
    assert_eq!(
        (detail["before"]["name"].as_str(), detail["after"]["name"].as_str()),
        (Some("Ada Lovelace"), Some("Ada King"))
    );
    assert_eq!(alice.subject.as_deref(), Some(&*format!("faculty:{id}")));
    assert!(alice.client_addr.is_some());
}

/// No session: 401; a student's session: 403; a cross-site PUT: refused — and nothing changes.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn only_an_admin_may_read_or_edit_and_only_from_the_site() {
    let s = TestServer::start().await;
    let id = s.faculty("Ada Lovelace", "ad3").await;
    let path = format!("/api/admin/faculty/{id}");
    let edit = json!({ "version": 1, "name": "Mallory", "department": "X" });
    let mut nobody = s.browser();
    assert_eq!(nobody.get(&path).await.status, 401);
    assert_eq!(put(&mut nobody, &path, edit.clone()).await.status, 401);
    s.student("S-1", "Eve", "135790", None).await;
    let mut student = s.browser();
    assert_eq!(
        student.post_json("/api/student/sign-in", json!({ "number": "S-1", "pin": "135790" })).await.status,
        204
    );
    assert_eq!(student.get(&path).await.status, 403);
    assert_eq!(put(&mut student, &path, edit.clone()).await.status, 403);
    let mut a = admin(&s, "alice").await;
    let version = a.get(&path).await.json()["version"].clone();
    let forged = json!({ "version": version, "name": "Mallory", "department": "X" });
    let r = a
        .send(
            Method::PUT,
            &path,
            Some(forged.to_string()),
            &[
                ("content-type", "application/json"),
                ("sec-fetch-site", "cross-site"),
                ("origin", "https://evil.example"),
            ],
        )
        .await;
    assert_eq!(r.status, 403, "a cross-site PUT is refused even with the admin's cookie");
    assert_eq!(a.get(&path).await.json()["name"], "Ada Lovelace");
    assert!(s.store.audit_log(50).await.unwrap().iter().all(|e| e.action != "faculty_edited"));
}

/// The next `faculty` event on the board's stream.
async fn next_faculty(board: &mut SseConn) -> Value {
    loop {
        let ev = board.next_event().await.expect("the board's stream is open");
        if ev.event == "faculty" {
            return serde_json::from_str(&ev.data).unwrap();
        }
    }
}

/// "In class until …": an admin's override ranks above the desk, shows its note and end on the
/// board live, ends by itself at its end time — also across a server restart — and can be cleared
/// early; each step is audited. Bad input names its field; a student may not set one.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_override_shows_live_ends_by_itself_even_after_a_restart_and_can_be_cleared() {
    let s = TestServer::start().await;
    let id = s.faculty("Ada Lovelace", "ov1").await;
    let mut desk = s.desk("ov1", 1, 0).await;
    desk.state(true, false).await;
    testkit::eventually("available", || async {
        s.store.faculty(id).await.unwrap().is_some_and(|f| f.status == domain::Status::Available)
    })
    .await;
    let mut a = admin(&s, "alice").await;
    let path = format!("/api/admin/faculty/{id}/override");
    let cursor = s.store.newest_event_id().await.unwrap();
    let mut board = SseConn::open(&format!("{}/api/events?after={cursor}", s.url), &[]).await.unwrap();

    // Bad input, and a student, change nothing.
    let past = store::now_ms() - 1;
    let r = put(&mut a, &path, json!({ "status": "busy", "until": past })).await;
    assert_eq!((r.status, r.json()["field"].as_str()), (400, Some("until")));
    let r = put(&mut a, &path, json!({ "status": "busy", "note": "x".repeat(81) })).await;
    assert_eq!((r.status, r.json()["field"].as_str()), (400, Some("note")));
    s.student("S-1", "Eve", "135790", None).await;
    let mut eve = s.browser();
    eve.post_json("/api/student/sign-in", json!({ "number": "S-1", "pin": "135790" })).await;
    assert_eq!(put(&mut eve, &path, json!({ "status": "away" })).await.status, 403);

    // Set: busy, "In class", for a moment; the board sees it; the desk cannot undo it.
    let until = store::now_ms() + 2_500;
    let r = put(&mut a, &path, json!({ "status": "busy", "note": "In class", "until": until })).await;
    assert_eq!(r.status, 200, "{}", r.body);
    let ev = next_faculty(&mut board).await;
    assert_eq!(
        (ev["status"].as_str(), ev["note"].as_str(), ev["until"].as_i64()),
        (Some("busy"), Some("In class"), Some(until))
    );
    desk.state(true, false).await;
    tokio::time::sleep(std::time::Duration::from_millis(300)).await;
    let listed = s.browser().get("/api/faculty").await.json();
    let row = listed["faculty"].as_array().unwrap().iter().find(|f| f["id"] == id).unwrap().clone();
    assert_eq!(
        (row["status"].as_str(), row["note"].as_str()),
        (Some("busy"), Some("In class")),
        "the override ranks above the desk"
    );

    // Restart before the end time: it still ends, once, by itself, and the board follows live.
    let s = s.stop_for_restart().await.start().await;
    let mut board =
        SseConn::open(&format!("{}/api/events?after={}", s.url, s.store.newest_event_id().await.unwrap()), &[])
            .await
            .unwrap();
    let ev = next_faculty(&mut board).await;
    assert!(store::now_ms() >= until - 50, "ended at its end time, not before");
    assert_eq!((ev["status"].as_str(), ev.get("note"), ev.get("until")), (Some("available"), None, None), "{ev}");
    tokio::time::sleep(std::time::Duration::from_millis(1_500)).await;
    let log = s.store.audit_log(50).await.unwrap();
    assert_eq!(log.iter().filter(|e| e.action == "override_expired").count(), 1, "once");

    // Until cleared: set, then cleared early.
    let mut a = a.moved_to(&s.url);
    let path = format!("/api/admin/faculty/{id}/override");
    let r = put(&mut a, &path, json!({ "status": "away", "note": "At a conference" })).await;
    assert_eq!((r.status, r.json()["status"].as_str(), r.json().get("until")), (200, Some("away"), None));
    assert_eq!(next_faculty(&mut board).await["note"], "At a conference");
    let r = a.send(Method::DELETE, &path, None, &[]).await;
    assert_eq!((r.status, r.json()["status"].as_str()), (200, Some("available")), "{}", r.body);
    assert_eq!(next_faculty(&mut board).await["status"], "available");
    let log = s.store.audit_log(50).await.unwrap();
    for action in ["override_set", "override_cleared"] {
        assert!(log.iter().any(|e| e.action == action && e.actor == "admin:alice"), "{action} audited");
    }
}

/// The audit log as an admin reads it: filtered, as JSON or CSV with a header row; what a stranger
/// typed (a failed sign-in records the name tried) can never run as a spreadsheet formula; only
/// admins read it.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_audit_log_exports_as_csv_safely_and_only_to_admins() {
    let s = TestServer::start().await;
    let mut stranger = s.browser();
    let evil = "=HYPERLINK(\"http://evil.example\",\"x\")";
    // The user agent is recorded as sent.
    let body = json!({ "username": "nobody", "password": "wrong password here" }).to_string();
    let r = stranger
        .send(
            Method::POST,
            "/api/admin/sign-in",
            Some(body),
            &[("content-type", "application/json"), ("user-agent", evil)],
        )
        .await;
    assert_eq!(r.status, 401);
    let mut a = admin(&s, "alice").await;
    let id = s.faculty("Ada Lovelace", "au1").await;
    let r = put(
        &mut a,
        &format!("/api/admin/faculty/{id}/override"),
        json!({ "status": "away", "note": "Out, back at 3" }),
    )
    .await;
    assert_eq!(r.status, 200);

    let csv = a.get("/api/admin/audit.csv").await;
    assert_eq!(csv.status, 200);
    assert!(csv.header("content-type").unwrap().starts_with("text/csv"));
    let mut lines = csv.body.lines();
    assert_eq!(lines.next(), Some("id,at,actor,action,subject,detail,client_addr,user_agent"));
    assert!(csv.body.contains(",admin:alice,override_set,faculty:"), "{}", csv.body);
    assert!(csv.body.contains("\"'=HYPERLINK(\"\"http://evil.example\"\",\"\"x\"\")\""), "defused: {}", csv.body);
    assert!(!csv.body.contains(",=HYPERLINK"), "never a bare formula");
    assert!(csv.body.lines().skip(1).all(|l| l.split(',').nth(1).is_some_and(|t| t.ends_with('Z'))), "UTC times");

    // Filters, as query parameters.
    let only = a.get("/api/admin/audit?action=override_set").await.json();
    let entries = only["entries"].as_array().unwrap();
    assert_eq!(entries.len(), 1);
    assert_eq!(entries[0]["actor"], "admin:alice");
    let later = store::now_ms() + 60_000;
    assert!(a.get(&format!("/api/admin/audit?from={later}")).await.json()["entries"].as_array().unwrap().is_empty());
    let filtered = a.get("/api/admin/audit.csv?actor=admin:alice").await.body;
    assert!(filtered.lines().skip(1).all(|l| l.contains(",admin:alice,")), "{filtered}");

    // Only admins.
    assert_eq!(stranger.get("/api/admin/audit.csv").await.status, 401);
    s.student("S-1", "Eve", "135790", None).await;
    let mut eve = s.browser();
    eve.post_json("/api/student/sign-in", json!({ "number": "S-1", "pin": "135790" })).await;
    assert_eq!(eve.get("/api/admin/audit.csv").await.status, 403);
    assert_eq!(eve.get("/api/admin/audit").await.status, 403);
}
