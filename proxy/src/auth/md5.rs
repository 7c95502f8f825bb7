//! MD5 challenge-response as PostgreSQL speaks it: the server sends a random 4-byte salt and the
//! client answers `"md5" + hex(md5(hex(md5(password + user)) + salt))`, NUL-terminated.

use ::md5::{Digest, Md5};

use super::constant_time_eq;

/// Length of `hex(md5(..))`.
const HEX_LEN: usize = 32;

/// Why an md5 login did not succeed.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub(crate) enum Md5Error {
    /// The body was not exactly one NUL-terminated string.
    #[error("invalid password packet size")]
    InvalidPacket,
    /// The response did not match (also reported for unknown users and empty passwords).
    #[error("password does not match")]
    WrongPassword,
}

/// `hex(md5(password + user))`: the per-user secret PostgreSQL stores (without its "md5" prefix).
pub(crate) fn password_hash(password: &[u8], user: &[u8]) -> [u8; HEX_LEN] {
    let mut hasher = Md5::new();
    hasher.update(password);
    hasher.update(user);
    hex_digest(hasher)
}

/// Server side of one md5 login: holds the salt it sent and checks the client's answer.
#[derive(Clone)]
pub(crate) struct Md5Exchange {
    hash: [u8; HEX_LEN],
    known: bool,
    salt: [u8; 4],
}

impl Md5Exchange {
    /// An exchange for a user whose secret is `hash`; `known = false` runs it against a mock
    /// secret and always fails, so unknown users look like wrong passwords.
    pub(crate) fn new(hash: [u8; HEX_LEN], known: bool) -> Md5Exchange {
        Md5Exchange {
            hash,
            known,
            salt: rand::random(),
        }
    }

    /// The salt to send in AuthenticationMD5Password.
    pub(crate) fn salt(&self) -> [u8; 4] {
        self.salt
    }

    /// Checks the body of the client's PasswordMessage.
    pub(crate) fn verify(&self, body: &[u8]) -> Result<(), Md5Error> {
        let answer = match body.split_last() {
            Some((0, rest)) if !rest.contains(&0) => rest,
            _ => return Err(Md5Error::InvalidPacket),
        };
        let mut hasher = Md5::new();
        hasher.update(self.hash);
        hasher.update(self.salt);
        let mut expected = [0u8; 3 + HEX_LEN];
        expected[..3].copy_from_slice(b"md5");
        expected[3..].copy_from_slice(&hex_digest(hasher));
        // `&` rather than `&&`: the comparison runs whether or not the user exists.
        if constant_time_eq(answer, &expected) & self.known {
            Ok(())
        } else {
            Err(Md5Error::WrongPassword)
        }
    }
}

/// Lower-case hex of an MD5 digest, as ASCII bytes.
fn hex_digest(hasher: Md5) -> [u8; HEX_LEN] {
    const DIGITS: &[u8; 16] = b"0123456789abcdef";
    let digest = hasher.finalize();
    let mut out = [0u8; HEX_LEN];
    for (pair, byte) in out.chunks_exact_mut(2).zip(digest.iter()) {
        pair[0] = DIGITS[usize::from(byte >> 4)];
        pair[1] = DIGITS[usize::from(byte & 0x0f)];
    }
    out
}

#[cfg(test)]
#[allow(clippy::unwrap_used)] // a failed unwrap is a failed test
mod tests {
    use super::*;
    use postgres_protocol::authentication::md5_hash;

    fn answer(user: &str, password: &str, salt: [u8; 4]) -> Vec<u8> {
        let mut body = md5_hash(user.as_bytes(), password.as_bytes(), salt).into_bytes();
        body.push(0);
        body
    }

    #[test]
    fn password_hash_matches_postgres_protocol() {
        let expected = postgres_protocol::password::md5(b"secret", "app");
        let hash = password_hash(b"secret", b"app");
        assert_eq!(
            format!("md5{}", std::str::from_utf8(&hash).unwrap()),
            expected
        );
    }

    #[test]
    fn correct_password_verifies() {
        let exchange = Md5Exchange::new(password_hash(b"secret", b"app"), true);
        let body = answer("app", "secret", exchange.salt());
        assert_eq!(exchange.verify(&body), Ok(()));
    }

    #[test]
    fn wrong_password_fails() {
        let exchange = Md5Exchange::new(password_hash(b"secret", b"app"), true);
        let body = answer("app", "nope", exchange.salt());
        assert_eq!(exchange.verify(&body), Err(Md5Error::WrongPassword));
    }

    #[test]
    fn unknown_user_fails_even_with_matching_hash() {
        let exchange = Md5Exchange::new(password_hash(b"secret", b"app"), false);
        let body = answer("app", "secret", exchange.salt());
        assert_eq!(exchange.verify(&body), Err(Md5Error::WrongPassword));
    }

    #[test]
    fn bad_framing_is_a_protocol_error() {
        let exchange = Md5Exchange::new(password_hash(b"secret", b"app"), true);
        assert_eq!(exchange.verify(b""), Err(Md5Error::InvalidPacket));
        assert_eq!(exchange.verify(b"md5abc"), Err(Md5Error::InvalidPacket));
        assert_eq!(exchange.verify(b"md5\0abc\0"), Err(Md5Error::InvalidPacket));
        assert_eq!(exchange.verify(b"\0"), Err(Md5Error::WrongPassword));
    }
}
