//! Accounts, sign-in and sessions, driven over HTTP the way a browser — or an attacker — would.

use serde_json::json;
use std::time::{Duration, Instant};
use testkit::{Browser, TestServer};

const PASSWORD: &str = "correct horse battery";

fn cookie_attrs(set_cookie: &[String], name: &str) -> String {
    set_cookie
        .iter()
        .find(|c| c.starts_with(&format!("{name}=")))
        .cloned()
        .unwrap_or_else(|| panic!("no {name} cookie in {set_cookie:?}"))
}

async fn admin_sign_in(b: &mut Browser, user: &str, password: &str) -> testkit::Reply {
    b.post_json("/api/admin/sign-in", json!({ "username": user, "password": password })).await
}

async fn student_sign_in(b: &mut Browser, number: &str, pin: &str) -> testkit::Reply {
    b.post_json("/api/student/sign-in", json!({ "number": number, "pin": pin })).await
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn admins_and_students_sign_in_and_out_with_hardened_cookies() {
    let s = TestServer::start().await;
    s.admin("ada", PASSWORD).await;
    s.student("S-1", "Grace Hopper", "123456", None).await;

    let mut admin = s.browser();
    let r = admin_sign_in(&mut admin, "ada", PASSWORD).await;
    assert_eq!(r.status, 204, "{}", r.body);
    let c = cookie_attrs(&r.set_cookies(), "__Host-ce_session");
    for attr in ["HttpOnly", "SameSite=Strict", "Secure", "Path=/", "Max-Age=43200"] {
        assert!(c.contains(attr), "{attr} missing in {c}");
    }
    assert!(!c.contains("Domain"), "__Host- cookies have no domain");
    let me = admin.get("/api/me").await;
    assert_eq!((me.status, me.json()["role"].as_str(), me.json()["name"].as_str()), (200, Some("admin"), Some("ada")));
    assert_eq!(me.header("cache-control"), Some("no-store"));
    let token = admin.cookies["__Host-ce_session"].clone();
    assert!(token.len() >= 32 && token.chars().all(|c| c.is_ascii_hexdigit()), "128+ random bits");

    let r = admin.post_json("/api/admin/sign-out", json!({})).await;
    assert_eq!(r.status, 204);
    assert!(admin.cookies.is_empty(), "the cookie is cleared");
    assert_eq!(admin.get("/api/me").await.status, 401);
    // The server-side session is gone: replaying the old cookie gets nothing.
    admin.cookies.insert("__Host-ce_session".into(), token);
    assert_eq!(admin.get("/api/me").await.status, 401);

    let mut student = s.browser();
    let r = student_sign_in(&mut student, "S-1", "123456").await;
    assert_eq!(r.status, 204, "{}", r.body);
    let c = cookie_attrs(&r.set_cookies(), "__Host-ce_session");
    assert!(c.contains("SameSite=Lax") && c.contains("Max-Age=86400"), "{c}");
    let me = student.get("/api/me").await.json();
    assert_eq!(
        (me["role"].as_str(), me["number"].as_str(), me["kiosk"].as_bool()),
        (Some("student"), Some("S-1"), Some(false))
    );
    assert_eq!(student.post_json("/api/student/sign-out", json!({})).await.status, 204);
    assert_eq!(student.get("/api/me").await.status, 401);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_wrong_password_and_an_unknown_account_look_the_same() {
    let s = TestServer::start().await;
    s.admin("ada", PASSWORD).await;
    s.student("S-1", "Grace", "123456", None).await;
    let mut b = s.browser();
    let (mut wrong_t, mut unknown_t) = (Vec::new(), Vec::new());
    for i in 0..4 {
        // Alternate accounts so that neither gets locked out (4 < 5).
        let t = Instant::now();
        let wrong = admin_sign_in(&mut b, "ada", &format!("wrong password {i}")).await;
        wrong_t.push(t.elapsed());
        let t = Instant::now();
        let unknown = admin_sign_in(&mut b, &format!("nobody{i}"), PASSWORD).await;
        unknown_t.push(t.elapsed());
        assert_eq!((wrong.status, &wrong.body), (unknown.status, &unknown.body));
        assert_eq!(wrong.status, 401);
        assert!(wrong.set_cookies().is_empty() && unknown.set_cookies().is_empty());
    }
    let st_wrong = student_sign_in(&mut b, "S-1", "654321").await;
    let st_unknown = student_sign_in(&mut b, "S-404", "123456").await;
    assert_eq!((st_wrong.status, &st_wrong.body), (st_unknown.status, &st_unknown.body));
    // An unknown account is checked against a decoy hash: it costs about as much as a real one
    // (generous bound: an answer without hashing would be ~100 times quicker).
    wrong_t.sort();
    unknown_t.sort();
    assert!(unknown_t[2] * 4 >= wrong_t[2], "unknown {unknown_t:?} vs wrong {wrong_t:?}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn five_failures_lock_real_and_unknown_accounts_alike_and_the_lock_survives_a_restart() {
    let s = TestServer::start().await;
    s.admin("ada", PASSWORD).await;
    let mut b = s.browser();
    for who in ["ada", "ghost"] {
        for _ in 0..5 {
            assert_eq!(admin_sign_in(&mut b, who, "not the password").await.status, 401);
        }
        let r = admin_sign_in(&mut b, who, PASSWORD).await;
        assert_eq!(r.status, 429, "{who}: locked, even with the right password");
        let retry: u64 = r.header("retry-after").unwrap().parse().unwrap();
        assert!((25..=30).contains(&retry), "{retry}");
        assert_eq!(r.json()["error"], "too_many_requests");
    }
    let (real, unknown) = (admin_sign_in(&mut b, "ada", "x").await, admin_sign_in(&mut b, "ghost", "x").await);
    assert_eq!((real.status, real.json()["error"].clone()), (unknown.status, unknown.json()["error"].clone()));
    // A restart (a new accounts service on the same database) remembers.
    let again = auth::Auth::new(s.store.clone(), auth::Hasher::for_tests());
    let r = again
        .sign_in_admin("ada", PASSWORD, None, &auth::Client { addr: Some("127.0.0.1".into()), user_agent: None })
        .await;
    assert!(matches!(r, Err(auth::AuthError::LockedOut { .. })), "{r:?}");
    let log = s.store.audit_log(100).await.unwrap();
    assert!(log.iter().any(|e| e.action == "locked_out" && e.actor == "admin:ada"));
    assert!(log.iter().any(|e| e.action == "locked_out" && e.actor == "admin:ghost"));
    assert_eq!(
        log.iter().filter(|e| e.action == "sign_in_failed").count(),
        10 + 2 - 2,
        "attempts during a lockout hash nothing and are not failures"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn one_address_cycling_through_student_numbers_is_slowed() {
    let s = TestServer::start().await;
    s.student("S-1", "Grace", "123456", None).await;
    let mut b = s.browser();
    for i in 0..30 {
        let r = student_sign_in(&mut b, &format!("X-{i}"), "000000").await;
        assert_eq!(r.status, 401, "attempt {i}");
    }
    // The 31st, even for a real student with the right PIN, waits: the address is locked.
    assert_eq!(student_sign_in(&mut b, "S-1", "123456").await.status, 429);
}

/// OWASP ASVS V3.2.1: a new session id at sign-in; the one before is dead at once (no fixation).
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn signing_in_always_issues_a_fresh_session_id_and_kills_the_old_one() {
    let s = TestServer::start().await;
    s.student("S-1", "Grace", "123456", None).await;
    s.admin("ada", PASSWORD).await;
    let mut b = s.browser();
    assert_eq!(student_sign_in(&mut b, "S-1", "123456").await.status, 204);
    let first = b.cookies["__Host-ce_session"].clone();
    // Privilege change: the same browser signs in as an admin.
    assert_eq!(admin_sign_in(&mut b, "ada", PASSWORD).await.status, 204);
    let second = b.cookies["__Host-ce_session"].clone();
    assert_ne!(first, second);
    let mut thief = s.browser();
    thief.cookies.insert("__Host-ce_session".into(), first);
    assert_eq!(thief.get("/api/me").await.status, 401, "the pre-sign-in id is dead");
    // A planted (attacker-chosen) id is never adopted either.
    let mut victim = s.browser();
    victim.cookies.insert("__Host-ce_session".into(), "a".repeat(64));
    assert_eq!(student_sign_in(&mut victim, "S-1", "123456").await.status, 204);
    assert_ne!(victim.cookies["__Host-ce_session"], "a".repeat(64));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn state_changes_from_other_sites_or_without_provenance_are_refused() {
    let s = TestServer::start().await;
    s.student("S-1", "Grace", "123456", None).await;
    let mut b = s.browser();
    assert_eq!(student_sign_in(&mut b, "S-1", "123456").await.status, 204);
    let body = Some(json!({}).to_string());
    let attempts: [&[(&str, &str)]; 4] = [
        &[("sec-fetch-site", "cross-site")],
        &[("sec-fetch-site", "same-site")],
        &[("sec-fetch-site", "none")],
        &[("origin", "http://evil.example")],
    ];
    let mut attacker = s.browser();
    attacker.cookies = b.cookies.clone();
    attacker.same_origin = false;
    for headers in attempts {
        let r = attacker.send(reqwest::Method::POST, "/api/student/sign-out", body.clone(), headers).await;
        assert_eq!(r.status, 403, "{headers:?}");
    }
    // Neither header at all (a non-browser client holding a stolen cookie, or an old browser
    // without Origin): refused too.
    let r = attacker.send(reqwest::Method::POST, "/api/student/sign-out", body.clone(), &[]).await;
    assert_eq!(r.status, 403);
    assert_eq!(b.get("/api/me").await.status, 200, "still signed in: nothing changed");
    // Changes are never reachable by GET.
    assert_eq!(b.get("/api/student/sign-out").await.status, 405);
    assert_eq!(b.get("/api/me").await.status, 200);
    // A page of ours: fine.
    assert_eq!(b.post_json("/api/student/sign-out", json!({})).await.status, 204);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn kiosks_enrol_once_take_card_taps_and_a_revoked_kiosk_loses_them_at_once() {
    let s = TestServer::start().await;
    s.student("S-1", "Grace", "123456", Some("04A1B2C3")).await;
    let (kiosk_id, code) = s.auth().add_kiosk("Lobby", "test", &auth::Client::default()).await.unwrap();
    let mut kiosk = s.browser();
    // Card taps need an enrolled kiosk.
    assert_eq!(kiosk.post_json("/api/kiosk/card-sign-in", json!({ "card": "04A1B2C3" })).await.status, 403);
    let r = kiosk.post_json("/api/kiosk/enrol", json!({ "code": code.to_lowercase() })).await;
    assert_eq!(r.status, 204, "{}", r.body);
    let c = cookie_attrs(&r.set_cookies(), "__Host-ce_kiosk");
    assert!(c.contains("HttpOnly") && c.contains("Secure") && c.contains("Max-Age=31536000"), "{c}");
    // The code is spent.
    let mut other = s.browser();
    assert_eq!(other.post_json("/api/kiosk/enrol", json!({ "code": code })).await.status, 401);
    // A card tap (the reader types the UID with separators) signs the student in, on this kiosk.
    assert_eq!(kiosk.post_json("/api/kiosk/card-sign-in", json!({ "card": "04:a1:b2:c3" })).await.status, 204);
    let me = kiosk.get("/api/me").await.json();
    assert_eq!((me["number"].as_str(), me["kiosk"].as_bool()), (Some("S-1"), Some(true)));
    let ends_in = me["ends_at"].as_i64().unwrap() - store::now_ms();
    assert!((100_000..=120_000).contains(&ends_in), "a kiosk session idles out after 120 s: {ends_in}");
    // An unknown card is the same answer as a wrong PIN.
    assert_eq!(kiosk.post_json("/api/kiosk/card-sign-in", json!({ "card": "DEADBEEF" })).await.status, 401);

    s.auth().revoke_kiosk(kiosk_id, "test", &auth::Client::default()).await.unwrap();
    assert_eq!(kiosk.get("/api/me").await.status, 401, "the kiosk's student session ended with it");
    assert_eq!(kiosk.post_json("/api/kiosk/card-sign-in", json!({ "card": "04A1B2C3" })).await.status, 403);
    let log = s.store.audit_log(100).await.unwrap();
    for action in ["kiosk_added", "kiosk_enrolled", "signed_in_by_card", "kiosk_revoked"] {
        assert!(log.iter().any(|e| e.action == action), "{action} audited");
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_password_change_or_disabling_ends_sessions() {
    let s = TestServer::start().await;
    s.admin("ada", PASSWORD).await;
    let mut b = s.browser();
    assert_eq!(admin_sign_in(&mut b, "ada", PASSWORD).await.status, 204);
    s.auth().set_admin_password("ada", "another good password", "test", &auth::Client::default()).await.unwrap();
    assert_eq!(b.get("/api/me").await.status, 401);
    assert_eq!(admin_sign_in(&mut b, "ada", PASSWORD).await.status, 401, "the old password is gone");
    assert_eq!(admin_sign_in(&mut b, "ada", "another good password").await.status, 204);
    s.auth().disable_admin("ada", "test", &auth::Client::default()).await.unwrap();
    assert_eq!(b.get("/api/me").await.status, 401);
    assert_eq!(admin_sign_in(&mut b, "ada", "another good password").await.status, 401);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn pages_carry_a_nonce_csp_and_the_security_headers() {
    let s = TestServer::start().await;
    let mut b = s.browser();
    let r = b.get("/").await;
    assert_eq!(r.status, 200);
    let csp = r.header("content-security-policy").unwrap().to_owned();
    let nonce = csp.split("'nonce-").nth(1).and_then(|rest| rest.split('\'').next()).unwrap().to_owned();
    assert!(nonce.len() >= 16, "{csp}");
    for directive in ["frame-ancestors 'none'", "object-src 'none'", "base-uri 'none'", "'wasm-unsafe-eval'"] {
        assert!(csp.contains(directive), "{directive} in {csp}");
    }
    assert!(!csp.contains("unsafe-inline"), "{csp}");
    // Every inline script the page carries has the nonce.
    let scripts = r.body.matches("<script").count();
    assert!(scripts > 0);
    assert_eq!(r.body.matches(&format!("nonce=\"{nonce}\"")).count(), scripts, "{}", r.body);
    // A second render gets another nonce.
    let again = b.get("/").await;
    assert_ne!(again.header("content-security-policy").unwrap(), csp);
    assert_eq!(r.header("x-content-type-options"), Some("nosniff"));
    assert_eq!(r.header("referrer-policy"), Some("same-origin"));
    assert_eq!(r.header("cache-control"), Some("no-store"));
    assert_eq!(r.header("x-frame-options"), Some("DENY"));
    let _ = Duration::ZERO;
}
