//! The one place where errors become HTTP answers: the status of the
//! error's kind and a `{"error": code, "detail": text}` body. 4xx details
//! explain the problem; internal failures are logged with their cause (and
//! the request id, from the request's span) and answered with an opaque
//! 500. Also the security headers every answer carries.

use crate::error::{Coded, Error, Kind};
use crate::messaging::MessagingError;
use crate::pairing::PairingError;
use serde::Serialize;
use std::convert::Infallible;
use warp::http::{header, HeaderValue, StatusCode};
use warp::reply::Response;
use warp::{Rejection, Reply};

/// The status of each kind of error.
pub(super) fn status(kind: Kind) -> StatusCode {
    match kind {
        Kind::Invalid => StatusCode::BAD_REQUEST,
        Kind::Unauthenticated => StatusCode::UNAUTHORIZED,
        Kind::Forbidden => StatusCode::FORBIDDEN,
        Kind::NotFound => StatusCode::NOT_FOUND,
        Kind::Conflict => StatusCode::CONFLICT,
        Kind::Gone => StatusCode::GONE,
        Kind::SeatsExhausted => StatusCode::PAYMENT_REQUIRED,
        Kind::Busy => StatusCode::TOO_MANY_REQUESTS,
        Kind::Upstream => StatusCode::BAD_GATEWAY,
        Kind::Internal => StatusCode::INTERNAL_SERVER_ERROR,
    }
}

/// The status and code for an error.
pub(crate) fn classify(e: &Error) -> (StatusCode, &'static str) {
    let (code, kind) = e.coded();
    (status(kind), code)
}

/// What a phone is told to wait when the command queue is full.
const QUEUE_RETRY_S: u64 = 10;

/// A JSON error answer.
pub(crate) fn error_body(status: StatusCode, code: &str, detail: &str) -> Response {
    let body = warp::reply::json(&serde_json::json!({ "error": code, "detail": detail }));
    warp::reply::with_status(body, status).into_response()
}

/// The answer for an error (internal causes are logged, not sent).
pub(crate) fn reply_error(e: &Error) -> Response {
    let (status, code) = classify(e);
    if status.is_server_error() && status != StatusCode::BAD_GATEWAY {
        tracing::error!(error = %e, "internal error");
        return error_body(status, code, "internal error; see the appliance log");
    }
    if let Error::Pairing(PairingError::Sms { code: invite_code, .. }) = e {
        let body = serde_json::json!({ "error": code, "detail": e.to_string(), "invite_code": invite_code });
        return warp::reply::with_status(warp::reply::json(&body), status).into_response();
    }
    let mut response = error_body(status, code, &e.to_string());
    let retry_after = match e {
        Error::RateLimited(limited) | Error::Messaging(MessagingError::RateLimited(limited)) => {
            Some(limited.retry_after_s)
        }
        Error::Messaging(MessagingError::QueueFull(_)) => Some(QUEUE_RETRY_S),
        _ => None,
    };
    if let Some(v) = retry_after.and_then(|s| HeaderValue::from_str(&s.to_string()).ok()) {
        response.headers_mut().insert(header::RETRY_AFTER, v);
    }
    response
}

/// JSON with `status`, or the error's answer.
pub(crate) fn respond<T: Serialize>(status: StatusCode, result: Result<T, Error>) -> Response {
    match result {
        Ok(value) => warp::reply::with_status(warp::reply::json(&value), status).into_response(),
        Err(e) => reply_error(&e),
    }
}

/// Parses a JSON body, with a clear error for each way it can be wrong.
pub(crate) fn parse_json<T: serde::de::DeserializeOwned>(body: &[u8]) -> Result<T, Error> {
    serde_json::from_slice(body)
        .map_err(|e| Error::BadRequest { code: "invalid_json", detail: format!("request body: {e}") })
}

/// Turns warp's own rejections (no route, wrong method, body too large)
/// into JSON errors.
pub(crate) async fn recover(rejection: Rejection) -> Result<Response, Infallible> {
    let (status, code, detail) = if rejection.is_not_found() {
        (StatusCode::NOT_FOUND, "not_found", "no such route".to_owned())
    } else if rejection.find::<super::HeadersTooLarge>().is_some() {
        let detail = format!("the request's headers may be at most {} bytes", super::MAX_HEADERS);
        (StatusCode::from_u16(431).unwrap_or(StatusCode::BAD_REQUEST), "headers_too_large", detail)
    } else if rejection.find::<warp::reject::PayloadTooLarge>().is_some() {
        (
            StatusCode::PAYLOAD_TOO_LARGE,
            "payload_too_large",
            format!("the body may be at most {} bytes", super::MAX_BODY),
        )
    } else if let Some(refused) = rejection.find::<super::BodyRefused>() {
        body_refused(*refused)
    } else if rejection.find::<warp::reject::LengthRequired>().is_some() {
        (StatusCode::LENGTH_REQUIRED, "length_required", "send a Content-Length header".to_owned())
    } else if rejection.find::<warp::reject::MethodNotAllowed>().is_some() {
        (StatusCode::METHOD_NOT_ALLOWED, "method_not_allowed", "this route does not take that method".to_owned())
    } else if let Some(e) = rejection.find::<warp::reject::InvalidQuery>() {
        (StatusCode::BAD_REQUEST, "invalid_query", e.to_string())
    } else if let Some(e) = rejection.find::<warp::reject::InvalidHeader>() {
        (StatusCode::BAD_REQUEST, "invalid_header", e.to_string())
    } else if rejection.find::<warp::reject::UnsupportedMediaType>().is_some() {
        (StatusCode::UNSUPPORTED_MEDIA_TYPE, "unsupported_media_type", "send JSON".to_owned())
    } else {
        tracing::warn!(?rejection, "unhandled rejection");
        (StatusCode::BAD_REQUEST, "bad_request", "the request could not be understood".to_owned())
    };
    Ok(error_body(status, code, &detail))
}

fn body_refused(refused: super::BodyRefused) -> (StatusCode, &'static str, String) {
    match refused {
        super::BodyRefused::TimedOut => {
            let detail = format!("the request body did not arrive within {} s", super::BODY_TIMEOUT.as_secs());
            (StatusCode::REQUEST_TIMEOUT, "request_timeout", detail)
        }
        super::BodyRefused::TooLarge => (
            StatusCode::PAYLOAD_TOO_LARGE,
            "payload_too_large",
            format!("the body may be at most {} bytes", super::MAX_BODY),
        ),
        super::BodyRefused::Broken => (StatusCode::BAD_REQUEST, "body_incomplete", "the body broke off".to_owned()),
    }
}

/// A 405 answer names the methods the path does take (`Allow`, RFC 9110).
pub(crate) fn allow_header(path: &str, mut response: Response) -> Response {
    if response.status() != StatusCode::METHOD_NOT_ALLOWED {
        return response;
    }
    let template = super::routes_table::route_template(path);
    let methods: Vec<&str> = super::ROUTES.iter().filter(|(_, t)| *t == template).map(|(m, _)| *m).collect();
    if let Ok(value) = HeaderValue::from_str(&methods.join(", ")) {
        response.headers_mut().insert(header::ALLOW, value);
    }
    response
}

/// Headers every answer carries: no caching of API data, no framing, no
/// referrer (pairing links carry a code).
pub(crate) fn secure_headers(mut response: Response) -> Response {
    let headers = response.headers_mut();
    let fixed = [
        (header::CACHE_CONTROL, "no-store"),
        (header::X_CONTENT_TYPE_OPTIONS, "nosniff"),
        (header::X_FRAME_OPTIONS, "DENY"),
        (header::REFERRER_POLICY, "no-referrer"),
    ];
    for (name, value) in fixed {
        headers.entry(name).or_insert(HeaderValue::from_static(value));
    }
    response
}
