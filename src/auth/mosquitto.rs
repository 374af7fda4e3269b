//! Mosquitto's password hashes (`$7$`: PBKDF2-HMAC-SHA512), the form the registry keeps a
//! device's MQTT password in: Mosquitto checks them from its password file, the embedded
//! broker's gate with [`verify`]. Pure code.

use base64::engine::general_purpose::STANDARD as B64;
use base64::Engine;
use std::num::NonZeroU32;

/// PBKDF2 rounds of a new hash. Mosquitto's own tool uses 101; the count is part of the hash, so
/// Mosquitto checks these as well. One check costs about 1 ms.
const ROUNDS: u32 = 1000;

/// Mosquitto's `$7$` hash of `password`: PBKDF2-HMAC-SHA512 with a 12-byte salt, as
/// `$7$rounds$salt$hash` in standard base64.
pub fn hash(password: &str, salt: &[u8; 12]) -> String {
    let mut out = [0_u8; 64];
    let rounds = NonZeroU32::new(ROUNDS).unwrap_or(NonZeroU32::MIN);
    ring::pbkdf2::derive(
        ring::pbkdf2::PBKDF2_HMAC_SHA512,
        rounds,
        salt,
        password.as_bytes(),
        &mut out,
    );
    format!("$7${ROUNDS}${}${}", B64.encode(salt), B64.encode(out))
}

/// Whether `hash` is a Mosquitto `$7$` hash (the form the registry accepts).
pub fn valid_hash(hash: &str) -> bool {
    parse(hash).is_some()
}

fn parse(hash: &str) -> Option<(NonZeroU32, Vec<u8>, Vec<u8>)> {
    let mut parts = hash.strip_prefix("$7$")?.split('$');
    let rounds = parts
        .next()?
        .parse::<u32>()
        .ok()
        .and_then(NonZeroU32::new)?;
    let salt = B64.decode(parts.next()?).ok()?;
    let key = B64.decode(parts.next()?).ok()?;
    (parts.next().is_none() && !salt.is_empty() && key.len() == 64).then_some((rounds, salt, key))
}

/// Whether `password` matches `hash` (constant time in the hash comparison).
pub fn verify(hash: &str, password: &str) -> bool {
    let Some((rounds, salt, key)) = parse(hash) else {
        return false;
    };
    ring::pbkdf2::verify(
        ring::pbkdf2::PBKDF2_HMAC_SHA512,
        rounds,
        &salt,
        password.as_bytes(),
        &key,
    )
    .is_ok()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn hashes_verify_and_match_mosquittos_format() {
        let h = hash("s3cret-pw", b"0123456789ab");
        assert!(h.starts_with("$7$1000$MDEyMzQ1Njc4OWFi$"), "{h}");
        assert!(valid_hash(&h));
        assert!(verify(&h, "s3cret-pw"));
        assert!(!verify(&h, "s3cret-pW"));
        assert!(!verify("$6$abc$def", "x"));
        assert!(!valid_hash("plain"));
        assert!(!valid_hash("$7$0$MDEy$AAAA"));
        // A hash written by Debian's `mosquitto_passwd -b` (2.0.11) for password "pw".
        let theirs = "$7$101$H2WJW0AugSnznJz6$554IbIU+7Nh3IqROvTh+vuHuAEROFkdhVwV4ZoHAFs1TjtIRMtK6i5v/+jbsvze4ES7hPIpXXGza8L42QuinXw==";
        assert!(valid_hash(theirs));
        assert!(verify(theirs, "pw"));
        assert!(!verify(theirs, "pW"));
    }
}
