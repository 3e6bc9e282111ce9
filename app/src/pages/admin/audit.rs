//! The audit log: every admin action, sign-in and override, filtered by actor, action and UTC
//! dates (a GET form: the filter is in the URL, so it works without JavaScript and can be shared),
//! with the same filter as a CSV download. Nothing here can change or delete an entry.

use super::{AdminFrame, refusal};
use crate::admin::admin_audit;
use leptos::prelude::*;
use leptos_router::hooks::use_query_map;

#[component]
pub fn AuditPage() -> impl IntoView {
    let query = use_query_map();
    let param = move |k: &str| query.read().get(k).unwrap_or_default();
    let filter = move || (param("actor"), param("action"), param("from"), param("to"));
    let entries = Resource::new_blocking(filter, |(actor, action, from, to)| {
        let some = |s: String| Some(s).filter(|s| !s.is_empty());
        admin_audit(some(actor), some(action), some(from), some(to))
    });
    // The CSV endpoint takes the same filter, with the dates as Unix ms.
    let csv = move || {
        let (actor, action, from, to) = filter();
        let mut q = crate::admin::audit_query(&actor, &action, "", "");
        let ms = |d: &str| domain::time::parse_date(d.trim());
        for (k, v) in [("from", ms(&from)), ("to", ms(&to).map(|t| t + 86_400_000))] {
            if let Some(v) = v {
                if !q.is_empty() {
                    q.push('&');
                }
                q.push_str(&format!("{k}={v}"));
            }
        }
        if q.is_empty() { "/api/admin/audit.csv".to_owned() } else { format!("/api/admin/audit.csv?{q}") }
    };
    view! {
        <AdminFrame title="Audit log" current="/admin/audit">
            <form class="filters" method="get" action="/admin/audit" role="search">
                <div><label for="a-actor">"Actor"</label>
                    <input id="a-actor" name="actor" prop:value=move || param("actor") placeholder="admin:ada" /></div>
                <div><label for="a-action">"Action"</label>
                    <input id="a-action" name="action" prop:value=move || param("action") placeholder="faculty_edited" /></div>
                <div><label for="a-from">"From (UTC)"</label>
                    <input id="a-from" name="from" type="date" prop:value=move || param("from") /></div>
                <div><label for="a-to">"To (UTC)"</label>
                    <input id="a-to" name="to" type="date" prop:value=move || param("to") /></div>
                <div class="filter-actions">
                    <button type="submit">"Filter"</button>
                    <a class="button secondary" href=csv download="audit.csv">"Download CSV"</a>
                </div>
            </form>
            <Transition fallback=|| view! { <p class="loading">"Loading…"</p> }>
                {move || Suspend::new(async move {
                    match entries.await {
                        Ok(rows) if rows.is_empty() => view! { <p class="empty">"No entries match."</p> }.into_any(),
                        Ok(rows) => view! {
                            <p class="muted">{format!("{} entries, newest first{}.", rows.len(), if rows.len() >= 500 { " (the newest 500: narrow the filter or download the CSV)" } else { "" })}</p>
                            <table class="admin-table audit" data-testid="audit-table">
                                <thead><tr><th scope="col">"When"</th><th scope="col">"Actor"</th><th scope="col">"Action"</th>
                                    <th scope="col">"Subject"</th><th scope="col">"Detail"</th><th scope="col">"From"</th></tr></thead>
                                <tbody>
                                    {rows.into_iter().map(|r| view! {
                                        <tr data-action=r.action.clone()>
                                            <td class="num">{r.at}</td>
                                            <td>{r.actor}</td>
                                            <td><code>{r.action.clone()}</code></td>
                                            <td>{r.subject.unwrap_or_default()}</td>
                                            <td class="detail">{r.detail.unwrap_or_default()}</td>
                                            <td>{r.client_addr.unwrap_or_default()}</td>
                                        </tr>
                                    }).collect_view()}
                                </tbody>
                            </table>
                        }
                        .into_any(),
                        Err(e) => refusal(e),
                    }
                })}
            </Transition>
        </AdminFrame>
    }
}
