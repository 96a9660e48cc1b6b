//! A request id for every HTTP request: the caller's `x-request-id` when it
//! is a short plain token (as a proxy or CI system sets it), else a new
//! one. Each request runs in a `request` tracing span carrying the id,
//! method and path, so everything logged while serving it (an internal
//! error's cause, say) names the request; the id is echoed in the answer's
//! `x-request-id` header for the caller to quote.

use http::HeaderValue;
use std::future::Future;
use std::pin::Pin;
use std::task::{Context, Poll};
use tower_service::Service;
use tracing::Instrument;

/// The header that carries the id both ways.
pub(super) const HEADER: &str = "x-request-id";
const MAX_LEN: usize = 64;

/// The id of the request: the caller's when acceptable, else a new one.
fn id_for<B>(req: &http::Request<B>) -> String {
    let given = req.headers().get(HEADER).and_then(|v| v.to_str().ok());
    let plain = |s: &&str| {
        !s.is_empty() && s.len() <= MAX_LEN && s.chars().all(|c| c.is_ascii_alphanumeric() || "-_.".contains(c))
    };
    match given.filter(plain) {
        Some(id) => id.to_owned(),
        None => uuid::Uuid::new_v4().simple().to_string(),
    }
}

/// Wraps a service so each request gets its id, span and answer header.
#[derive(Clone)]
pub(super) struct WithRequestId<S> {
    pub inner: S,
}

impl<S, B> Service<http::Request<B>> for WithRequestId<S>
where
    S: Service<http::Request<B>, Response = warp::reply::Response>,
    S::Future: Send + 'static,
{
    type Response = warp::reply::Response;
    type Error = S::Error;
    type Future = Pin<Box<dyn Future<Output = Result<Self::Response, S::Error>> + Send>>;

    fn poll_ready(&mut self, cx: &mut Context<'_>) -> Poll<Result<(), Self::Error>> {
        self.inner.poll_ready(cx)
    }

    fn call(&mut self, req: http::Request<B>) -> Self::Future {
        let id = id_for(&req);
        let span = tracing::info_span!("request", id = %id, method = %req.method(), path = %req.uri().path());
        let answer = span.in_scope(|| self.inner.call(req));
        Box::pin(
            async move {
                let mut response = answer.await?;
                if let Ok(value) = HeaderValue::from_str(&id) {
                    response.headers_mut().insert(HEADER, value);
                }
                Ok(response)
            }
            .instrument(span),
        )
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn with(header: Option<&str>) -> http::Request<()> {
        let mut req = http::Request::new(());
        if let Some(h) = header {
            req.headers_mut().insert(HEADER, HeaderValue::from_str(h).unwrap());
        }
        req
    }

    #[test]
    fn a_plain_caller_id_is_kept_and_anything_else_replaced() {
        assert_eq!(id_for(&with(Some("ci-build-42.7"))), "ci-build-42.7");
        for odd in [None, Some(""), Some("a b"), Some("x\"y"), Some(&"a".repeat(65)[..])] {
            let id = id_for(&with(odd));
            assert_eq!(id.len(), 32, "{odd:?} → {id}");
            assert!(id.chars().all(|c| c.is_ascii_hexdigit()));
        }
    }
}
