//! `/metrics` is valid OpenMetrics text exposition, and its counters move as desks talk.

use rumqttc::{AsyncClient, MqttOptions, QoS};
use std::collections::{HashMap, HashSet};
use std::time::Duration;
use testkit::TestServer;

/// Parses the OpenMetrics text format strictly enough to catch malformed output: every sample
/// belongs to a family declared once with `# TYPE` (counters' samples end in `_total`), label sets
/// are well formed, values are numbers, histogram buckets are cumulative and end in `+Inf` equal to
/// `_count`, and the exposition ends with `# EOF`.
fn parse(text: &str) -> HashMap<String, f64> {
    let text = text.strip_suffix("# EOF\n").unwrap_or_else(|| panic!("no `# EOF` at the end: {text}"));
    let mut types: HashMap<String, String> = HashMap::new();
    let mut samples = HashMap::new();
    let mut seen_help = HashSet::new();
    for line in text.lines() {
        if let Some(rest) = line.strip_prefix("# HELP ") {
            let name = rest.split(' ').next().unwrap();
            assert!(seen_help.insert(name.to_owned()), "HELP twice for {name}");
            continue;
        }
        if let Some(rest) = line.strip_prefix("# TYPE ") {
            let mut it = rest.split(' ');
            let (name, kind) = (it.next().unwrap(), it.next().unwrap());
            assert!(["counter", "gauge", "histogram", "summary", "untyped"].contains(&kind), "{line}");
            assert!(types.insert(name.to_owned(), kind.to_owned()).is_none(), "TYPE twice: {line}");
            continue;
        }
        assert!(!line.starts_with('#') && !line.is_empty(), "unexpected line {line:?}");
        let (series, value) = line.rsplit_once(' ').unwrap_or_else(|| panic!("no value: {line}"));
        let v: f64 = match value {
            "+Inf" => f64::INFINITY,
            "-Inf" => f64::NEG_INFINITY,
            v => v.parse().unwrap_or_else(|_| panic!("bad value in {line}")),
        };
        let name = series.split('{').next().unwrap();
        assert!(
            name.chars().all(|c| c.is_ascii_alphanumeric() || c == '_' || c == ':')
                && !name.starts_with(|c: char| c.is_ascii_digit()),
            "bad metric name in {line}"
        );
        if let Some(labels) = series.strip_prefix(name)
            && !labels.is_empty()
        {
            let inner = labels.strip_prefix('{').and_then(|l| l.strip_suffix('}')).unwrap_or_else(|| panic!("{line}"));
            for pair in inner.split("\",").filter(|p| !p.is_empty()) {
                let (k, v) = pair.split_once('=').unwrap_or_else(|| panic!("bad label in {line}"));
                assert!(k.chars().all(|c| c.is_ascii_alphanumeric() || c == '_'), "bad label name in {line}");
                assert!(v.starts_with('"'), "unquoted label value in {line}");
            }
        }
        let family = [("_bucket", "histogram"), ("_sum", "histogram"), ("_count", "histogram"), ("_total", "counter")]
            .iter()
            .find_map(|(suf, kind)| name.strip_suffix(suf).filter(|f| types.get(*f).is_some_and(|t| t == kind)))
            .unwrap_or(name);
        assert!(types.get(family).is_none_or(|t| t != "counter") || name.ends_with("_total"), "{line}");
        assert!(types.contains_key(family), "sample without TYPE: {line}");
        samples.insert(series.to_owned(), v);
    }
    for (family, kind) in &types {
        if kind == "histogram" {
            let mut buckets: Vec<(f64, f64)> = samples
                .iter()
                .filter_map(|(k, v)| {
                    let le = k.strip_prefix(&format!("{family}_bucket{{le=\""))?.strip_suffix("\"}")?;
                    Some((if le == "+Inf" { f64::INFINITY } else { le.parse().unwrap() }, *v))
                })
                .collect();
            buckets.sort_by(|a, b| a.0.partial_cmp(&b.0).unwrap());
            assert!(buckets.windows(2).all(|w| w[0].1 <= w[1].1), "{family}: buckets not cumulative");
            assert_eq!(buckets.last().map(|b| b.0), Some(f64::INFINITY), "{family}: no +Inf bucket");
            assert_eq!(buckets.last().map(|b| b.1), samples.get(&format!("{family}_count")).copied(), "{family}");
        }
    }
    samples
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn metrics_parse_and_move() {
    let server = TestServer::builder().prefix("mt").start().await;
    let id = server
        .store
        .add_faculty(&store::NewFaculty { name: "Ada".into(), department: "CS".into(), email: None })
        .await
        .unwrap();
    server.store.add_desk("m1", id).await.unwrap();
    let (url, broker) = (server.url.clone(), server.running.broker.clone());
    let get = |path: &'static str| {
        let url = url.clone();
        async move { reqwest::get(format!("{url}{path}")).await.unwrap().text().await.unwrap() }
    };
    let before = parse(&get("/metrics").await);
    assert_eq!(before["consultease_mqtt_received_total"], 0.0);
    assert_eq!(before["consultease_desks_online"], 0.0);

    // Desk traffic: three good messages, one malformed; a page view; an open stream.
    let (client, mut el) = AsyncClient::new(MqttOptions::new("metrics-desk", &broker.host, broker.port), 10);
    tokio::spawn(async move { while el.poll().await.is_ok() {} });
    for (topic, payload) in [
        ("mt/desk/m1/online", r#"{"boot":1,"seq":1,"online":true}"#),
        ("mt/desk/m1/state", r#"{"boot":1,"seq":2,"present":true}"#),
        ("mt/desk/m1/state", r#"{"boot":1,"seq":2,"present":true}"#),
        ("mt/desk/m1/state", "{oops"),
    ] {
        client.publish(topic, QoS::AtLeastOnce, false, payload).await.unwrap();
    }
    get("/api/faculty").await;
    let stream = reqwest::get(format!("{url}/api/events")).await.unwrap();
    let mut after = HashMap::new();
    for _ in 0..200 {
        after = parse(&get("/metrics").await);
        // Received is counted on arrival; each message is acknowledged last, after its outcome and
        // the histograms are recorded.
        // (The online count is read from the database at the start of a scrape, the counters at its
        // end: a scrape can see the last ack but not yet that commit.)
        if after["consultease_mqtt_acked_total"] >= 4.0
            && after["consultease_sse_clients"] >= 1.0
            && after["consultease_desks_online"] >= 1.0
        {
            break;
        }
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    assert_eq!(after["consultease_mqtt_received_total"], 4.0);
    assert_eq!(after["consultease_mqtt_acked_total"], 4.0, "malformed messages are acknowledged too");
    assert_eq!(after["consultease_mqtt_pending"], 0.0);
    assert_eq!(after["consultease_mqtt_applied_total"], 2.0);
    assert_eq!(after["consultease_mqtt_stale_total"], 1.0);
    assert_eq!(after["consultease_mqtt_rejected_total{reason=\"malformed_json\"}"], 1.0);
    assert_eq!(after["consultease_desks_online"], 1.0);
    assert_eq!(after["consultease_sse_clients"], 1.0);
    assert_eq!(after["consultease_mqtt_connected"], 1.0);
    assert!(after["consultease_commit_batch_size_count"] >= 1.0);
    assert_eq!(after["consultease_apply_latency_seconds_count"], 3.0, "every parsed message is timed to its commit");
    assert_eq!(after["consultease_http_requests_total{route=\"/api/faculty\",status=\"200\"}"], 1.0);
    drop(stream);
}
