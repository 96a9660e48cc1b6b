//! Checking a delivery's credential against a hook's secret, in constant
//! time: an HMAC-SHA256 of the raw body (GitHub's `sha256=<hex>`, and the
//! generic hooks' `sha256=<hex>` over `{timestamp}.{body}`), or a shared
//! token (GitLab's `X-Gitlab-Token`).

use super::HookError;
use subtle::ConstantTimeEq;

/// Checks `sha256=<hex>` against the HMAC-SHA256 of `signed` under
/// `secret`.
pub(super) fn hmac_sha256(secret: &[u8], signed: &[&[u8]], header: &str) -> Result<(), HookError> {
    let hex = header.trim().strip_prefix("sha256=").ok_or(HookError::BadSignature)?;
    let given = hex::decode(hex).map_err(|_| HookError::BadSignature)?;
    let key = ring::hmac::Key::new(ring::hmac::HMAC_SHA256, secret);
    let mut context = ring::hmac::Context::with_key(&key);
    signed.iter().for_each(|part| context.update(part));
    let expected = context.sign();
    if bool::from(expected.as_ref().ct_eq(&given)) {
        Ok(())
    } else {
        Err(HookError::BadSignature)
    }
}

/// Checks a shared token.
pub(super) fn token(secret: &[u8], given: &str) -> Result<(), HookError> {
    if bool::from(secret.ct_eq(given.as_bytes())) {
        Ok(())
    } else {
        Err(HookError::BadSignature)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// GitHub's documented test vector for `X-Hub-Signature-256`.
    #[test]
    fn githubs_documented_example_verifies() {
        let header = "sha256=757107ea0eb2509fc211221cce984b8a37570b6d7586c22c46f4379c8b043e17";
        assert!(hmac_sha256(b"It's a Secret to Everybody", &[b"Hello, World!"], header).is_ok());
        assert!(hmac_sha256(b"It's a Secret to Everybody", &[b"Hello, World?"], header).is_err());
        assert!(hmac_sha256(b"another secret", &[b"Hello, World!"], header).is_err());
        assert!(hmac_sha256(b"It's a Secret to Everybody", &[b"Hello, World!"], &header[7..]).is_err());
        assert!(hmac_sha256(b"It's a Secret to Everybody", &[b"Hello, ", b"World!"], header).is_ok());
    }

    #[test]
    fn tokens_must_match_whole() {
        assert!(token(b"s3cret", "s3cret").is_ok());
        assert!(token(b"s3cret", "s3cre").is_err());
        assert!(token(b"s3cret", "s3cret!").is_err());
    }
}
