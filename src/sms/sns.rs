//! AWS SNS: the `Publish` action with `PhoneNumber`, as a form POST signed
//! with SigV4 (`aws-sigv4`), to the regional endpoint or
//! `AWS_ENDPOINT_URL_SNS`.

use super::{http_client, unreachable, Sms, SmsError};
use crate::sms::number::PhoneNumber;
use aws_credential_types::Credentials;
use aws_sigv4::http_request::{sign, SignableBody, SignableRequest, SigningSettings};
use aws_sigv4::sign::v4;
use aws_smithy_runtime_api::client::identity::Identity;
use std::time::SystemTime;

/// The SNS `Publish` API.
pub(super) struct Sns {
    client: reqwest::Client,
    region: String,
    endpoint: String,
    identity: Identity,
}

const FORM: &str = "application/x-www-form-urlencoded; charset=utf-8";

impl Sns {
    /// A client for one region and credential.
    pub(super) fn new(
        region: String,
        endpoint: String,
        key_id: String,
        secret: String,
        session: Option<String>,
    ) -> Sns {
        let identity = Credentials::new(key_id, secret, session, None, "topdog-config").into();
        Sns { client: http_client(), region, endpoint, identity }
    }

    fn signed_request(&self, body: String) -> Result<http::Request<String>, SmsError> {
        let failed = |e: &dyn std::fmt::Display| SmsError::Provider { provider: "sns", message: e.to_string() };
        let mut request = http::Request::post(&self.endpoint)
            .header(http::header::CONTENT_TYPE, FORM)
            .body(body)
            .map_err(|e| failed(&e))?;
        let params = v4::SigningParams::builder()
            .identity(&self.identity)
            .region(&self.region)
            .name("sns")
            .time(SystemTime::now())
            .settings(SigningSettings::default())
            .build()
            .map_err(|e| failed(&e))?
            .into();
        let headers = request.headers().iter().filter_map(|(k, v)| Some((k.as_str(), v.to_str().ok()?)));
        let signable =
            SignableRequest::new("POST", &self.endpoint, headers, SignableBody::Bytes(request.body().as_bytes()))
                .map_err(|e| failed(&e))?;
        let (instructions, _) = sign(signable, &params).map_err(|e| failed(&e))?.into_parts();
        instructions.apply_to_request_http1x(&mut request);
        Ok(request)
    }
}

fn xml_field<'a>(xml: &'a str, tag: &str) -> Option<&'a str> {
    let start = xml.find(&format!("<{tag}>"))? + tag.len() + 2;
    let end = xml[start..].find(&format!("</{tag}>"))? + start;
    Some(&xml[start..end])
}

#[async_trait::async_trait]
impl Sms for Sns {
    fn name(&self) -> &'static str {
        "sns"
    }

    async fn send(&self, to: &PhoneNumber, text: &str) -> Result<(), SmsError> {
        let body = url::form_urlencoded::Serializer::new(String::new())
            .append_pair("Action", "Publish")
            .append_pair("Version", "2010-03-31")
            .append_pair("PhoneNumber", to.e164())
            .append_pair("Message", text)
            .finish();
        let request = reqwest::Request::try_from(self.signed_request(body)?).map_err(|e| unreachable("sns", e))?;
        let response = self.client.execute(request).await.map_err(|e| unreachable("sns", e))?;
        let status = response.status();
        let xml = response.text().await.unwrap_or_default();
        if status.is_success() {
            tracing::info!(to = %to, message_id = xml_field(&xml, "MessageId").unwrap_or("?"), "SMS sent through SNS");
            return Ok(());
        }
        let message = match (xml_field(&xml, "Code"), xml_field(&xml, "Message")) {
            (Some(code), Some(msg)) => format!("{code}: {msg}"),
            _ => format!("HTTP {status}"),
        };
        Err(SmsError::Provider { provider: "sns", message })
    }
}
