//! Trusting the appliance CA where no public name exists: `GET /ca`, a page
//! that says per platform how to install the CA on a phone, with its
//! SHA-256 fingerprint to compare; the certificate itself at `GET /ca.crt`
//! (DER, `application/x-x509-ca-cert`, what phones install) and `GET
//! /ca.pem`. All public: a trust anchor is no secret.

use super::page::Assets;
use super::{with_state, Routes, State};
use sha2::{Digest, Sha256};
use std::sync::Arc;
use warp::http::header;
use warp::reply::Response;
use warp::{Filter, Reply};

/// The CA routes.
pub(super) fn routes(state: Arc<State>) -> Routes {
    let page = warp::path!("ca").and(warp::get()).and(with_state(state.clone())).map(|s: Arc<State>| page(&s));
    let crt = warp::path!("ca.crt").and(warp::get()).and(with_state(state.clone())).map(|s: Arc<State>| crt(&s));
    let pem = warp::path!("ca.pem").and(warp::get()).and(with_state(state)).map(|s: Arc<State>| pem(&s));
    page.or(crt).unify().or(pem).unify().boxed()
}

/// The CA certificate, DER.
fn der(state: &State) -> Vec<u8> {
    crate::pki::tls::certs(state.ca.cert_pem())
        .ok()
        .and_then(|c| c.into_iter().next())
        .map_or_else(Vec::new, |c| c.to_vec())
}

/// The appliance CA's fingerprint (for `/admin/status` and the console).
pub(super) fn ca_fingerprint(state: &State) -> String {
    fingerprint(&der(state))
}

/// The SHA-256 fingerprint of a DER certificate, `AB:CD:…` as phones show it.
fn fingerprint(der: &[u8]) -> String {
    Sha256::digest(der).iter().map(|b| format!("{b:02X}")).collect::<Vec<_>>().join(":")
}

/// The CA's common name.
fn subject(der: &[u8]) -> String {
    x509_parser::parse_x509_certificate(der)
        .ok()
        .and_then(|(_, cert)| {
            cert.subject().iter_common_name().next().and_then(|cn| cn.as_str().ok()).map(str::to_owned)
        })
        .unwrap_or_else(|| "the Top Dog appliance CA".into())
}

fn page(state: &State) -> Response {
    let der = der(state);
    let template = Assets::get("ca.html").map(|f| String::from_utf8_lossy(&f.data).into_owned()).unwrap_or_default();
    let html = template
        .replace("{{fingerprint}}", &fingerprint(&der))
        .replace("{{subject}}", &super::page::escape(&subject(&der)));
    let reply = warp::reply::html(html);
    warp::reply::with_header(reply, "content-security-policy", super::page::PAGE_CSP).into_response()
}

fn crt(state: &State) -> Response {
    let reply = warp::reply::with_header(der(state), header::CONTENT_TYPE, "application/x-x509-ca-cert");
    warp::reply::with_header(reply, header::CONTENT_DISPOSITION, "attachment; filename=\"topdog-ca.crt\"")
        .into_response()
}

fn pem(state: &State) -> Response {
    let reply =
        warp::reply::with_header(state.ca.cert_pem().to_owned(), header::CONTENT_TYPE, "application/x-pem-file");
    warp::reply::with_header(reply, header::CONTENT_DISPOSITION, "attachment; filename=\"topdog-ca.pem\"")
        .into_response()
}
