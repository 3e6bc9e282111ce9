//! Consultations: requests across faculty (the open ones by default), filtered by state, faculty
//! member and date (a GET form: the filter is in the URL); an open one can be cancelled with a
//! reason, which the student sees on their page and the desk drops from its queue.

use super::{AdminFrame, field_error, form_error, refusal};
use crate::admin::{AdminRequestCancel, RequestLine, admin_requests};
use domain::consultation::State;
use leptos::form::ActionForm;
use leptos::prelude::*;
use leptos_router::hooks::use_query_map;

#[component]
pub fn ConsultationsPage() -> impl IntoView {
    let query = use_query_map();
    let param = move |k: &str| query.read().get(k).unwrap_or_default();
    let cancel = ServerAction::<AdminRequestCancel>::new();
    let list = Resource::new_blocking(
        move || (param("state"), param("faculty"), param("from"), param("to"), cancel.version().get()),
        |(state, faculty, from, to, _)| {
            let some = |s: String| Some(s).filter(|s| !s.is_empty());
            admin_requests(some(state), some(faculty), some(from), some(to))
        },
    );
    view! {
        <AdminFrame title="Consultations" current="/admin/consultations">
            {form_error(cancel.value(), &["reason"])}
            {field_error(cancel.value(), "reason")}
            <Transition fallback=|| view! { <p class="loading">"Loading…"</p> }>
                {move || Suspend::new(async move {
                    match list.await {
                        Ok(data) => view! {
                            <form class="filters" method="get" action="/admin/consultations" role="search">
                                <div><label for="c-state">"State"</label>
                                    <select id="c-state" name="state">
                                        <option value="open" selected=param("state").is_empty() || param("state") == "open">"Open"</option>
                                        <option value="all" selected=param("state") == "all">"All"</option>
                                        {State::ALL.map(|s| view! {
                                            <option value=s.as_str() selected=param("state") == s.as_str()>{s.label()}</option>
                                        }).collect_view()}
                                    </select></div>
                                <div><label for="c-faculty">"Faculty member"</label>
                                    <select id="c-faculty" name="faculty">
                                        <option value="">"Everyone"</option>
                                        {data.faculty.iter().map(|(id, name)| view! {
                                            <option value=*id selected=param("faculty") == id.to_string()>{name.clone()}</option>
                                        }).collect_view()}
                                    </select></div>
                                <div><label for="c-from">"From (UTC)"</label>
                                    <input id="c-from" name="from" type="date" value=param("from") /></div>
                                <div><label for="c-to">"To (UTC)"</label>
                                    <input id="c-to" name="to" type="date" value=param("to") /></div>
                                <div class="filter-actions"><button type="submit">"Filter"</button></div>
                            </form>
                            <RequestTable requests=data.requests cancel />
                        }
                        .into_any(),
                        Err(e) => refusal(e),
                    }
                })}
            </Transition>
        </AdminFrame>
    }
}

#[component]
fn RequestTable(requests: Vec<RequestLine>, cancel: ServerAction<AdminRequestCancel>) -> impl IntoView {
    if requests.is_empty() {
        return view! { <p class="empty">"No requests match."</p> }.into_any();
    }
    view! {
        <p class="muted">{requests.len()} " requests, newest first."</p>
        <table class="admin-table" data-testid="request-table">
            <thead><tr><th scope="col">"Ticket"</th><th scope="col">"Requested"</th><th scope="col">"Faculty member"</th>
                <th scope="col">"Student"</th><th scope="col">"State"</th><th scope="col">"Course and message"</th>
                <th scope="col">"Note"</th><th scope="col">"Cancel"</th></tr></thead>
            <tbody>
                {requests.into_iter().map(|r| {
                    let open = !r.state.is_terminal();
                    view! {
                        <tr data-request=r.id data-state=r.state.as_str()>
                            <td class="num">{r.ticket.clone()}</td>
                            <td class="num">{r.requested.clone()}</td>
                            <td><a href=format!("/admin/faculty/{}", r.faculty_id)>{r.faculty_name.clone()}</a></td>
                            <td>{r.student.clone()}</td>
                            <td>{r.state.label()}</td>
                            <td>{r.course.clone().map(|c| format!("{c}: ")).unwrap_or_default()} {r.message.clone()}</td>
                            <td>{r.note.clone().unwrap_or_default()}</td>
                            <td>
                                {open.then(|| view! {
                                    <details>
                                        <summary>"Cancel…"</summary>
                                        <ActionForm action=cancel>
                                            <input type="hidden" name="id" value=r.id />
                                            <label>"Reason (the student sees it)"
                                                <input name="reason" required maxlength="140" placeholder="Office closed this afternoon" /></label>
                                            <button type="submit">"Cancel request"</button>
                                        </ActionForm>
                                    </details>
                                })}
                            </td>
                        </tr>
                    }
                }).collect_view()}
            </tbody>
        </table>
    }
    .into_any()
}
