//! Students: the list with search, adding one, and per student: edit (versioned), card, PIN,
//! deactivate; a roster import that shows every row's problem before anything is written; CSV
//! export.

use super::{AdminFrame, field_error, form_error, refusal};
use crate::admin::{
    AdminStudentAdd, AdminStudentCard, AdminStudentDisable, AdminStudentPin, AdminStudentSave, AdminStudentsImport,
    ImportReport, StudentLine, StudentSaved, admin_students,
};
use leptos::form::ActionForm;
use leptos::prelude::*;
use leptos_router::hooks::use_query_map;

#[component]
pub fn StudentsPage() -> impl IntoView {
    let add = ServerAction::<AdminStudentAdd>::new();
    let save = ServerAction::<AdminStudentSave>::new();
    let card = ServerAction::<AdminStudentCard>::new();
    let pin = ServerAction::<AdminStudentPin>::new();
    let disable = ServerAction::<AdminStudentDisable>::new();
    let import = ServerAction::<AdminStudentsImport>::new();
    let list = Resource::new_blocking(
        move || {
            (
                add.version().get(),
                save.version().get(),
                card.version().get(),
                disable.version().get(),
                import.value().with(|v| matches!(v, Some(Ok(ImportReport { imported: Some(_), .. })))),
            )
        },
        |_| admin_students(),
    );
    let actions = Actions { save, card, pin, disable };
    let query = use_query_map();
    let q = RwSignal::new(query.read_untracked().get("q").unwrap_or_default());
    view! {
        <AdminFrame title="Students" current="/admin/students">
            <div class="admin-bar">
                <form class="search" method="get" action="/admin/students" role="search">
                    <label class="sr-only" for="q">"Search students"</label>
                    <input id="q" name="q" type="search" placeholder="Number, name or email" autocomplete="off"
                        prop:value=move || q.get() on:input=move |ev| q.set(event_target_value(&ev)) />
                    <button type="submit" class="secondary">"Search"</button>
                </form>
                <a class="button secondary" href="/api/admin/students.csv" download="students.csv">"Export CSV"</a>
            </div>
            {move || pin.value().get().and_then(Result::ok).map(|_| view! { <p class="ok" role="status">"PIN set; their sessions ended."</p> })}
            {form_error(save.value(), &[])}
            {form_error(card.value(), &[])}
            {form_error(pin.value(), &[])}
            {form_error(disable.value(), &[])}
            <Transition fallback=|| view! { <p class="loading">"Loading…"</p> }>
                {move || Suspend::new(async move {
                    match list.await {
                        Ok(students) => view! { <StudentTable students q actions /> }.into_any(),
                        Err(e) => refusal(e),
                    }
                })}
            </Transition>
            <AddStudent add />
            <Import import />
        </AdminFrame>
    }
}

/// The per-student actions, shared by every row.
#[derive(Clone, Copy)]
struct Actions {
    save: ServerAction<AdminStudentSave>,
    card: ServerAction<AdminStudentCard>,
    pin: ServerAction<AdminStudentPin>,
    disable: ServerAction<AdminStudentDisable>,
}

#[component]
fn StudentTable(students: Vec<StudentLine>, q: RwSignal<String>, actions: Actions) -> impl IntoView {
    if students.is_empty() {
        return view! { <p class="empty">"No students yet: add one or import a roster below."</p> }.into_any();
    }
    let total = students.len();
    let students = StoredValue::new(students);
    let visible = move || {
        let q = q.get().to_lowercase();
        students.with_value(|all| {
            all.iter()
                .filter(|s| {
                    q.is_empty()
                        || s.number.to_lowercase().contains(&q)
                        || s.name.to_lowercase().contains(&q)
                        || s.email.as_deref().is_some_and(|e| e.to_lowercase().contains(&q))
                })
                .cloned()
                .collect::<Vec<_>>()
        })
    };
    view! {
        <p class="muted">{total} " students."</p>
        <table class="admin-table" data-testid="student-table">
            <thead><tr><th scope="col">"Number"</th><th scope="col">"Name"</th><th scope="col">"Email"</th>
                <th scope="col">"Department"</th><th scope="col">"Card"</th><th scope="col">"PIN"</th>
                <th scope="col">"Active"</th><th scope="col">"Manage"</th></tr></thead>
            <tbody>
                <For each=visible key=|s| (s.id, s.version) let:s>
                    <StudentRow s actions />
                </For>
            </tbody>
        </table>
    }
    .into_any()
}

#[component]
fn StudentRow(s: StudentLine, actions: Actions) -> impl IntoView {
    let Actions { save, card, pin, disable } = actions;
    let number = s.number.clone();
    let (n1, n2, n3) = (number.clone(), number.clone(), number.clone());
    // A save that met a newer row: shown here with what it now holds.
    let clash = RwSignal::new(None::<StudentLine>);
    let id = s.id;
    Effect::new(move |_| {
        if let Some(Ok(StudentSaved::Conflict(now))) = save.value().get()
            && now.id == id
        {
            clash.set(Some(now));
        }
    });
    view! {
        <tr data-student=number.clone() data-active=s.active.to_string()>
            <td class="num">{number.clone()}</td>
            <td>{s.name.clone()}</td>
            <td>{s.email.clone().unwrap_or_default()}</td>
            <td>{s.department.clone().unwrap_or_default()}</td>
            <td class="num">{s.card.clone().unwrap_or_else(|| "—".into())}</td>
            <td>{if s.has_pin { "set" } else { "none" }}</td>
            <td>{if s.active { "yes" } else { "no" }}</td>
            <td>
                <details>
                    <summary>"Manage"</summary>
                    <div class="manage">
                        {move || clash.get().map(|now| view! {
                            <p class="error" role="alert">
                                "Someone else changed this student meanwhile (now: " {now.name.clone()} ", "
                                {now.email.clone().unwrap_or_default()} ", " {now.department.clone().unwrap_or_default()}
                                "). Nothing was saved: reload and edit again."
                            </p>
                        })}
                        <ActionForm action=save>
                            <input type="hidden" name="id" value=s.id />
                            <input type="hidden" name="version" value=s.version />
                            <label>"Name" <input name="name" value=s.name.clone() required maxlength="120" /></label>
                            <label>"Email" <input name="email" type="email" value=s.email.clone().unwrap_or_default() maxlength="254" /></label>
                            <label>"Department" <input name="department" value=s.department.clone().unwrap_or_default() maxlength="120" /></label>
                            <button type="submit">"Save"</button>
                        </ActionForm>
                        <ActionForm action=card>
                            <input type="hidden" name="number" value=n1 />
                            <label>"Card UID (empty clears it)" <input name="card" value=s.card.clone().unwrap_or_default() maxlength="40" autocomplete="off" /></label>
                            <button type="submit" class="secondary">"Set card"</button>
                        </ActionForm>
                        <ActionForm action=pin>
                            <input type="hidden" name="number" value=n2 />
                            <label>"New PIN" <input name="pin" type="password" inputmode="numeric" autocomplete="new-password" required maxlength="12" /></label>
                            <button type="submit" class="secondary">"Set PIN"</button>
                        </ActionForm>
                        {s.active.then(|| view! {
                            <ActionForm action=disable>
                                <input type="hidden" name="number" value=n3 />
                                <button type="submit" class="secondary">"Deactivate"</button>
                            </ActionForm>
                        })}
                    </div>
                </details>
            </td>
        </tr>
    }
}

#[component]
fn AddStudent(add: ServerAction<AdminStudentAdd>) -> impl IntoView {
    let value = add.value();
    view! {
        <section class="panel admin-form" aria-labelledby="add-student-h">
            <h3 id="add-student-h">"Add a student"</h3>
            <ActionForm action=add>
                <div class="fields">
                    <div><label for="s-number">"Student number"</label>
                        <input id="s-number" name="number" required maxlength="32" />{field_error(value, "number")}</div>
                    <div><label for="s-name">"Name"</label>
                        <input id="s-name" name="name" required maxlength="120" />{field_error(value, "name")}</div>
                    <div><label for="s-email">"Email (optional)"</label>
                        <input id="s-email" name="email" type="email" maxlength="254" />{field_error(value, "email")}</div>
                    <div><label for="s-department">"Department (optional)"</label>
                        <input id="s-department" name="department" maxlength="120" />{field_error(value, "department")}</div>
                    <div><label for="s-card">"Card UID (optional)"</label>
                        <input id="s-card" name="card" maxlength="40" autocomplete="off" />{field_error(value, "card")}</div>
                </div>
                <button type="submit">"Add student"</button>
            </ActionForm>
            {move || value.get().and_then(Result::ok).map(|s| view! {
                <p class="ok" role="status">"Added " {s.number} " (" {s.name} "). Set their PIN from the list."</p>
            })}
            {form_error(value, &["number", "name", "email", "department", "card"])}
        </section>
    }
}

/// The roster import: check first (every row's problems listed, nothing written), then confirm.
#[component]
fn Import(import: ServerAction<AdminStudentsImport>) -> impl IntoView {
    let csv = RwSignal::new(String::new());
    let value = import.value();
    // The report is of the roster as it was checked: typing hides it until the next check.
    let edited = RwSignal::new(false);
    let report = move || value.get().and_then(Result::ok).filter(|_| !edited.get());
    let check = move |_| {
        edited.set(false);
        import.dispatch(AdminStudentsImport { csv: csv.get_untracked(), confirm: None, skip_invalid: None });
    };
    let confirm = move |skip: bool| {
        import.dispatch(AdminStudentsImport {
            csv: csv.get_untracked(),
            confirm: Some("on".into()),
            skip_invalid: skip.then(|| "on".into()),
        });
    };
    view! {
        <section class="panel admin-form" aria-labelledby="import-h">
            <h3 id="import-h">"Import a roster (CSV)"</h3>
            <p class="muted">"A header row naming " <code>"number"</code> " and " <code>"name"</code>
                " (and optionally " <code>"email"</code> ", " <code>"department"</code> ", " <code>"card"</code>
                "), then one student per row. Nothing is written until you confirm."</p>
            <label for="roster">"Roster"</label>
            <textarea id="roster" name="csv" rows="6" placeholder="number,name,email\nS-1001,Ada Student,ada@uni.example"
                prop:value=move || csv.get() on:input=move |ev| {
                    csv.set(event_target_value(&ev));
                    edited.set(true);
                }></textarea>
            {field_error(value, "csv")}
            <button type="button" on:click=check disabled=move || csv.read().trim().is_empty()>"Check"</button>
            {move || report().map(|r| {
                let n_errors = r.errors.len();
                view! {
                    <div class="import-report" data-testid="import-report">
                        {match r.imported {
                            Some(n) => view! { <p class="ok" role="status">"Imported " {n} " students."</p> }.into_any(),
                            None => view! {
                                <p role="status">{format!("{} rows: {} ready to import, {} problem(s).", r.rows, r.valid, n_errors)}</p>
                            }.into_any(),
                        }}
                        {(n_errors > 0).then(|| view! {
                            <table class="admin-table" data-testid="import-errors">
                                <thead><tr><th scope="col">"Row"</th><th scope="col">"Field"</th><th scope="col">"Problem"</th></tr></thead>
                                <tbody>
                                    {r.errors.iter().map(|(row, field, reason)| view! {
                                        <tr><td class="num">{*row}</td><td>{field.clone()}</td><td>{reason.clone()}</td></tr>
                                    }).collect_view()}
                                </tbody>
                            </table>
                        })}
                        {(r.imported.is_none() && r.valid > 0).then(|| if n_errors == 0 {
                            view! { <button type="button" on:click=move |_| confirm(false)>{format!("Import {} students", r.valid)}</button> }.into_any()
                        } else {
                            view! { <button type="button" class="secondary" on:click=move |_| confirm(true)>{format!("Import the {} valid rows, skip the rest", r.valid)}</button> }.into_any()
                        })}
                    </div>
                }
            })}
            {form_error(value, &["csv"])}
        </section>
    }
    .into_any()
}
