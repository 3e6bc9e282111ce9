//! The admin dashboard's server functions, called directly the way an attacker (or a script)
//! would, not through the pages: every `admin_…` function refuses no session (401), a student's
//! session (403) and a cross-site request (403) and changes nothing; for an admin each one works,
//! audits what it changed in the same transaction, and a desk registered from the dashboard
//! connects with the password it was shown.

use reqwest::Method;
use serde_json::{Value, json};
use testkit::{Browser, TestServer};

const PASSWORD: &str = "correct horse battery staple";

/// Every admin server function the app registers (found, not listed by hand: a new one is
/// covered the day it is written).
fn admin_functions() -> Vec<String> {
    let mut paths: Vec<String> = leptos::server_fn::axum::server_fn_paths()
        .map(|(path, _)| path.to_owned())
        .filter(|p| p.starts_with("/api/admin_") && p != "/api/admin_sign_in")
        .collect();
    paths.sort();
    paths.dedup();
    paths
}

/// One form body that fills every admin function's arguments (unknown fields are ignored).
fn body(faculty: i64, deskless: i64, desk: &str) -> String {
    format!(
        "id={faculty}&version=1&name=Mallory+Was+Here&department=Intrusion&status=away&note=pwned&minutes=0\
         &desk={desk}&faculty_id={deskless}&actor=&action=&from=&to=&number=S-77&email=&card=&pin=864213\
         &csv=number%2Cname%0AS-78%2CMallory&confirm=on&skip_invalid=on&reason=pwned&faculty=&active=true"
    )
}

async fn call(b: &mut Browser, path: &str, body: &str, extra: &[(&str, &str)]) -> testkit::Reply {
    let mut headers = vec![("content-type", "application/x-www-form-urlencoded"), ("accept", "application/json")];
    headers.extend_from_slice(extra);
    b.send(Method::POST, path, Some(body.to_owned()), &headers).await
}

async fn admin(s: &TestServer, name: &str) -> Browser {
    s.admin(name, PASSWORD).await;
    let mut b = s.browser();
    let r = b.post_json("/api/admin/sign-in", json!({ "username": name, "password": PASSWORD })).await;
    assert_eq!(r.status, 204, "{}", r.body);
    b
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn every_admin_server_function_refuses_anyone_but_an_admin() {
    let s = TestServer::start().await;
    let id = s.faculty("Ada Lovelace", "ap1").await;
    let other = s.faculty("Grace Hopper", "ap2").await;
    // Without a desk: the forged "register desk" names them.
    let hedy = store::NewFaculty { name: "Hedy".into(), department: "X".into(), email: None };
    let deskless = s.store.add_faculty(&hedy).await.unwrap();
    s.student("S-1", "Eve Student", "123456", None).await;
    let mut student = s.browser();
    let r = student.post_json("/api/student/sign-in", json!({ "number": "S-1", "pin": "123456" })).await;
    assert_eq!(r.status, 204, "{}", r.body);
    let mut admin = admin(&s, "ada").await;

    let functions = admin_functions();
    assert!(functions.len() >= 15, "the admin functions are found: {functions:?}");
    let before = s.store.faculty_record(id).await.unwrap();
    let audit_before = s.store.audit_log(1000).await.unwrap().len();
    let desks_before = s.store.list_desks().await.unwrap();
    let body = body(other, deskless, "mallory-desk");

    for f in &functions {
        let r = call(&mut s.browser(), f, &body, &[]).await;
        assert_eq!(r.status, 401, "{f} without a session: {}", r.body);
        let r = call(&mut student, f, &body, &[]).await;
        assert_eq!(r.status, 403, "{f} with a student's session: {}", r.body);
        assert!(!r.body.contains("Mallory") && !r.body.contains("Ada"), "{f} shows nothing: {}", r.body);
        // The admin's own session, from another site's page (a forged form post).
        let r =
            call(&mut admin, f, &body, &[("origin", "https://evil.example"), ("sec-fetch-site", "cross-site")]).await;
        assert_eq!(r.status, 403, "{f} cross-site: {}", r.body);
    }
    assert_eq!(s.store.faculty_record(id).await.unwrap(), before, "nothing changed");
    assert_eq!(s.store.list_desks().await.unwrap(), desks_before);
    assert!(s.store.list_kiosks().await.unwrap().is_empty());
    assert_eq!(s.store.list_students().await.unwrap().len(), 1, "no student added");
    let audit = s.store.audit_log(1000).await.unwrap();
    assert_eq!(audit.len(), audit_before, "no admin action was recorded: {:?}", &audit[..audit.len() - audit_before]);

    // The same calls from the admin reach every function: the refusals above were not a bad body.
    // (In name order, so the desk is registered before its clock is reset.)
    for f in &functions {
        let r = call(&mut admin, f, &body, &[]).await;
        // (A 404 from the function itself names what it did not find: kiosk 2 does not exist.)
        let ran = !matches!(r.status, 401 | 403 | 405) && (r.status != 404 || r.body.contains("NotFound"));
        assert!(ran, "{f} as an admin: {} {}", r.status, r.body);
    }
    let log = s.store.audit_log(1000).await.unwrap();
    for action in [
        "faculty_added",
        "faculty_edited",
        "override_set",
        "desk_registered",
        "kiosk_added",
        "student_added",
        "student_pin_set",
        "students_imported",
    ] {
        assert!(
            log.iter().any(|e| e.action == action && e.actor == "admin:ada"),
            "{action} is audited as the admin: {:?}",
            log.iter().map(|e| (&e.actor, &e.action)).collect::<Vec<_>>()
        );
    }
}

/// What the pages do, as calls: add a faculty member, edit it twice from two admins (the stale one
/// is a typed conflict with the current row, nothing overwritten; "keep mine" at the new version
/// saves), register a desk and connect it with the password shown, reset its clock, read the audit.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_dashboard_functions_edit_with_conflicts_and_register_a_desk_that_connects() {
    let s = TestServer::builder().desk_credentials_required().start().await;
    let mut a = admin(&s, "alice").await;
    let mut b = admin(&s, "bob").await;

    let r = call(&mut a, "/api/admin_faculty_create", "name=Hedy+Lamarr&department=Engineering&email=&room=E-12", &[])
        .await;
    assert_eq!(r.status, 200, "{}", r.body);
    let created = r.json();
    let id = created["id"].as_i64().unwrap();
    assert_eq!((created["room"].as_str(), created["email"].as_str()), (Some("E-12"), None));
    let r = call(&mut a, "/api/admin_faculty_create", "name=+&department=Engineering", &[]).await;
    assert_eq!((r.status, field(&r.json())), (400, Some("name".into())), "{}", r.body);

    let v = created["version"].as_i64().unwrap();
    let save = |version: i64, dept: &str| format!("id={id}&version={version}&name=Hedy+Lamarr&department={dept}");
    let r = call(&mut a, "/api/admin_faculty_save", &save(v, "Radio"), &[]).await;
    assert_eq!(r.status, 200, "{}", r.body);
    assert_eq!(r.json()["Saved"]["department"], "Radio");
    // Bob's form still has the version he opened.
    let r = call(&mut b, "/api/admin_faculty_save", &save(v, "Film"), &[]).await;
    assert_eq!(r.status, 200, "an answer the page shows, not an error: {}", r.body);
    let theirs: Value = r.json()["Conflict"].clone();
    assert_eq!((theirs["department"].as_str(), theirs["version"].as_i64()), (Some("Radio"), Some(v + 1)));
    assert_eq!(s.store.faculty_record(id).await.unwrap().unwrap().fields.department, "Radio", "nothing overwritten");
    // "Keep mine": the same values at the version he was shown.
    let r = call(&mut b, "/api/admin_faculty_save", &save(v + 1, "Film"), &[]).await;
    assert_eq!((r.status, r.json()["Saved"]["version"].as_i64()), (200, Some(v + 2)), "{}", r.body);

    let r = call(&mut a, "/api/admin_desk_register", &format!("desk=hedy-desk&faculty_id={id}"), &[]).await;
    assert_eq!(r.status, 200, "{}", r.body);
    let password = r.json()["password"].as_str().unwrap().to_owned();
    assert!(password.len() >= 20);
    let r = call(&mut a, "/api/admin_desk_register", &format!("desk=second&faculty_id={id}"), &[]).await;
    assert_eq!((r.status, field(&r.json())), (400, Some("desk".into())), "one desk each: {}", r.body);
    let r = call(&mut a, "/api/admin_desk_register", "desk=bad%20id&faculty_id=1", &[]).await;
    assert_eq!((r.status, field(&r.json())), (400, Some("desk".into())), "{}", r.body);

    // The desk unit connects with what the page showed, and its report reaches the board.
    let mut desk = s.desk_with_password("hedy-desk", &password, 1, 0).await;
    desk.state(true, false).await;
    testkit::eventually("the registered desk's report applies", || async {
        s.store.faculty(id).await.unwrap().is_some_and(|f| f.status == domain::Status::Available)
    })
    .await;
    // Its heartbeat tells what it runs; the desk list shows it.
    let info = domain::protocol::DeskInfo {
        firmware: Some("2.1.0".into()),
        rssi: Some(-58),
        uptime_s: Some(7200),
        ..Default::default()
    };
    let clock = desk.next_clock();
    desk.send(&domain::protocol::Payload::Heartbeat { clock, info }, false).await;
    let line = || async {
        let mut a = s.browser();
        a.cookies = b.cookies.clone();
        let desks = call(&mut a, "/api/admin_desks", "", &[]).await.json();
        desks["desks"].as_array().unwrap().iter().find(|d| d["id"] == "hedy-desk").cloned().unwrap()
    };
    testkit::eventually("the heartbeat's facts are listed", || async {
        line().await["info"].as_str() == Some("firmware 2.1.0 · -58 dBm · up 2 h")
    })
    .await;
    let line = line().await;
    assert_eq!((line["online"].as_bool(), line["has_credential"].as_bool()), (Some(true), Some(true)), "{line}");
    assert!(line["clock"].as_str().is_some_and(|c| c.starts_with("1:")), "{line}");
    let r = call(&mut a, "/api/admin_desk_reset_clock", "desk=hedy-desk", &[]).await;
    assert_eq!(r.status, 200, "{}", r.body);
    let r = call(&mut a, "/api/admin_desk_reset_clock", "desk=nope", &[]).await;
    assert_eq!(r.status, 404, "{}", r.body);

    // The audit page's filter: by actor and action, by UTC date (a bad date names its field).
    let r = call(&mut a, "/api/admin_audit", "actor=admin%3Abob&action=faculty_edited", &[]).await;
    let rows = r.json();
    assert_eq!(rows.as_array().map(Vec::len), Some(1), "{rows}");
    assert!(rows[0]["detail"].as_str().unwrap().contains("Film"));
    let today = &domain::time::iso_utc(store::now_ms())[..10];
    let yesterday = &domain::time::iso_utc(store::now_ms() - 86_400_000)[..10];
    let r = call(&mut a, "/api/admin_audit", &format!("action=desk_registered&from={today}&to={today}"), &[]).await;
    let subjects: Vec<String> =
        r.json().as_array().unwrap().iter().map(|e| e["subject"].as_str().unwrap().to_owned()).collect();
    assert_eq!(subjects, ["desk:hedy-desk"]);
    let r = call(&mut a, "/api/admin_audit", &format!("from={yesterday}&to={yesterday}"), &[]).await;
    assert_eq!(r.json().as_array().map(Vec::len), Some(0), "{}", r.body);
    let r = call(&mut a, "/api/admin_audit", "from=30.11.2026", &[]).await;
    assert_eq!((r.status, field(&r.json())), (400, Some("from".into())), "{}", r.body);
    desk.kill();
}

/// The field an `AppError::Invalid` names.
fn field(v: &Value) -> Option<String> {
    v["Invalid"]["field"].as_str().map(str::to_owned)
}

/// Students from the dashboard: a roster checked row by row with nothing written until confirmed,
/// then written in one go; a versioned edit; card, PIN and deactivation as a student feels them
/// (signing in); the CSV export carries no secret.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn students_are_imported_after_a_preview_and_managed_from_the_dashboard() {
    let s = TestServer::start().await;
    s.student("S-1", "Existing Student", "135790", Some("04A1B2C3")).await;
    let mut a = admin(&s, "ada").await;
    let form = |pairs: &[(&str, &str)]| {
        pairs
            .iter()
            .map(|(k, v)| format!("{k}={}", v.bytes().map(|b| format!("%{b:02X}")).collect::<String>()))
            .collect::<Vec<_>>()
            .join("&")
    };

    let roster = "Number,Name,Email,Card\nS-2,Ada Student,ada@uni.example,\nS-1,Taken Number,,\n\
                  S-3,,x@uni.example,\nS-4,Card Thief,,04:a1:b2:c3\nS-2,Twice,,\nS-5,Grace Student,,0A0B0C0D\n";
    let r = call(&mut a, "/api/admin_students_import", &form(&[("csv", roster)]), &[]).await;
    assert_eq!(r.status, 200, "{}", r.body);
    let report = r.json();
    assert_eq!((report["rows"].as_u64(), report["valid"].as_u64()), (Some(6), Some(2)), "{report}");
    let errors: Vec<(u64, String)> = report["errors"]
        .as_array()
        .unwrap()
        .iter()
        .map(|e| (e[0].as_u64().unwrap(), e[1].as_str().unwrap().to_owned()))
        .collect();
    assert_eq!(
        errors,
        [(2, "number".into()), (3, "name".into()), (4, "card".into()), (5, "number".into())],
        "every row's problem, by row and field"
    );
    assert!(report["imported"].is_null());
    assert_eq!(s.store.list_students().await.unwrap().len(), 1, "a preview writes nothing");
    // Confirmed with problems left: still nothing, unless the admin skips them.
    let r = call(&mut a, "/api/admin_students_import", &form(&[("csv", roster), ("confirm", "on")]), &[]).await;
    assert!(r.json()["imported"].is_null(), "{}", r.body);
    assert_eq!(s.store.list_students().await.unwrap().len(), 1);
    let r = call(
        &mut a,
        "/api/admin_students_import",
        &form(&[("csv", roster), ("confirm", "on"), ("skip_invalid", "on")]),
        &[],
    )
    .await;
    assert_eq!(r.json()["imported"].as_u64(), Some(2), "{}", r.body);
    let numbers: Vec<String> = s.store.list_students().await.unwrap().into_iter().map(|s| s.number).collect();
    assert_eq!(numbers, ["S-1", "S-2", "S-5"]);
    let r = call(&mut a, "/api/admin_students_import", &form(&[("csv", "id,who\n1,2\n")]), &[]).await;
    assert_eq!((r.status, field(&r.json())), (400, Some("csv".into())), "{}", r.body);

    // A versioned edit, and a stale one told with the row as it is.
    let ada = s.store.student_by_number("S-2").await.unwrap().unwrap();
    let save = |version: i64, name: &str| {
        form(&[("id", &ada.id.to_string()), ("version", &version.to_string()), ("name", name), ("email", "")])
    };
    let r = call(&mut a, "/api/admin_student_save", &save(ada.version, "Ada King"), &[]).await;
    assert_eq!(r.json()["Saved"]["name"], "Ada King", "{}", r.body);
    let r = call(&mut a, "/api/admin_student_save", &save(ada.version, "Ada Lovelace"), &[]).await;
    assert_eq!(r.json()["Conflict"]["name"], "Ada King", "{}", r.body);

    // Card: a taken one names the field; PIN: the student signs in with it; deactivated: no more.
    let r = call(&mut a, "/api/admin_student_card", &form(&[("number", "S-2"), ("card", "04A1B2C3")]), &[]).await;
    assert_eq!((r.status, field(&r.json())), (400, Some("card".into())), "{}", r.body);
    let r = call(&mut a, "/api/admin_student_pin", &form(&[("number", "S-2"), ("pin", "12")]), &[]).await;
    assert_eq!((r.status, field(&r.json())), (400, Some("pin".into())), "{}", r.body);
    let r = call(&mut a, "/api/admin_student_pin", &form(&[("number", "S-2"), ("pin", "864209")]), &[]).await;
    assert_eq!(r.status, 200, "{}", r.body);
    let mut student = s.browser();
    let r = student.post_json("/api/student/sign-in", json!({ "number": "S-2", "pin": "864209" })).await;
    assert_eq!(r.status, 204, "the PIN set on the dashboard works: {}", r.body);
    let r = call(&mut a, "/api/admin_student_disable", &form(&[("number", "S-2")]), &[]).await;
    assert_eq!(r.status, 200, "{}", r.body);
    let r = student.get("/api/me/requests").await;
    assert_eq!(r.status, 401, "their session ended: {}", r.body);
    let r = s.browser().post_json("/api/student/sign-in", json!({ "number": "S-2", "pin": "864209" })).await;
    assert_eq!(r.status, 401, "{}", r.body);

    let r = a.get("/api/admin/students.csv").await;
    assert_eq!(r.header("content-type"), Some("text/csv; charset=utf-8"));
    let lines: Vec<&str> = r.body.lines().collect();
    assert_eq!(lines[0], "number,name,email,department,card,has_pin,active");
    assert!(lines.contains(&"S-2,Ada King,,,,yes,no"), "{}", r.body);
    assert!(!r.body.contains("argon2"), "no hash in the export");
    let r = s.browser().get("/api/admin/students.csv").await;
    assert_eq!(r.status, 401);

    let log = s.store.audit_log(100).await.unwrap();
    for action in ["students_imported", "student_edited", "student_pin_set", "student_disabled"] {
        assert!(log.iter().any(|e| e.action == action && e.actor == "admin:ada"), "{action} audited");
    }
    assert!(!log.iter().any(|e| e.detail.as_deref().is_some_and(|d| d.contains("864209"))), "no PIN in the audit");
}
