//! The phone's pairing page (`GET /pair?code=…`) and its embedded assets.
//! Opening the page only reads the invite — link scanners and message
//! previews cannot use it up; only the Accept button (accept-invite) does.

use super::context::{ctx, Ctx};
use super::{with_state, Routes, State};
use crate::limits::Bucket;
use crate::pairing::InviteStatus;
use rust_embed::RustEmbed;
use serde::Deserialize;
use std::sync::Arc;
use warp::http::{header, StatusCode};
use warp::reply::Response;
use warp::{Filter, Reply};

#[derive(RustEmbed)]
#[folder = "assets/"]
struct Assets;

#[derive(Debug, Deserialize)]
struct PairQuery {
    code: Option<String>,
}

const PAGE_CSP: &str = "default-src 'none'; script-src 'self'; style-src 'self'; connect-src 'self'; img-src 'self'; form-action 'none'; base-uri 'none'; frame-ancestors 'none'";

/// The page routes.
pub fn routes(state: Arc<State>) -> Routes {
    let pair = warp::path!("pair")
        .and(warp::get())
        .and(warp::query::<PairQuery>())
        .and(with_state(state))
        .and(ctx())
        .then(pair_page);
    let asset = warp::path("assets")
        .and(warp::path::tail())
        .and(warp::get())
        .map(|tail: warp::path::Tail| asset(tail.as_str()));
    pair.or(asset).unify().boxed()
}

fn asset(name: &str) -> Response {
    match Assets::get(name) {
        Some(file) if !name.ends_with(".html") => {
            let mime = match name.rsplit('.').next() {
                Some("js") => "text/javascript; charset=utf-8",
                Some("css") => "text/css; charset=utf-8",
                Some("svg") => "image/svg+xml",
                Some("png") => "image/png",
                Some("json") => "application/json",
                _ => "application/octet-stream",
            };
            warp::reply::with_header(file.data.into_owned(), header::CONTENT_TYPE, mime).into_response()
        }
        _ => super::errors::error_body(StatusCode::NOT_FOUND, "not_found", "no such asset"),
    }
}

/// Escapes text for HTML.
fn escape(text: &str) -> String {
    text.chars()
        .map(|c| match c {
            '&' => "&amp;".to_owned(),
            '<' => "&lt;".to_owned(),
            '>' => "&gt;".to_owned(),
            '"' => "&quot;".to_owned(),
            '\'' => "&#39;".to_owned(),
            c => c.to_string(),
        })
        .collect()
}

struct View {
    status: StatusCode,
    state: &'static str,
    user_name: String,
    message: &'static str,
    can_accept: bool,
    needs_otp: bool,
}

fn view(state: &State, ctx: &Ctx, code: Option<&str>) -> View {
    let refused = |status, state, message| View {
        status,
        state,
        user_name: "—".into(),
        message,
        can_accept: false,
        needs_otp: false,
    };
    if ctx.limit(state, Bucket::Accepts).is_err() {
        return refused(
            StatusCode::TOO_MANY_REQUESTS,
            "limited",
            "Too many attempts from this device. Wait a minute and reload.",
        );
    }
    let Some(Ok(preview)) = code.map(|c| state.pairing.preview(c)) else {
        return refused(StatusCode::NOT_FOUND, "unknown", "This pairing link is not valid. Ask for a new one.");
    };
    let (state_name, message) = match preview.status {
        InviteStatus::Pending => ("pending", "Tap Accept to pair this phone."),
        InviteStatus::Accepted => ("used", "This pairing link has already been used."),
        InviteStatus::Expired => ("expired", "This pairing link has expired. Ask for a new one."),
        InviteStatus::Cancelled => ("cancelled", "This pairing link was cancelled."),
    };
    let can_accept = preview.status == InviteStatus::Pending;
    View {
        status: StatusCode::OK,
        state: state_name,
        user_name: preview.user_name,
        message,
        can_accept,
        needs_otp: preview.needs_otp,
    }
}

async fn pair_page(query: PairQuery, state: Arc<State>, ctx: Ctx) -> Response {
    let view = view(&state, &ctx, query.code.as_deref());
    let template = Assets::get("pair.html").map(|f| String::from_utf8_lossy(&f.data).into_owned()).unwrap_or_default();
    let hidden = |yes: bool| if yes { "hidden" } else { "" };
    let html = template
        .replace("{{state}}", view.state)
        .replace("{{needs_otp}}", if view.needs_otp { "true" } else { "false" })
        .replace("{{user_name}}", &escape(&view.user_name))
        .replace("{{message}}", view.message)
        .replace("{{form_hidden}}", hidden(!view.can_accept))
        .replace("{{otp_hidden}}", hidden(!view.needs_otp));
    let reply = warp::reply::with_status(warp::reply::html(html), view.status);
    warp::reply::with_header(reply, "content-security-policy", PAGE_CSP).into_response()
}

#[cfg(test)]
mod tests {
    #[test]
    fn escapes_markup() {
        assert_eq!(super::escape("<b>\"A&B'</b>"), "&lt;b&gt;&quot;A&amp;B&#39;&lt;/b&gt;");
    }
}
