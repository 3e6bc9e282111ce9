//! Desks: every desk unit with its online state, last message and clock; registering one (its
//! MQTT password shown once), a new password, and resetting a desk's clock after a firmware wipe.

use super::{AdminFrame, field_error, form_error, refusal, seen};
use crate::admin::{
    AdminDeskBind, AdminDeskRegister, AdminDeskResetClock, AdminDeskRetire, AdminDeskRotate, DeskCredential, DeskLine,
    admin_desks,
};
use leptos::form::ActionForm;
use leptos::prelude::*;

#[component]
pub fn DesksPage() -> impl IntoView {
    let register = ServerAction::<AdminDeskRegister>::new();
    let rotate = ServerAction::<AdminDeskRotate>::new();
    let reset = ServerAction::<AdminDeskResetClock>::new();
    let bind = ServerAction::<AdminDeskBind>::new();
    let retire = ServerAction::<AdminDeskRetire>::new();
    let moves = Moves { bind, retire };
    // Reloaded after each change.
    let list = Resource::new_blocking(
        move || {
            (
                register.version().get(),
                rotate.version().get(),
                reset.version().get(),
                bind.version().get(),
                retire.version().get(),
            )
        },
        |_| admin_desks(),
    );
    // The newest password issued on this page: shown once, never stored in the browser.
    let issued = RwSignal::new(None::<DeskCredential>);
    Effect::new(move |_| {
        if let Some(Ok(c)) = register.value().get() {
            issued.set(Some(c));
        }
    });
    Effect::new(move |_| {
        if let Some(Ok(c)) = rotate.value().get() {
            issued.set(Some(c));
        }
    });
    view! {
        <AdminFrame title="Desk units" current="/admin/desks">
            {move || issued.get().map(|c| view! {
                <section class="panel issued" role="status" data-testid="desk-password">
                    <h3>"MQTT credential for " <code>{c.desk.clone()}</code></h3>
                    <p>"User name and client id: " <code>{c.desk.clone()}</code></p>
                    <p>"Password: " <code class="secret">{c.password.clone()}</code></p>
                    <p class="muted">"Shown this once: put it on the desk unit now. Only a hash is kept; a lost password is replaced with “New password”."</p>
                </section>
            })}
            <Transition fallback=|| view! { <p class="loading">"Loading…"</p> }>
                {move || Suspend::new(async move {
                    match list.await {
                        Ok(data) => view! {
                            <DeskTable desks=data.desks unbound=data.unbound.clone() now=data.now rotate reset moves />
                            <Register unbound=data.unbound register />
                        }
                        .into_any(),
                        Err(e) => refusal(e),
                    }
                })}
            </Transition>
            {form_error(rotate.value(), &[])}
            {form_error(reset.value(), &[])}
            {form_error(bind.value(), &[])}
            {form_error(retire.value(), &[])}
        </AdminFrame>
    }
}

/// Moving a desk to someone else, and retiring it.
#[derive(Clone, Copy)]
struct Moves {
    bind: ServerAction<AdminDeskBind>,
    retire: ServerAction<AdminDeskRetire>,
}

#[component]
fn DeskTable(
    desks: Vec<DeskLine>,
    unbound: Vec<(i64, String)>,
    now: i64,
    rotate: ServerAction<AdminDeskRotate>,
    reset: ServerAction<AdminDeskResetClock>,
    moves: Moves,
) -> impl IntoView {
    if desks.is_empty() {
        return view! { <p class="empty">"No desk units yet: register the first one below."</p> }.into_any();
    }
    view! {
        <table class="admin-table" data-testid="desk-table">
            <thead>
                <tr><th scope="col">"Desk"</th><th scope="col">"Faculty member"</th><th scope="col">"Online"</th>
                    <th scope="col">"Last message"</th><th scope="col">"Clock (boot:seq)"</th>
                    <th scope="col">"Credential"</th><th scope="col">"Unit"</th><th scope="col">"Actions"</th></tr>
            </thead>
            <tbody>
                {desks.into_iter().map(|d| {
                    let faculty = match (d.faculty_id, d.faculty_name) {
                        (Some(id), Some(name)) => view! { <a href=format!("/admin/faculty/{id}")>{name}</a> }.into_any(),
                        _ => view! { <span class="muted">"unbound"</span> }.into_any(),
                    };
                    let (rotate_id, reset_id) = (d.id.clone(), d.id.clone());
                    let move_it = view! { <MoveDesk desk=d.id.clone() bound=d.faculty_id.is_some() unbound=unbound.clone() moves /> };
                    view! {
                        <tr data-desk=d.id.clone() data-online=d.online.to_string()>
                            <td><code>{d.id.clone()}</code></td>
                            <td>{faculty}</td>
                            <td>{if d.online { "online" } else { "offline" }}</td>
                            <td>{seen(d.last_seen, now)}</td>
                            <td class="num">{d.clock.unwrap_or_else(|| "—".into())}</td>
                            <td>{if d.has_credential { "set" } else { "none" }}</td>
                            <td class="unit">{d.info.clone().unwrap_or_else(|| "—".into())}</td>
                            <td class="row-actions">
                                <ActionForm action=rotate>
                                    <input type="hidden" name="desk" value=rotate_id />
                                    <button type="submit" class="secondary">"New password"</button>
                                </ActionForm>
                                <ActionForm action=reset>
                                    <input type="hidden" name="desk" value=reset_id />
                                    <button type="submit" class="secondary" title="After a firmware wipe: its next message applies whatever its boot and seq">"Reset clock"</button>
                                </ActionForm>
                                {move_it}
                            </td>
                        </tr>
                    }
                }).collect_view()}
            </tbody>
        </table>
    }
    .into_any()
}

#[component]
fn Register(unbound: Vec<(i64, String)>, register: ServerAction<AdminDeskRegister>) -> impl IntoView {
    let value = register.value();
    view! {
        <section class="panel admin-form" aria-labelledby="reg-h">
            <h3 id="reg-h">"Register a desk unit"</h3>
            {if unbound.is_empty() {
                view! { <p class="muted">"Every faculty member has a desk. Add a faculty member first."</p> }.into_any()
            } else {
                view! {
                    <ActionForm action=register>
                        <div class="fields">
                            <div>
                                <label for="desk-id">"Desk id (its MQTT user name)"</label>
                                <input id="desk-id" name="desk" required maxlength="64" pattern="[A-Za-z0-9_\\-]{1,64}" placeholder="desk-101" autocomplete="off" />
                                {field_error(value, "desk")}
                            </div>
                            <div>
                                <label for="desk-faculty">"Faculty member"</label>
                                <select id="desk-faculty" name="faculty_id">
                                    {unbound.into_iter().map(|(id, name)| view! { <option value=id>{name}</option> }).collect_view()}
                                </select>
                                {field_error(value, "faculty_id")}
                            </div>
                        </div>
                        <button type="submit" disabled=move || register.pending().get()>"Register"</button>
                    </ActionForm>
                }
                .into_any()
            }}
            {form_error(value, &["desk", "faculty_id"])}
        </section>
    }
}

/// Bind to someone without a desk, unbind, or retire (behind a disclosure: they change who the
/// board shows as present).
#[component]
fn MoveDesk(desk: String, bound: bool, unbound: Vec<(i64, String)>, moves: Moves) -> impl IntoView {
    let Moves { bind, retire } = moves;
    let (d1, d2, d3) = (desk.clone(), desk.clone(), desk);
    view! {
        <details class="move">
            <summary>"Move / retire…"</summary>
            <div class="manage">
                {(!unbound.is_empty()).then(|| view! {
                    <ActionForm action=bind>
                        <input type="hidden" name="desk" value=d1 />
                        <label>"Bind to"
                            <select name="faculty_id">
                                {unbound.into_iter().map(|(id, name)| view! { <option value=id>{name}</option> }).collect_view()}
                            </select>
                        </label>
                        <button type="submit" class="secondary">"Bind"</button>
                    </ActionForm>
                })}
                {bound.then(|| view! {
                    <ActionForm action=bind>
                        <input type="hidden" name="desk" value=d2 />
                        <input type="hidden" name="faculty_id" value="" />
                        <button type="submit" class="secondary">"Unbind"</button>
                    </ActionForm>
                })}
                <ActionForm action=retire>
                    <input type="hidden" name="desk" value=d3 />
                    <button type="submit" class="secondary">"Retire (deletes its credential)"</button>
                </ActionForm>
            </div>
        </details>
    }
    .into_any()
}
