//! The plain-HTTP listener ACME needs (`--acme-http-addr`, port 80): it
//! answers HTTP-01 challenges at `/.well-known/acme-challenge/TOKEN` while
//! an order is open, and sends every other request to the same path on
//! the appliance's HTTPS name (308, so the method is kept), as Caddy does.
//! Nothing else is served in plain text.

use crate::acme::challenges::Challenges;
use std::convert::Infallible;
use std::sync::Arc;
use warp::http::{header, StatusCode};
use warp::reply::Response;
use warp::{Filter, Reply};

/// The challenge listener's routes; `https_base` is where others go.
pub(crate) fn challenge_routes(
    challenges: Arc<Challenges>,
    https_base: String,
) -> impl Filter<Extract = (Response,), Error = Infallible> + Clone {
    let answer = warp::path!(".well-known" / "acme-challenge" / String)
        .and(warp::get().or(warp::head()).unify())
        .map(move |token: String| answer(&challenges, &token));
    let query = warp::query::raw().or(warp::any().map(String::new)).unify();
    let elsewhere = warp::path::full()
        .and(query)
        .map(move |path: warp::path::FullPath, query: String| to_https(&https_base, path.as_str(), &query));
    answer.or(elsewhere).unify()
}

/// The key authorization for `token`, or 404 once its order has ended.
fn answer(challenges: &Challenges, token: &str) -> Response {
    match challenges.http01(token) {
        Some(key_authorization) => {
            tracing::info!("answered an ACME HTTP-01 validation");
            warp::reply::with_header(key_authorization, header::CONTENT_TYPE, "text/plain").into_response()
        }
        None => warp::reply::with_status("no such challenge\n", StatusCode::NOT_FOUND).into_response(),
    }
}

/// A permanent redirect to the same path and query over HTTPS.
fn to_https(base: &str, path: &str, query: &str) -> Response {
    let target = if query.is_empty() { format!("{base}{path}") } else { format!("{base}{path}?{query}") };
    let reply = warp::reply::with_header(warp::reply(), header::LOCATION, target);
    warp::reply::with_status(reply, StatusCode::PERMANENT_REDIRECT).into_response()
}
