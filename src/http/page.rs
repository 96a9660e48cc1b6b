//! The web pages, embedded in the binary: the admin console (`/`), the
//! phone's pairing page (`GET /pair?code=…`), the phone web app (`/app`,
//! with its manifest and service worker), the API description
//! (`/openapi.json`, readable at `/docs`) and their assets. Opening the
//! pairing page only reads the invite — link scanners and message previews
//! cannot use it up; only the Accept button (accept-invite) does.

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
pub(super) struct Assets;

#[derive(Debug, Deserialize)]
struct PairQuery {
    code: Option<String>,
}

pub(super) const PAGE_CSP: &str = "default-src 'none'; script-src 'self'; style-src 'self'; connect-src 'self'; img-src 'self' data:; manifest-src 'self'; worker-src 'self'; form-action 'none'; base-uri 'none'; frame-ancestors 'none'";

/// The page routes.
pub(super) fn routes(state: Arc<State>) -> Routes {
    let pair = warp::path!("pair")
        .and(warp::get())
        .and(warp::query::<PairQuery>())
        .and(with_state(state.clone()))
        .and(ctx())
        .then(pair_page);
    let asset = warp::path("assets")
        .and(warp::path::tail())
        .and(warp::get())
        .map(|tail: warp::path::Tail| asset(tail.as_str()));
    let console = warp::path::end().and(warp::get()).and(with_state(state.clone())).map(|s: Arc<State>| console(&s));
    let app = warp::path!("app").and(warp::get()).map(|| page("app.html"));
    let manifest = warp::path!("manifest.webmanifest").and(warp::get()).map(|| root_file("manifest.webmanifest"));
    let worker = warp::path!("sw.js").and(warp::get()).map(|| root_file("sw.js"));
    let openapi = warp::path!("openapi.json").and(warp::get()).map(|| root_file("openapi.json"));
    let docs = warp::path!("docs").and(warp::get()).map(|| page("docs.html"));
    let pages = console.or(app).unify().or(manifest).unify().or(worker).unify().or(openapi).unify().or(docs).unify();
    pair.or(asset).unify().or(pages).unify().boxed()
}

/// A static page, with the pages' security policy.
fn page(name: &str) -> Response {
    match Assets::get(name) {
        Some(file) => {
            let html = warp::reply::html(file.data.into_owned());
            warp::reply::with_header(html, "content-security-policy", PAGE_CSP).into_response()
        }
        None => super::errors::error_body(StatusCode::NOT_FOUND, "not_found", "no such page"),
    }
}

/// The console: its sign-in offers the company's identity provider when
/// single sign-on is set up, the admin token as the break-glass way in.
fn console(state: &State) -> Response {
    let template = Assets::get("admin.html").map(|f| String::from_utf8_lossy(&f.data).into_owned()).unwrap_or_default();
    let (sso_hidden, token_hint) = match state.oidc {
        Some(_) => ("", "Break-glass: the admin token printed when the appliance first started (or set with <code>ADMIN_TOKEN</code>); its use is audited."),
        None => ("hidden", "Use the admin token printed when the appliance first started (or set with <code>ADMIN_TOKEN</code>)."),
    };
    let html = template.replace("{{sso_hidden}}", sso_hidden).replace("{{token_hint}}", token_hint);
    warp::reply::with_header(warp::reply::html(html), "content-security-policy", PAGE_CSP).into_response()
}

/// A file served at the root (the service worker's scope is its path).
fn root_file(name: &str) -> Response {
    let mime = match name.rsplit('.').next() {
        Some("js") => "text/javascript; charset=utf-8",
        Some("json") => "application/json",
        _ => "application/manifest+json",
    };
    match Assets::get(name) {
        Some(file) => warp::reply::with_header(file.data.into_owned(), header::CONTENT_TYPE, mime).into_response(),
        None => super::errors::error_body(StatusCode::NOT_FOUND, "not_found", "no such file"),
    }
}

/// What the pairing page says about the device it was opened on.
fn describe_device(user_agent: Option<&str>) -> String {
    let ua = user_agent.unwrap_or("");
    let device = [
        ("iPhone", "an iPhone"),
        ("iPad", "an iPad"),
        ("Android", "an Android phone"),
        ("Windows", "a Windows computer"),
        ("Macintosh", "a Mac"),
        ("Linux", "a Linux computer"),
    ]
    .iter()
    .find(|(needle, _)| ua.contains(needle))
    .map_or("this device", |(_, name)| name);
    let browser = [("Edg/", "Edge"), ("Firefox/", "Firefox"), ("Chrome/", "Chrome"), ("Safari/", "Safari")]
        .iter()
        .find(|(needle, _)| ua.contains(needle))
        .map(|(_, name)| *name);
    match browser {
        Some(browser) => format!("{browser} on {device}"),
        None => device.to_owned(),
    }
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
pub(super) fn escape(text: &str) -> String {
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
        .replace("{{device}}", &escape(&describe_device(ctx.user_agent())))
        .replace("{{message}}", view.message)
        .replace("{{form_hidden}}", hidden(!view.can_accept))
        .replace("{{otp_hidden}}", hidden(!view.needs_otp));
    let reply = warp::reply::with_status(warp::reply::html(html), view.status);
    warp::reply::with_header(reply, "content-security-policy", PAGE_CSP).into_response()
}

#[cfg(test)]
mod tests {
    #[test]
    fn names_the_device_from_its_user_agent() {
        let pixel = "Mozilla/5.0 (Linux; Android 14; Pixel 8) AppleWebKit/537.36 Chrome/126.0 Mobile Safari/537.36";
        assert_eq!(super::describe_device(Some(pixel)), "Chrome on an Android phone");
        assert_eq!(super::describe_device(None), "this device");
    }

    #[test]
    fn escapes_markup() {
        assert_eq!(super::escape("<b>\"A&B'</b>"), "&lt;b&gt;&quot;A&amp;B&#39;&lt;/b&gt;");
    }
}
