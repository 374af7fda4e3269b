//! Password hashing: Argon2id (RFC 9106) with a random 16-byte salt per password, stored as a
//! PHC string (`$argon2id$v=19$m=19456,t=2,p=1$…`), which carries its own parameters, so
//! hashes made with other parameters keep verifying.

use super::token::{random_bytes, NoRandom};
use argon2::password_hash::{PasswordHash, PasswordHasher, PasswordVerifier, SaltString};
use argon2::Argon2;

/// Shortest password accepted.
pub const MIN_LEN: usize = 10;
/// Longest password accepted (a login refuses longer ones before hashing).
pub const MAX_BYTES: usize = 1024;

/// Why a password cannot be set or checked.
#[derive(Debug, thiserror::Error)]
pub enum PasswordError {
    /// Too short.
    #[error("a password needs at least {MIN_LEN} characters")]
    TooShort,
    /// Too long for a login to send.
    #[error("a password has at most {MAX_BYTES} bytes")]
    TooLong,
    /// No salt.
    #[error(transparent)]
    NoRandom(#[from] NoRandom),
    /// The hasher failed (parameters out of range).
    #[error("password hashing failed: {0}")]
    Hash(String),
}

/// Checks a new password against the policy.
pub fn check(password: &str) -> Result<(), PasswordError> {
    if password.chars().count() < MIN_LEN {
        return Err(PasswordError::TooShort);
    }
    if password.len() > MAX_BYTES {
        return Err(PasswordError::TooLong);
    }
    Ok(())
}

/// Hashes a new password (after [`check`]).
pub fn hash(password: &str) -> Result<String, PasswordError> {
    check(password)?;
    let salt = SaltString::encode_b64(&random_bytes::<16>()?)
        .map_err(|e| PasswordError::Hash(e.to_string()))?;
    Argon2::default()
        .hash_password(password.as_bytes(), &salt)
        .map(|h| h.to_string())
        .map_err(|e| PasswordError::Hash(e.to_string()))
}

/// Whether `password` matches the stored `phc` string. A malformed stored hash never matches.
pub fn verify(password: &str, phc: &str) -> bool {
    PasswordHash::new(phc).is_ok_and(|h| {
        Argon2::default()
            .verify_password(password.as_bytes(), &h)
            .is_ok()
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_hash_verifies_its_password_only() {
        let h = hash("correct horse battery").expect("hash");
        assert!(h.starts_with("$argon2id$v=19$"), "{h}");
        assert!(verify("correct horse battery", &h));
        assert!(!verify("correct horse batterY", &h));
        assert!(!verify("correct horse battery", "not a hash"));
        // A second hash of the same password has its own salt.
        assert_ne!(hash("correct horse battery").expect("hash"), h);
    }

    #[test]
    fn short_passwords_are_refused() {
        assert!(matches!(hash("short"), Err(PasswordError::TooShort)));
        assert!(matches!(
            check(&"x".repeat(MAX_BYTES + 1)),
            Err(PasswordError::TooLong)
        ));
        // Counted in characters, not bytes: ten Chinese characters are enough.
        assert!(check("消防控制室值班密码正确").is_ok());
    }
}
