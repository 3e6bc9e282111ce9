//! Kiosks: enrol one (its one-time code, shown once), see when each was last seen, revoke one.

use super::{AdminFrame, field_error, form_error, refusal, seen};
use crate::admin::{AdminKioskAdd, AdminKioskRevoke, admin_kiosks};
use leptos::form::ActionForm;
use leptos::prelude::*;

#[component]
pub fn KiosksPage() -> impl IntoView {
    let add = ServerAction::<AdminKioskAdd>::new();
    let revoke = ServerAction::<AdminKioskRevoke>::new();
    let list = Resource::new_blocking(move || (add.version().get(), revoke.version().get()), |_| admin_kiosks());
    view! {
        <AdminFrame title="Kiosks" current="/admin/kiosks">
            {move || add.value().get().and_then(Result::ok).map(|k| view! {
                <section class="panel issued" role="status" data-testid="kiosk-code">
                    <h3>"Enrolment code for " {k.name}</h3>
                    <p><code class="secret">{k.code}</code></p>
                    <p class="muted">"Open " <code>"/kiosk/enrol"</code> " in the kiosk's browser within 15 minutes and type this code. It works once."</p>
                </section>
            })}
            <Transition fallback=|| view! { <p class="loading">"Loading…"</p> }>
                {move || Suspend::new(async move {
                    match list.await {
                        Ok(data) if data.kiosks.is_empty() => view! { <p class="empty">"No kiosks yet."</p> }.into_any(),
                        Ok(data) => view! {
                            <table class="admin-table" data-testid="kiosk-table">
                                <thead><tr><th scope="col">"Id"</th><th scope="col">"Name"</th><th scope="col">"State"</th>
                                    <th scope="col">"Last seen"</th><th scope="col">"Actions"</th></tr></thead>
                                <tbody>
                                    {data.kiosks.into_iter().map(|k| view! {
                                        <tr data-kiosk=k.id>
                                            <td class="num">{k.id}</td>
                                            <td>{k.name}</td>
                                            <td>{k.state}</td>
                                            <td>{seen(k.last_seen, data.now)}</td>
                                            <td class="row-actions">
                                                {(!k.revoked).then(|| view! {
                                                    <ActionForm action=revoke>
                                                        <input type="hidden" name="id" value=k.id />
                                                        <button type="submit" class="secondary">"Revoke"</button>
                                                    </ActionForm>
                                                })}
                                            </td>
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
            {form_error(revoke.value(), &[])}
            <section class="panel admin-form" aria-labelledby="kiosk-h">
                <h3 id="kiosk-h">"Enrol a kiosk"</h3>
                <ActionForm action=add>
                    <label for="kiosk-name">"Name (where it stands)"</label>
                    <input id="kiosk-name" name="name" required maxlength="80" placeholder="Engineering lobby" />
                    {field_error(add.value(), "name")}
                    <button type="submit">"Get an enrolment code"</button>
                </ActionForm>
                {form_error(add.value(), &["name"])}
            </section>
        </AdminFrame>
    }
}
