//! What the board and the request form say beside the status, from the server-rendered pages (what
//! a kiosk shows first, and all a browser without JavaScript gets): office hours in the
//! university's time, and "usually back around" from the faculty member's own history.

use domain::faculty::{FacultyFields, check};
use testkit::{TestServer, eventually};

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn office_hours_and_usually_back_show_on_the_board_and_the_request_form() {
    let s = TestServer::start().await;
    let id = s.faculty("Lise Meitner", "bh1").await;
    let rec = s.store.faculty_record(id).await.unwrap().unwrap();
    let week = ["Mon", "Tue", "Wed", "Thu", "Fri", "Sat", "Sun"].map(|d| format!("{d} 00:00-24:00 Room 7")).join("\n");
    let fields = check(&FacultyFields { office_hours: Some(week), ..rec.fields }).unwrap();
    let audit = store::AuditEntry { actor: "test".into(), action: "faculty_edited".into(), ..Default::default() };
    s.store.edit_faculty(id, rec.version, &fields, &audit).await.unwrap();
    // Away: the desk is on, nobody there.
    let mut desk = s.desk("bh1", 1, 0).await;
    desk.state(false, false).await;
    eventually("Lise is away", || async {
        s.store.faculty(id).await.unwrap().is_some_and(|f| f.status == domain::Status::Away)
    })
    .await;

    // Three of the last four same weekdays they came back half an hour from now (local time).
    let now = store::now_ms();
    let zone = jiff::tz::TimeZone::system();
    let offset = zone.to_offset(jiff::Timestamp::from_millisecond(now).unwrap()).seconds() / 60;
    let (_, minute) = domain::schedule::local(now, offset);
    let target = minute + 30;
    let history: Vec<(i64, i64)> = (1..=3).map(|weeks| (id, now - weeks * 7 * 86_400_000 + 30 * 60_000)).collect();
    s.store.add_returns(&history).await.unwrap();
    let expected = (target < 1440).then(|| format!("Usually back around {}", domain::schedule::hm(target)));

    let board = s.browser().get("/").await;
    assert_eq!(board.status, 200);
    assert!(board.body.contains("Office hours today 00:00–24:00, Room 7"), "{}", board.body);
    let form = s.browser().get(&format!("/request/{id}")).await;
    assert!(form.body.contains("Office hours today 00:00–24:00, Room 7"));
    match expected {
        Some(line) => {
            assert!(board.body.contains(&line), "the board says {line:?}");
            assert!(form.body.contains(&line), "the form says {line:?}");
        }
        // Within half an hour of midnight there is no later return today to speak of.
        None => assert!(!board.body.contains("Usually back")),
    }
    // An open board reads the same again every few minutes (the day's history after midnight,
    // the offset after a daylight saving change).
    let r = s
        .browser()
        .send(reqwest::Method::POST, "/api/board_local", Some(String::new()), &[("accept", "application/json")])
        .await;
    assert_eq!(r.status, 200, "{}", r.body);
    let local = r.json();
    assert_eq!(local["utc_offset_min"].as_i64(), Some(i64::from(offset)));
    let listed = local["back"]["faculty"].as_array().unwrap().iter().any(|f| f[0].as_i64() == Some(id));
    assert_eq!(listed, target < 1440, "their same-weekday history is sent: {local}");
    // Two weeks are not a habit.
    let other = s.faculty("Otto Frisch", "bh2").await;
    s.store.add_returns(&history[..2].iter().map(|(_, at)| (other, *at)).collect::<Vec<_>>()).await.unwrap();
    let form = s.browser().get(&format!("/request/{other}")).await;
    assert!(!form.body.contains("Usually back"), "no estimate from two days");
    desk.kill();
}
