//! Ticket links: at a kiosk, each open request shows a QR code of a signed, short-lived
//! `/t/{token}` link that opens the ticket on the student's phone without signing in there.

use super::AppContext;
use crate::AppError;
use auth::TicketError;
use domain::{Ticket, TicketLink};

/// The link and QR code for `request`, valid for [`auth::TICKET_LINK_MS`] from `now`.
pub async fn link(ctx: &AppContext, request: i64, now: i64) -> Result<TicketLink, AppError> {
    let token = ctx.auth.tickets().await?.sign(request, now + auth::TICKET_LINK_MS);
    let url = format!("{}/t/{token}", ctx.public_url.trim_end_matches('/'));
    Ok(TicketLink { id: request, svg: qr_svg(&url)?, url })
}

/// A QR code of `text` as an inline SVG element (no XML declaration: it goes inside HTML).
fn qr_svg(text: &str) -> Result<String, AppError> {
    let code = qrcode::QrCode::with_error_correction_level(text, qrcode::EcLevel::M).map_err(super::internal)?;
    let svg = code
        .render::<qrcode::render::svg::Color>()
        .min_dimensions(168, 168)
        .dark_color(qrcode::render::svg::Color("#000"))
        .light_color(qrcode::render::svg::Color("#fff"))
        .build();
    Ok(match svg.find("<svg") {
        Some(start) => svg[start..].to_owned(),
        None => svg,
    })
}

const NOT_A_TICKET: &str = "This is not a valid ticket link.";

/// The request `token` opens at `now`, and its student: a forged or mangled token is a 404 (the
/// same answer as a request that does not exist), an expired one a 410.
pub async fn verify(auth: &auth::Auth, store: &store::Store, token: &str, now: i64) -> Result<(i64, i64), AppError> {
    let request = match auth.tickets().await?.verify(token, now) {
        Ok(id) => id,
        Err(TicketError::Expired) => {
            return Err(AppError::Gone(
                "This ticket link has expired. Sign in to see your requests, or ask the kiosk for a new code.".into(),
            ));
        }
        Err(TicketError::Malformed | TicketError::BadSignature) => return Err(AppError::NotFound(NOT_A_TICKET.into())),
    };
    let student = store.request_owner(request).await?.ok_or_else(|| AppError::NotFound(NOT_A_TICKET.into()))?;
    Ok((request, student))
}

/// The request a ticket token opens, as the ticket page shows it, with a token of its own for
/// following it live (valid for [`auth::TICKET_FOLLOW_MS`]).
pub async fn open(ctx: &AppContext, token: &str, now: i64) -> Result<Ticket, AppError> {
    let (request, student) = verify(&ctx.auth, &ctx.store, token, now).await?;
    let not_found = || AppError::NotFound(NOT_A_TICKET.into());
    let tickets = ctx.auth.tickets().await?;
    let view = ctx.store.request_view(request).await?.ok_or_else(not_found)?;
    let cursor = ctx.store.newest_request_event(student).await?;
    let follow = tickets.sign(request, now + auth::TICKET_FOLLOW_MS);
    Ok(Ticket { request: view.redacted(), cursor, follow })
}
