//! Secrets handed to clients: session ids, CSRF tokens and API tokens. Each is 32 random bytes
//! from the operating system, base64url without padding, behind a short prefix that says what
//! it is (`fws_` session, `fwt_` API token). Only the SHA-256 [`digest`] is stored, so a copy of
//! the database gives no working token; comparing digests of equal length is not a timing
//! oracle for the token itself.

use base64::Engine as _;
use ring::rand::{SecureRandom, SystemRandom};
use sha2::{Digest, Sha256};

/// Prefix of a dashboard session id.
pub const SESSION: &str = "fws_";
/// Prefix of an API token.
pub const API: &str = "fwt_";

/// The operating system gave no random bytes (never expected on Linux).
#[derive(Debug, thiserror::Error)]
#[error("the operating system's random number generator failed")]
pub struct NoRandom;

/// `n` random bytes.
pub fn random_bytes<const N: usize>() -> Result<[u8; N], NoRandom> {
    let mut b = [0_u8; N];
    SystemRandom::new().fill(&mut b).map_err(|_| NoRandom)?;
    Ok(b)
}

/// A new secret with `prefix`.
pub fn generate(prefix: &str) -> Result<String, NoRandom> {
    let bytes = random_bytes::<32>()?;
    Ok(format!(
        "{prefix}{}",
        base64::engine::general_purpose::URL_SAFE_NO_PAD.encode(bytes)
    ))
}

/// What is stored of a secret: SHA-256, lowercase hex.
pub fn digest(secret: &str) -> String {
    hex::encode(Sha256::digest(secret.as_bytes()))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn secrets_are_prefixed_long_and_different() {
        let a = generate(API).expect("random");
        let b = generate(API).expect("random");
        assert!(a.starts_with(API) && b.starts_with(API));
        assert_eq!(
            a.len(),
            API.len() + 43,
            "32 bytes in base64url without padding"
        );
        assert_ne!(a, b);
        assert!(a[API.len()..]
            .chars()
            .all(|c| c.is_ascii_alphanumeric() || c == '-' || c == '_'));
    }

    #[test]
    fn the_digest_is_sha256_hex() {
        // SHA-256 of "abc" (FIPS 180-2, appendix B.1).
        assert_eq!(
            digest("abc"),
            "ba7816bf8f01cfea414140de5dae2223b00361a396177a9cb410ff61f20015ad"
        );
    }
}
