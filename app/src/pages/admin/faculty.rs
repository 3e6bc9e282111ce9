//! Faculty: the list with live status and search, adding someone, and the edit page with its
//! conflict view ("keep mine" / "take theirs") and the status override.

use super::{AdminFrame, field_error, form_error, refusal};
use crate::admin::{
    AdminFacultyCreate, AdminFacultySave, AdminOverrideClear, AdminOverrideSet, FacultyDetail, FacultyList, Saved,
    admin_faculty, admin_faculty_record,
};
use crate::format::override_line;
use crate::live::Link;
use domain::faculty::FacultyRecord;
use domain::{FacultyView, Status};
use leptos::form::ActionForm;
use leptos::prelude::*;
use leptos_router::hooks::{use_params_map, use_query_map};

#[component]
pub fn FacultyListPage() -> impl IntoView {
    let list = Resource::new_blocking(|| (), |_| admin_faculty());
    view! {
        <AdminFrame title="Faculty" current="/admin/faculty">
            <Suspense fallback=|| view! { <p class="loading">"Loading…"</p> }>
                {move || Suspend::new(async move {
                    match list.await {
                        Ok(data) => view! { <FacultyTable data /> <AddFaculty /> }.into_any(),
                        Err(e) => refusal(e),
                    }
                })}
            </Suspense>
        </AdminFrame>
    }
}

#[component]
fn FacultyTable(data: FacultyList) -> impl IntoView {
    let faculty = RwSignal::new(data.snapshot.faculty);
    let now = RwSignal::new(data.now);
    let link = RwSignal::new(Link::Connecting);
    let announce = RwSignal::new(String::new());
    #[cfg(feature = "hydrate")]
    crate::live::follow(data.snapshot.cursor, faculty, now, link, announce);
    let _ = announce;

    // Searching works without JavaScript (a GET form, `?q=`) and, hydrated, as you type.
    let query = use_query_map();
    let q = RwSignal::new(query.read_untracked().get("q").unwrap_or_default());
    let visible = Memo::new(move |_| {
        let q = q.get().to_lowercase();
        faculty
            .read()
            .iter()
            .filter(|f| {
                q.is_empty()
                    || f.name.to_lowercase().contains(&q)
                    || f.department.to_lowercase().contains(&q)
                    || f.id.to_string() == q
            })
            .cloned()
            .collect::<Vec<_>>()
    });
    view! {
        <div class="admin-bar">
            <p class="link" role="status" data-link=move || link.get().as_str()>
                <span class="dot" aria-hidden="true"></span>
                {move || link.get().label()}
            </p>
            <form class="search" method="get" action="/admin/faculty" role="search">
                <label class="sr-only" for="q">"Search faculty"</label>
                <input id="q" name="q" type="search" placeholder="Name, department or id" autocomplete="off"
                    prop:value=move || q.get()
                    on:input=move |ev| q.set(event_target_value(&ev)) />
                <button type="submit" class="secondary">"Search"</button>
            </form>
        </div>
        <table class="admin-table" data-testid="faculty-table">
            <thead>
                <tr><th scope="col">"Name"</th><th scope="col">"Department"</th><th scope="col">"Status"</th>
                    <th scope="col">"Override"</th><th scope="col">"Waiting"</th><th scope="col">"Version"</th></tr>
            </thead>
            <tbody>
                <For each=move || visible.get() key=|f| (f.id, f.version) let:f>
                    <FacultyRow f now />
                </For>
            </tbody>
        </table>
        <Show when=move || visible.read().is_empty()>
            <p class="empty">{move || if faculty.read().is_empty() { "Nobody yet: add the first faculty member below." } else { "Nobody matches." }}</p>
        </Show>
    }
}

#[component]
fn FacultyRow(f: FacultyView, now: RwSignal<i64>) -> impl IntoView {
    let over = {
        let f = f.clone();
        move || override_line(&f, now.get()).unwrap_or_default()
    };
    view! {
        <tr data-faculty-id=f.id data-status=f.status.as_str()>
            <td><a href=format!("/admin/faculty/{}", f.id)>{f.name.clone()}</a></td>
            <td>{f.department.clone()}</td>
            <td class=format!("status {}", f.status)>{f.status.label()}</td>
            <td>{over}</td>
            <td>{f.waiting}</td>
            <td class="num">{f.version}</td>
        </tr>
    }
}

#[component]
fn AddFaculty() -> impl IntoView {
    let add = ServerAction::<AdminFacultyCreate>::new();
    let value = add.value();
    view! {
        <section class="panel admin-form" aria-labelledby="add-h">
            <h3 id="add-h">"Add a faculty member"</h3>
            <ActionForm action=add>
                <div class="fields">
                    <div><label for="new-name">"Name"</label>
                        <input id="new-name" name="name" required maxlength="120" />{field_error(value, "name")}</div>
                    <div><label for="new-department">"Department"</label>
                        <input id="new-department" name="department" required maxlength="120" />{field_error(value, "department")}</div>
                    <div><label for="new-email">"Email (optional)"</label>
                        <input id="new-email" name="email" type="email" maxlength="254" />{field_error(value, "email")}</div>
                    <div><label for="new-room">"Room (optional)"</label>
                        <input id="new-room" name="room" maxlength="40" />{field_error(value, "room")}</div>
                </div>
                <button type="submit" disabled=move || add.pending().get()>"Add"</button>
            </ActionForm>
            {form_error(value, &["name", "department", "email", "room"])}
        </section>
    }
}

#[component]
pub fn FacultyEditPage() -> impl IntoView {
    let params = use_params_map();
    let id = move || params.read().get("id").and_then(|s| s.parse::<i64>().ok()).unwrap_or(0);
    let detail = Resource::new_blocking(id, admin_faculty_record);
    view! {
        <AdminFrame title="Edit faculty member" current="/admin/faculty">
            <Suspense fallback=|| view! { <p class="loading">"Loading…"</p> }>
                {move || Suspend::new(async move {
                    match detail.await {
                        Ok(d) => view! { <EditFaculty detail=d /> }.into_any(),
                        Err(e) => refusal(e),
                    }
                })}
            </Suspense>
            <p><a href="/admin/faculty">"Back to the list"</a></p>
        </AdminFrame>
    }
}

/// The form's fields as signals: what the admin sees and types.
#[derive(Clone, Copy)]
struct Form {
    version: RwSignal<i64>,
    name: RwSignal<String>,
    department: RwSignal<String>,
    email: RwSignal<String>,
    room: RwSignal<String>,
    photo_url: RwSignal<String>,
}

/// The edited fields, their labels, and how to read each from a record.
const FIELDS: [(&str, &str); 5] =
    [("name", "Name"), ("department", "Department"), ("email", "Email"), ("room", "Room"), ("photo_url", "Photo URL")];

fn value_of(r: &FacultyRecord, field: &str) -> String {
    let f = &r.fields;
    match field {
        "name" => f.name.clone(),
        "department" => f.department.clone(),
        "email" => f.email.clone().unwrap_or_default(),
        "room" => f.room.clone().unwrap_or_default(),
        _ => f.photo_url.clone().unwrap_or_default(),
    }
}

impl Form {
    fn new(r: &FacultyRecord) -> Form {
        let s = |field| RwSignal::new(value_of(r, field));
        Form {
            version: RwSignal::new(r.version),
            name: s("name"),
            department: s("department"),
            email: s("email"),
            room: s("room"),
            photo_url: s("photo_url"),
        }
    }

    fn signal(&self, field: &str) -> RwSignal<String> {
        match field {
            "name" => self.name,
            "department" => self.department,
            "email" => self.email,
            "room" => self.room,
            _ => self.photo_url,
        }
    }

    /// Shows `r` (after a save, or "take theirs").
    fn load(&self, r: &FacultyRecord) {
        self.version.set(r.version);
        for (field, _) in FIELDS {
            self.signal(field).set(value_of(r, field));
        }
    }

    /// The save of what the form holds, at `version`.
    fn save(&self, id: i64, version: i64) -> AdminFacultySave {
        let opt = |s: RwSignal<String>| Some(s.get_untracked()).filter(|v| !v.trim().is_empty());
        AdminFacultySave {
            id,
            version,
            name: self.name.get_untracked(),
            department: self.department.get_untracked(),
            email: opt(self.email),
            room: opt(self.room),
            photo_url: opt(self.photo_url),
        }
    }
}

#[component]
fn EditFaculty(detail: FacultyDetail) -> impl IntoView {
    let id = detail.record.id;
    let form = Form::new(&detail.record);
    let save = ServerAction::<AdminFacultySave>::new();
    let value = save.value();
    // The row as another admin saved it, while this form was open.
    let theirs = RwSignal::new(None::<FacultyRecord>);
    let saved = RwSignal::new(None::<i64>);
    Effect::new(move |_| match value.get() {
        Some(Ok(Saved::Saved(r))) => {
            form.load(&r);
            theirs.set(None);
            saved.set(Some(r.version));
        }
        Some(Ok(Saved::Conflict(current))) => {
            saved.set(None);
            theirs.set(Some(current));
        }
        _ => saved.set(None),
    });
    let keep_mine = move |_| {
        if let Some(t) = theirs.get_untracked() {
            // Saves what this admin typed over the newer row: a new compare-and-set at its version.
            save.dispatch(form.save(id, t.version));
        }
    };
    let take_theirs = move |_| {
        if let Some(t) = theirs.get_untracked() {
            form.load(&t);
            theirs.set(None);
        }
    };
    let input = move |field: &'static str, label: &'static str| {
        let sig = form.signal(field);
        let input_id = format!("f-{field}");
        let kind = match field {
            "email" => "email",
            "photo_url" => "url",
            _ => "text",
        };
        view! {
            <div>
                <label for=input_id.clone()>{label}</label>
                <input id=input_id name=field type=kind required=matches!(field, "name" | "department")
                    prop:value=move || sig.get() on:input=move |ev| sig.set(event_target_value(&ev)) />
                {field_error(value, field)}
            </div>
        }
    };
    view! {
        <section class="panel admin-form" aria-labelledby="edit-h">
            <h3 id="edit-h">{move || form.name.get()} <span class="muted">" · version " {move || form.version.get()}</span></h3>
            <ActionForm action=save>
                <input type="hidden" name="id" value=id />
                <input type="hidden" name="version" prop:value=move || form.version.get().to_string() />
                <div class="fields">{FIELDS.map(|(field, label)| input(field, label)).collect_view()}</div>
                <button type="submit" disabled=move || save.pending().get()>"Save"</button>
            </ActionForm>
            {move || saved.get().map(|v| view! { <p class="ok" role="status">"Saved (version " {v} ")."</p> })}
            {form_error(value, &["name", "department", "email", "room", "photo_url"])}
        </section>
        {move || theirs.get().map(|t| view! { <Conflict form theirs=t keep_mine take_theirs /> })}
        <OverridePanel view=detail.view now=detail.now />
    }
}

/// Both sides of a stale save, field by field: nothing is written until the admin chooses.
#[component]
fn Conflict(
    form: Form,
    theirs: FacultyRecord,
    keep_mine: impl Fn(leptos::ev::MouseEvent) + 'static,
    take_theirs: impl Fn(leptos::ev::MouseEvent) + 'static,
) -> impl IntoView {
    let rows = FIELDS
        .map(|(field, label)| {
            let mine = form.signal(field).get_untracked();
            let other = value_of(&theirs, field);
            let differs = mine.trim() != other.trim();
            view! {
                <tr class:differs=differs data-field=field>
                    <th scope="row">{label}</th>
                    <td class="mine">{mine}</td>
                    <td class="theirs">{other}</td>
                </tr>
            }
        })
        .collect_view();
    view! {
        <section class="panel conflict" role="alert" data-testid="conflict">
            <h3>"Someone else saved this faculty member while you were editing"</h3>
            <p>"Nothing of yours was saved yet. Their version is " {theirs.version} ". Compare, then choose:"</p>
            <table class="admin-table">
                <thead><tr><th scope="col">"Field"</th><th scope="col">"Yours"</th><th scope="col">"Saved by them"</th></tr></thead>
                <tbody>{rows}</tbody>
            </table>
            <div class="actions">
                <button type="button" on:click=keep_mine>"Keep mine"</button>
                <button type="button" class="secondary" on:click=take_theirs>"Take theirs"</button>
            </div>
        </section>
    }
}

#[component]
fn OverridePanel(view: FacultyView, now: i64) -> impl IntoView {
    let id = view.id;
    let set = ServerAction::<AdminOverrideSet>::new();
    let clear = ServerAction::<AdminOverrideClear>::new();
    let current = RwSignal::new(view);
    Effect::new(move |_| {
        if let Some(Ok(v)) = set.value().get() {
            current.set(v);
        }
    });
    Effect::new(move |_| {
        if let Some(Ok(v)) = clear.value().get() {
            current.set(v);
        }
    });
    let state = move || {
        let v = current.get();
        match override_line(&v, now) {
            Some(line) => format!("Shown on the board: {} — {line}", v.status.label()),
            None => format!("Shown on the board: {} (from the desk)", v.status.label()),
        }
    };
    let has_override = move || {
        let v = current.get();
        v.note.is_some() || v.until.is_some()
    };
    view! {
        <section class="panel admin-form" aria-labelledby="ov-h">
            <h3 id="ov-h">"Status override"</h3>
            <p data-testid="override-state">{state}</p>
            <ActionForm action=set>
                <input type="hidden" name="id" value=id />
                <div class="fields">
                    <div>
                        <label for="ov-status">"Status"</label>
                        <select id="ov-status" name="status">
                            {Status::ALL.map(|s| view! { <option value=s.as_str()>{s.label()}</option> }).collect_view()}
                        </select>
                    </div>
                    <div>
                        <label for="ov-note">"Note on the board (optional)"</label>
                        <input id="ov-note" name="note" maxlength="80" placeholder="In class until 14:30" />
                        {field_error(set.value(), "note")}
                    </div>
                    <div>
                        <label for="ov-minutes">"For"</label>
                        <select id="ov-minutes" name="minutes">
                            <option value="30">"30 minutes"</option>
                            <option value="60">"1 hour"</option>
                            <option value="120">"2 hours"</option>
                            <option value="240">"4 hours"</option>
                            <option value="480">"8 hours"</option>
                            <option value="0">"Until cleared"</option>
                        </select>
                    </div>
                </div>
                <button type="submit">"Set override"</button>
            </ActionForm>
            {form_error(set.value(), &["note"])}
            <Show when=has_override>
                <ActionForm action=clear>
                    <input type="hidden" name="id" value=id />
                    <button type="submit" class="secondary">"Clear override"</button>
                </ActionForm>
            </Show>
        </section>
    }
}
