//! Faculty: the list with live status and search, adding someone, and the edit page with its
//! conflict view ("keep mine" / "take theirs") and the status override.

use super::{AdminFrame, field_error, form_error, refusal};
use crate::admin::{
    AdminFacultyActive, AdminFacultyCreate, AdminFacultySave, AdminOverrideClear, AdminOverrideSet, FacultyDetail,
    FacultyList, Saved, admin_faculty, admin_faculty_record,
};
use crate::format::override_line;
use crate::live::Link;
use domain::faculty::{FIELDS, FacultyFields, FacultyRecord, merge};
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
                        Ok(data) => {
                            let inactive = data.inactive.clone();
                            view! {
                                <FacultyTable data />
                                {(!inactive.is_empty()).then(|| view! {
                                    <p class="muted" data-testid="inactive">"Deactivated (not on the board): "
                                        {inactive.into_iter().map(|(id, name)| view! {
                                            <a class="colleague" href=format!("/admin/faculty/{id}")>{name}</a>
                                        }).collect_view()}
                                    </p>
                                })}
                                <AddFaculty />
                            }
                            .into_any()
                        }
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
            .filter(|f| f.active)
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

/// The labels of the edited fields (`domain::faculty::FIELDS`).
fn label(field: &str) -> &'static str {
    match field {
        "name" => "Name",
        "department" => "Department",
        "email" => "Email",
        "room" => "Room",
        "photo_url" => "Photo URL",
        _ => "Office hours",
    }
}

/// The form: one signal per field (what the admin sees and types), the version the next save
/// names, and the fields as they were at that version (the base of a merge).
#[derive(Clone, Copy)]
struct Form {
    version: RwSignal<i64>,
    base: RwSignal<FacultyFields>,
    values: [RwSignal<String>; FIELDS.len()],
}

impl Form {
    fn new(r: &FacultyRecord) -> Form {
        Form {
            version: RwSignal::new(r.version),
            base: RwSignal::new(r.fields.clone()),
            values: FIELDS.map(|f| RwSignal::new(r.fields.get(f).to_owned())),
        }
    }

    fn signal(&self, field: &str) -> RwSignal<String> {
        let i = FIELDS.iter().position(|f| *f == field).unwrap_or(0);
        self.values[i]
    }

    fn fields(&self) -> FacultyFields {
        let mut out = FacultyFields::default();
        for f in FIELDS {
            out.set(f, &self.signal(f).get_untracked());
        }
        out
    }

    fn show(&self, fields: &FacultyFields) {
        for f in FIELDS {
            self.signal(f).set(fields.get(f).to_owned());
        }
    }

    /// The row as saved (after a save, or "take theirs"): the form, its version and its base.
    fn load(&self, r: &FacultyRecord) {
        self.show(&r.fields);
        self.version.set(r.version);
        self.base.set(r.fields.clone());
    }

    /// The save of what the form holds, at its version.
    fn save(&self, id: i64) -> AdminFacultySave {
        let f = self.fields();
        AdminFacultySave {
            id,
            version: self.version.get_untracked(),
            name: f.name,
            department: f.department,
            email: f.email,
            room: f.room,
            photo_url: f.photo_url,
            office_hours: f.office_hours,
        }
    }
}

/// A save that met a newer row: both sides as they were, and the fields both changed.
#[derive(Clone, Debug)]
struct Clash {
    mine: FacultyFields,
    theirs: FacultyRecord,
    /// The fields this admin changed.
    changed: Vec<&'static str>,
    /// The fields both changed, differently.
    conflicts: Vec<&'static str>,
}

#[component]
fn EditFaculty(detail: FacultyDetail) -> impl IntoView {
    let id = detail.record.id;
    let form = Form::new(&detail.record);
    let save = ServerAction::<AdminFacultySave>::new();
    let value = save.value();
    let clash = RwSignal::new(None::<Clash>);
    let saved = RwSignal::new(None::<i64>);
    Effect::new(move |_| match value.get() {
        Some(Ok(Saved::Saved(r))) => {
            form.load(&r);
            clash.set(None);
            saved.set(Some(r.version));
        }
        Some(Ok(Saved::Conflict(theirs))) => {
            // Someone saved first. What only they changed comes into the form, what only this
            // admin changed stays; where both changed a field, the form keeps this admin's value
            // until they choose. The next save names their version.
            let (mine, base) = (form.fields(), form.base.get_untracked());
            let changed = FIELDS.into_iter().filter(|f| mine.get(f) != base.get(f)).collect();
            let merged = merge(&base, &mine, &theirs.fields);
            form.show(&merged.fields);
            form.version.set(theirs.version);
            form.base.set(theirs.fields.clone());
            saved.set(None);
            clash.set(Some(Clash { mine, theirs, changed, conflicts: merged.conflicts }));
        }
        _ => saved.set(None),
    });
    let input = move |field: &'static str| {
        let sig = form.signal(field);
        let input_id = format!("f-{field}");
        if field == "office_hours" {
            return view! {
                <div class="wide">
                    <label for=input_id.clone()>{label(field)}</label>
                    <textarea id=input_id name=field rows="4" placeholder="Mon 14:00-16:00 Room B-204\nWed 10:00-11:30"
                        aria-describedby="hours-hint"
                        prop:value=move || sig.get() on:input=move |ev| sig.set(event_target_value(&ev))></textarea>
                    <p class="muted" id="hours-hint">"One slot per line: day, time span, and where (optional). Local time."</p>
                    {field_error(value, field)}
                </div>
            }
            .into_any();
        }
        let kind = match field {
            "email" => "email",
            "photo_url" => "url",
            _ => "text",
        };
        view! {
            <div>
                <label for=input_id.clone()>{label(field)}</label>
                <input id=input_id name=field type=kind required=matches!(field, "name" | "department")
                    prop:value=move || sig.get() on:input=move |ev| sig.set(event_target_value(&ev)) />
                {field_error(value, field)}
            </div>
        }
        .into_any()
    };
    view! {
        <section class="panel admin-form" aria-labelledby="edit-h">
            <h3 id="edit-h">{move || form.signal("name").get()} <span class="muted">" · version " {move || form.version.get()}</span></h3>
            <ActionForm action=save>
                <input type="hidden" name="id" value=id />
                <input type="hidden" name="version" prop:value=move || form.version.get().to_string() />
                <div class="fields">{FIELDS.map(input).collect_view()}</div>
                <button type="submit" disabled=move || save.pending().get()>"Save"</button>
            </ActionForm>
            {move || saved.get().map(|v| view! { <p class="ok" role="status">"Saved (version " {v} ")."</p> })}
            {form_error(value, &FIELDS)}
        </section>
        {move || clash.get().map(|c| view! { <ConflictPanel form clash=c id save close=move || clash.set(None) /> })}
        <ActivePanel id active=detail.view.active />
        <OverridePanel view=detail.view now=detail.now />
    }
    // Type-erased: the whole page's view type is otherwise too deep for the compiler's query limit.
    .into_any()
}

/// Both sides of a stale save, field by field, and what the form now holds: nothing is written
/// until the admin saves again.
#[component]
fn ConflictPanel(
    form: Form,
    clash: Clash,
    id: i64,
    save: ServerAction<AdminFacultySave>,
    close: impl Fn() + Copy + Send + Sync + 'static,
) -> impl IntoView {
    let differing: Vec<&'static str> =
        FIELDS.into_iter().filter(|f| clash.mine.get(f) != clash.theirs.fields.get(f)).collect();
    let rows = differing
        .iter()
        .map(|&field| {
            let mine = clash.mine.get(field).to_owned();
            let theirs = clash.theirs.fields.get(field).to_owned();
            let both = clash.conflicts.contains(&field);
            let sig = form.signal(field);
            let (m, t) = (mine.clone(), theirs.clone());
            let holds = move || {
                let now = sig.get();
                if now.trim() == m { "yours" } else if now.trim() == t { "theirs" } else { "edited" }
            };
            let (m, t) = (mine.clone(), theirs.clone());
            view! {
                <tr class:differs=both data-field=field>
                    <th scope="row">{label(field)}</th>
                    <td class="mine">{mine}</td>
                    <td class="theirs">{theirs}</td>
                    <td class="holds">{holds}</td>
                    <td class="row-actions">
                        <button type="button" class="secondary" on:click=move |_| sig.set(m.clone())>"Use mine"</button>
                        <button type="button" class="secondary" on:click=move |_| sig.set(t.clone())>"Use theirs"</button>
                    </td>
                </tr>
            }
        })
        .collect_view();
    let (mine, changed) = (clash.mine.clone(), clash.changed.clone());
    let theirs = clash.theirs.clone();
    // Every change this admin made, over their row (their changes to other fields stay), saved.
    let keep_mine = move |_| {
        for f in &changed {
            form.signal(f).set(mine.get(f).to_owned());
        }
        save.dispatch(form.save(id));
    };
    let take_theirs = move |_| {
        form.load(&theirs);
        close();
    };
    let summary = if clash.conflicts.is_empty() {
        "You changed different fields: theirs are now in your form beside yours. Check, then save.".to_owned()
    } else {
        format!(
            "You both changed {}: your values are in the form; choose per field, then save.",
            clash.conflicts.iter().map(|f| label(f).to_lowercase()).collect::<Vec<_>>().join(", ")
        )
    };
    view! {
        <section class="panel conflict" role="alert" data-testid="conflict">
            <h3>"Someone else saved this faculty member while you were editing"</h3>
            <p>"Nothing of yours is saved yet; their version is " {clash.theirs.version} ". " {summary}</p>
            <p class="muted">"“Keep mine” saves your changes over theirs (their changes to other fields stay); “Take theirs” drops your changes."</p>
            <table class="admin-table">
                <thead><tr><th scope="col">"Field"</th><th scope="col">"Yours"</th><th scope="col">"Saved by them"</th>
                    <th scope="col">"In the form"</th><th scope="col">"Choose"</th></tr></thead>
                <tbody>{rows}</tbody>
            </table>
            <div class="actions">
                <button type="button" on:click=keep_mine>"Keep mine"</button>
                <button type="button" class="secondary" on:click=take_theirs>"Take theirs"</button>
            </div>
        </section>
    }
    .into_any()
}

/// Deactivate (leaves the board, takes no requests; the history stays) or reactivate.
#[component]
fn ActivePanel(id: i64, active: bool) -> impl IntoView {
    let change = ServerAction::<AdminFacultyActive>::new();
    let active = RwSignal::new(active);
    Effect::new(move |_| {
        if let Some(Ok(v)) = change.value().get() {
            active.set(v.active);
        }
    });
    view! {
        <section class="panel admin-form" aria-labelledby="active-h">
            <h3 id="active-h">"On the board"</h3>
            <p data-testid="active-state">{move || if active.get() {
                "Active: on the board, taking requests."
            } else {
                "Deactivated: not on the board, takes no requests. Their history stays."
            }}</p>
            <ActionForm action=change>
                <input type="hidden" name="id" value=id />
                <input type="hidden" name="active" prop:value=move || (!active.get()).to_string() />
                <button type="submit" class="secondary">{move || if active.get() { "Deactivate" } else { "Reactivate" }}</button>
            </ActionForm>
            {form_error(change.value(), &[])}
        </section>
    }
    .into_any()
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
    .into_any()
}
