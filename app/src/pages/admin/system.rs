//! The system page: which database and schema, the broker connection, desks online, live streams
//! and the ingest counters (the numbers `/metrics` exports). Hydrated, it reads them again every
//! 5 s and shows the ingest rate between the two readings.

use super::{AdminFrame, refusal};
use crate::admin::{SystemFacts, admin_system};
use leptos::prelude::*;

#[component]
pub fn SystemPage() -> impl IntoView {
    let facts = Resource::new_blocking(|| (), |_| admin_system());
    view! {
        <AdminFrame title="System" current="/admin/system">
            <Suspense fallback=|| view! { <p class="loading">"Loading…"</p> }>
                {move || Suspend::new(async move {
                    match facts.await {
                        Ok(f) => view! { <Facts first=f /> }.into_any(),
                        Err(e) => refusal(e),
                    }
                })}
            </Suspense>
        </AdminFrame>
    }
}

#[component]
fn Facts(first: SystemFacts) -> impl IntoView {
    let facts = RwSignal::new(first);
    // Messages per second between the last two readings (none until there are two).
    let rate = RwSignal::new(None::<f64>);
    #[cfg(feature = "hydrate")]
    {
        let tick = set_interval_with_handle(
            move || {
                leptos::task::spawn_local(async move {
                    if let Ok(next) = admin_system().await {
                        let before = facts.get_untracked();
                        let secs = (next.now - before.now) as f64 / 1000.0;
                        if secs > 0.0 {
                            rate.set(Some(next.mqtt_received.saturating_sub(before.mqtt_received) as f64 / secs));
                        }
                        facts.set(next);
                    }
                });
            },
            std::time::Duration::from_secs(5),
        )
        .ok();
        on_cleanup(move || {
            if let Some(t) = tick {
                t.clear();
            }
        });
    }
    let row = |label: &'static str, value: Box<dyn Fn() -> String + Send + Sync>| {
        view! { <tr><th scope="row">{label}</th><td data-fact=label>{value}</td></tr> }
    };
    view! {
        <table class="admin-table facts" data-testid="system-table">
            <tbody>
                {row("Database", Box::new(move || {
                    let f = facts.get();
                    format!("{} (schema version {})", f.backend, f.schema_version)
                }))}
                {row("MQTT broker", Box::new(move || facts.get().broker.unwrap_or_else(|| "not ingesting in this process".into())))}
                {row("Desks online", Box::new(move || { let f = facts.get(); format!("{} of {}", f.desks_online, f.desks) }))}
                {row("Live streams", Box::new(move || facts.get().live_streams.to_string()))}
                {row("Desk messages received", Box::new(move || facts.get().mqtt_received.to_string()))}
                {row("… applied / stale / rejected", Box::new(move || {
                    let f = facts.get();
                    format!("{} / {} / {}", f.mqtt_applied, f.mqtt_stale, f.mqtt_rejected)
                }))}
                {row("Ingest rate", Box::new(move || rate.get().map_or_else(|| "measuring…".into(), |r| format!("{r:.1} messages/s"))))}
                {row("Dead letters", Box::new(move || facts.get().dead_letters.to_string()))}
                {row("Up for", Box::new(move || crate::format::ago(facts.get().uptime_s as i64 * 1000)))}
            </tbody>
        </table>
        <p class="muted">"The same numbers, for monitoring: " <a href="/metrics">"/metrics"</a> " and " <a href="/readyz">"/readyz"</a> "."</p>
    }
}
