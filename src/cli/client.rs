//! The admin subcommands' client: talks to the running appliance over the
//! local admin socket in the data directory (no token needed: only the
//! service's user can open it) or over the HTTPS API with the admin token
//! or a scoped API token (sent as `Authorization: Bearer`).

use anyhow::{bail, Context as _};
use bytes::Bytes;
use http_body_util::{BodyExt, Full};
use hyper_util::rt::TokioIo;
use std::path::{Path, PathBuf};

/// How to reach the appliance.
pub(crate) enum Transport {
    /// The local admin socket.
    Socket(PathBuf),
    /// The HTTPS API.
    Https {
        /// Base URL.
        url: String,
        /// The admin token or an API token.
        token: String,
        /// The client (trusting the appliance CA when given).
        client: reqwest::Client,
    },
}

/// An answer: status and JSON body.
pub(crate) struct Answer {
    /// HTTP status.
    pub status: u16,
    /// Parsed body (Null when empty or not JSON).
    pub body: serde_json::Value,
}

impl Transport {
    /// The HTTPS API at `url`, trusting `ca` (PEM file) when given.
    pub(crate) fn https(url: &str, token: String, ca: Option<&Path>) -> anyhow::Result<Transport> {
        let mut builder = reqwest::Client::builder().timeout(std::time::Duration::from_secs(30));
        if let Some(ca) = ca {
            let pem = std::fs::read(ca).with_context(|| format!("reading {}", ca.display()))?;
            builder = builder.add_root_certificate(reqwest::Certificate::from_pem(&pem)?);
        }
        Ok(Transport::Https { url: url.trim_end_matches('/').to_owned(), token, client: builder.build()? })
    }

    /// Sends one request.
    pub(crate) async fn send(
        &self,
        method: &str,
        path: &str,
        body: Option<serde_json::Value>,
    ) -> anyhow::Result<Answer> {
        let (status, bytes) = match self {
            Transport::Socket(socket) => over_socket(socket, method, path, body).await?,
            Transport::Https { url, token, client } => {
                let method = reqwest::Method::from_bytes(method.as_bytes())?;
                let request = client.request(method, format!("{url}{path}"));
                let mut request = if token.starts_with(crate::auth::api_tokens::PREFIX) {
                    request.bearer_auth(token)
                } else {
                    request.header("x-admin-token", token)
                };
                if let Some(body) = body {
                    request = request.json(&body);
                }
                let response = request.send().await.with_context(|| format!("cannot reach {url}"))?;
                (response.status().as_u16(), response.bytes().await?)
            }
        };
        Ok(Answer { status, body: serde_json::from_slice(&bytes).unwrap_or(serde_json::Value::Null) })
    }
}

async fn over_socket(
    socket: &Path,
    method: &str,
    path: &str,
    body: Option<serde_json::Value>,
) -> anyhow::Result<(u16, Bytes)> {
    let stream = match tokio::net::UnixStream::connect(socket).await {
        Ok(s) => s,
        Err(e) => bail!(
            "cannot open the admin socket {} ({e}); is `topdog serve` running with this --data-dir, and are you its user? \
             Otherwise use --url and --admin-token",
            socket.display()
        ),
    };
    let (mut sender, connection) = hyper::client::conn::http1::handshake(TokioIo::new(stream)).await?;
    tokio::spawn(connection);
    let payload = body.map(|b| b.to_string()).unwrap_or_default();
    let request = http::Request::builder()
        .method(method)
        .uri(path)
        .header(http::header::HOST, "localhost")
        .header(http::header::CONTENT_TYPE, "application/json")
        .body(Full::new(Bytes::from(payload)))?;
    let response = sender.send_request(request).await?;
    let status = response.status().as_u16();
    let bytes = response.into_body().collect().await?.to_bytes();
    Ok((status, bytes))
}
