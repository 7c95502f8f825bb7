//! Client authentication, server side: the proxy checks the logins of its clients per `[auth]`.
//!
//! Pure logic, no I/O. The client session calls [`AuthDb::start`] with the startup packet's user,
//! sends what [`AuthExchange::begin`] returns, and feeds every following 'p' message body to
//! [`AuthExchange::step`] until it gets [`AuthStep::Done`] or [`AuthStep::Fail`].
//! Unknown users go through the same exchange as known ones and fail like a wrong password,
//! so a client cannot probe which user names exist.

mod md5;
mod scram;

use std::collections::HashMap;
use std::fmt;

use bytes::{Bytes, BytesMut};
use config::{AuthConfig, AuthMethod};

use self::md5::{Md5Error, Md5Exchange};
use self::scram::{ScramError, ScramExchange, ScramSecret, ScramStep};
use crate::protocol::encode;

/// Precomputed per-user secrets, built once at config load (PBKDF2 is slow: do it once, not per login).
#[derive(Clone)]
pub struct UserSecrets {
    name: String,
    md5_hash: [u8; 32],
    scram: ScramSecret,
}

impl UserSecrets {
    /// Derives both secrets from a plain password, with a fresh random SCRAM salt.
    fn derive(name: &str, password: &str) -> UserSecrets {
        UserSecrets {
            name: name.to_owned(),
            md5_hash: md5::password_hash(password.as_bytes(), name.as_bytes()),
            scram: ScramSecret::derive(password.as_bytes(), rand::random(), scram::ITERATIONS),
        }
    }

    /// The login name.
    pub fn name(&self) -> &str {
        &self.name
    }
}

impl fmt::Debug for UserSecrets {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("UserSecrets")
            .field("name", &self.name)
            .finish_non_exhaustive()
    }
}

/// The authentication method and every configured user's secrets.
#[derive(Clone)]
pub struct AuthDb {
    method: AuthMethod,
    users: HashMap<String, UserSecrets>,
    /// Keys the mock secrets of unknown users, so their salts are stable but unguessable.
    mock_key: [u8; 32],
}

impl AuthDb {
    /// Derives all users' secrets (4096 PBKDF2 iterations, a random 16-byte salt per user).
    pub fn new(auth: &AuthConfig) -> AuthDb {
        let users = auth
            .users
            .iter()
            .map(|u| (u.name.clone(), UserSecrets::derive(&u.name, &u.password)))
            .collect();
        AuthDb {
            method: auth.method,
            users,
            mock_key: rand::random(),
        }
    }

    /// How clients authenticate.
    pub fn method(&self) -> AuthMethod {
        self.method
    }

    /// Starts an exchange for `user`. Unknown users still run a full exchange with a fake secret
    /// and fail at the end (no user enumeration).
    pub fn start(&self, user: &str) -> AuthExchange {
        let secrets = self.users.get(user);
        // Trust with no [auth] users listed accepts any name (the config's documented default).
        let known =
            secrets.is_some() || (self.method == AuthMethod::Trust && self.users.is_empty());
        let mechanism = match self.method {
            AuthMethod::Trust => Mechanism::Trust,
            AuthMethod::Md5 => {
                let hash = secrets.map_or_else(
                    || md5::password_hash(&rand::random::<[u8; 32]>(), user.as_bytes()),
                    |s| s.md5_hash,
                );
                Mechanism::Md5(Md5Exchange::new(hash, known))
            }
            AuthMethod::ScramSha256 => {
                let secret = secrets.map_or_else(
                    || ScramSecret::mock(&self.mock_key, user),
                    |s| s.scram.clone(),
                );
                Mechanism::Scram(ScramExchange::new(secret, known))
            }
        };
        AuthExchange {
            user: user.to_owned(),
            known,
            mechanism,
            phase: Phase::NotStarted,
        }
    }
}

impl fmt::Debug for AuthDb {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let mut names: Vec<&str> = self.users.keys().map(String::as_str).collect();
        names.sort_unstable();
        f.debug_struct("AuthDb")
            .field("method", &self.method)
            .field("users", &names)
            .finish_non_exhaustive()
    }
}

/// What the session does next.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum AuthStep {
    /// Send this message (already encoded with `crate::protocol::encode::auth_*`, i.e. the full
    /// 'R' message bytes) to the client and feed its next 'p' message body to `step`.
    Send(Bytes),
    /// Authentication succeeded; `final_message` is the full encoded message(s) to send before
    /// AuthenticationOk (e.g. SASLFinal), possibly empty. The caller then sends AuthenticationOk.
    Done {
        /// Encoded messages to send before AuthenticationOk.
        final_message: Bytes,
    },
    /// Failed: send ErrorResponse FATAL 28P01 `password authentication failed for user "NAME"`
    /// (or 28000/08P01 for protocol violations, with the message given) and close.
    Fail {
        /// SQLSTATE for the ErrorResponse.
        code: &'static str,
        /// Message for the ErrorResponse; safe to show the client.
        message: String,
    },
}

/// Why a login failed, as the client will see it.
#[derive(Debug, thiserror::Error)]
enum AuthError {
    #[error("password authentication failed for user \"{0}\"")]
    PasswordFailed(String),
    #[error("role \"{0}\" does not exist")]
    UnknownRole(String),
    #[error("{0}")]
    Protocol(String),
}

impl AuthError {
    /// SQLSTATE of the ErrorResponse.
    fn code(&self) -> &'static str {
        match self {
            AuthError::PasswordFailed(_) => "28P01",
            AuthError::UnknownRole(_) => "28000",
            AuthError::Protocol(_) => "08P01",
        }
    }
}

impl From<AuthError> for AuthStep {
    fn from(err: AuthError) -> AuthStep {
        AuthStep::Fail {
            code: err.code(),
            message: err.to_string(),
        }
    }
}

/// The method-specific part of an exchange.
enum Mechanism {
    Trust,
    Md5(Md5Exchange),
    Scram(ScramExchange),
}

/// Whether `begin` ran and whether the exchange is over.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Phase {
    NotStarted,
    Running,
    Finished,
}

/// One client's login in progress (a state machine driven by the session).
pub struct AuthExchange {
    user: String,
    known: bool,
    mechanism: Mechanism,
    phase: Phase,
}

impl AuthExchange {
    /// The first step: for trust, Done immediately; md5 -> Send(AuthenticationMD5Password with random salt);
    /// scram -> Send(AuthenticationSASL ["SCRAM-SHA-256"]).
    pub fn begin(&mut self) -> AuthStep {
        if self.phase != Phase::NotStarted {
            return self.finish(Err(unexpected()));
        }
        self.phase = Phase::Running;
        match &self.mechanism {
            // Like PgBouncer's trust: no password, but a listed user list still applies.
            Mechanism::Trust if self.known => self.finish(Ok(Bytes::new())),
            Mechanism::Trust => {
                let err = AuthError::UnknownRole(self.user.clone());
                self.finish(Err(err))
            }
            Mechanism::Md5(md5) => AuthStep::Send(encoded(|buf| encode::auth_md5(buf, md5.salt()))),
            Mechanism::Scram(_) => {
                AuthStep::Send(encoded(|buf| encode::auth_sasl(buf, &[scram::MECHANISM])))
            }
        }
    }

    /// Feed the body of the client's 'p' message (bytes after the length).
    pub fn step(&mut self, body: &[u8]) -> AuthStep {
        if self.phase != Phase::Running {
            return self.finish(Err(unexpected()));
        }
        let outcome = match &mut self.mechanism {
            Mechanism::Trust => Err(unexpected()),
            Mechanism::Md5(md5) => match md5.verify(body) {
                Ok(()) => Ok(Bytes::new()),
                Err(Md5Error::WrongPassword) => Err(AuthError::PasswordFailed(self.user.clone())),
                Err(err @ Md5Error::InvalidPacket) => Err(AuthError::Protocol(err.to_string())),
            },
            Mechanism::Scram(scram) => match scram.step(body) {
                Ok(ScramStep::Continue(data)) => {
                    return AuthStep::Send(encoded(|buf| encode::auth_sasl_continue(buf, &data)))
                }
                Ok(ScramStep::Final(data)) => {
                    Ok(encoded(|buf| encode::auth_sasl_final(buf, &data)))
                }
                Err(ScramError::InvalidProof) => Err(AuthError::PasswordFailed(self.user.clone())),
                Err(err) => Err(AuthError::Protocol(err.to_string())),
            },
        };
        self.finish(outcome)
    }

    /// Ends the exchange: later calls fail instead of restarting it.
    fn finish(&mut self, outcome: Result<Bytes, AuthError>) -> AuthStep {
        self.phase = Phase::Finished;
        match outcome {
            Ok(final_message) => AuthStep::Done { final_message },
            Err(err) => err.into(),
        }
    }
}

impl fmt::Debug for AuthExchange {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("AuthExchange")
            .field("user", &self.user)
            .field("phase", &self.phase)
            .finish_non_exhaustive()
    }
}

fn unexpected() -> AuthError {
    AuthError::Protocol("unexpected authentication message".to_owned())
}

/// Compares without an early exit, so timing does not reveal how many leading bytes matched.
fn constant_time_eq(a: &[u8], b: &[u8]) -> bool {
    if a.len() != b.len() {
        return false;
    }
    let diff = a.iter().zip(b).fold(0u8, |acc, (x, y)| acc | (x ^ y));
    std::hint::black_box(diff) == 0
}

/// Runs one `crate::protocol::encode` builder into a fresh buffer.
fn encoded(write: impl FnOnce(&mut BytesMut)) -> Bytes {
    let mut buf = BytesMut::new();
    write(&mut buf);
    buf.freeze()
}

#[cfg(test)]
#[allow(clippy::unwrap_used)] // a failed unwrap is a failed test
mod tests {
    use super::*;
    use config::UserConfig;
    use proptest::prelude::*;

    pub(super) fn db(method: AuthMethod) -> AuthDb {
        AuthDb::new(&AuthConfig {
            method,
            users: vec![UserConfig {
                name: "app".to_owned(),
                password: "app-secret".to_owned(),
            }],
        })
    }

    /// Splits an encoded 'R' message into (code, payload), checking the framing.
    pub(super) fn decode_r(msg: &[u8]) -> (i32, Vec<u8>) {
        assert_eq!(msg[0], b'R');
        let len = i32::from_be_bytes(msg[1..5].try_into().unwrap());
        assert_eq!(len as usize, msg.len() - 1);
        let code = i32::from_be_bytes(msg[5..9].try_into().unwrap());
        (code, msg[9..].to_vec())
    }

    #[test]
    fn trust_is_done_at_once_for_known_users() {
        let db = db(AuthMethod::Trust);
        assert_eq!(db.method(), AuthMethod::Trust);
        let mut ex = db.start("app");
        assert_eq!(
            ex.begin(),
            AuthStep::Done {
                final_message: Bytes::new()
            }
        );
        assert!(matches!(
            ex.step(b"x\0"),
            AuthStep::Fail { code: "08P01", .. }
        ));
    }

    #[test]
    fn trust_rejects_unconfigured_users() {
        let mut ex = db(AuthMethod::Trust).start("ghost");
        assert_eq!(
            ex.begin(),
            AuthStep::Fail {
                code: "28000",
                message: "role \"ghost\" does not exist".to_owned()
            }
        );
    }

    #[test]
    fn md5_exchange_with_postgres_protocol_client() {
        let db = db(AuthMethod::Md5);
        let mut ex = db.start("app");
        let AuthStep::Send(msg) = ex.begin() else {
            panic!("expected Send")
        };
        let (code, payload) = decode_r(&msg);
        assert_eq!(code, 5);
        let salt: [u8; 4] = payload.try_into().unwrap();
        let mut body =
            postgres_protocol::authentication::md5_hash(b"app", b"app-secret", salt).into_bytes();
        body.push(0);
        assert_eq!(
            ex.step(&body),
            AuthStep::Done {
                final_message: Bytes::new()
            }
        );
    }

    #[test]
    fn md5_wrong_password_and_unknown_user_fail_alike() {
        let db = db(AuthMethod::Md5);
        for (user, password) in [("app", "wrong"), ("ghost", "app-secret")] {
            let mut ex = db.start(user);
            let AuthStep::Send(msg) = ex.begin() else {
                panic!("expected Send")
            };
            let salt: [u8; 4] = decode_r(&msg).1.try_into().unwrap();
            let mut body = postgres_protocol::authentication::md5_hash(
                user.as_bytes(),
                password.as_bytes(),
                salt,
            )
            .into_bytes();
            body.push(0);
            assert_eq!(
                ex.step(&body),
                AuthStep::Fail {
                    code: "28P01",
                    message: format!("password authentication failed for user \"{user}\""),
                }
            );
        }
    }

    #[test]
    fn md5_garbage_is_a_protocol_violation() {
        let mut ex = db(AuthMethod::Md5).start("app");
        ex.begin();
        assert!(matches!(
            ex.step(b"no-nul"),
            AuthStep::Fail { code: "08P01", .. }
        ));
    }

    #[test]
    fn step_before_begin_or_twice_begin_fails() {
        let mut ex = db(AuthMethod::ScramSha256).start("app");
        assert!(matches!(ex.step(b""), AuthStep::Fail { code: "08P01", .. }));
        let mut ex = db(AuthMethod::ScramSha256).start("app");
        assert!(matches!(ex.begin(), AuthStep::Send(_)));
        assert!(matches!(ex.begin(), AuthStep::Fail { code: "08P01", .. }));
    }

    #[test]
    fn debug_output_hides_secrets() {
        let db = db(AuthMethod::ScramSha256);
        let text = format!("{db:?} {:?}", db.users["app"]);
        assert!(text.contains("app"));
        assert!(!text.contains("key") && !text.contains("hash"));
    }

    #[test]
    fn constant_time_eq_compares_contents_and_lengths() {
        assert!(constant_time_eq(b"abc", b"abc"));
        assert!(!constant_time_eq(b"abc", b"abd"));
        assert!(!constant_time_eq(b"abc", b"ab"));
    }

    proptest! {
        #![proptest_config(ProptestConfig::with_cases(256))]

        #[test]
        fn arbitrary_bodies_never_panic(
            method in prop_oneof![
                Just(AuthMethod::ScramSha256),
                Just(AuthMethod::Md5),
                Just(AuthMethod::Trust)
            ],
            user in prop_oneof![Just("app".to_owned()), "[a-z]{0,8}"],
            bodies in proptest::collection::vec(proptest::collection::vec(any::<u8>(), 0..200), 0..4),
        ) {
            let db = PROPTEST_DB.with(|dbs| dbs.iter().find(|d| d.method() == method).cloned());
            let mut ex = db.unwrap().start(&user);
            ex.begin();
            for body in &bodies {
                if let AuthStep::Done { .. } = ex.step(body) {
                    prop_assert!(false, "garbage authenticated");
                }
            }
        }

        #[test]
        fn arbitrary_scram_final_never_panics(
            tail in proptest::collection::vec(any::<u8>(), 0..200),
            text_tail in "[a-zA-Z0-9=,+/]{0,120}",
        ) {
            let db = PROPTEST_DB.with(|dbs| dbs[0].clone());
            for body in [tail.clone(), text_tail.into_bytes()] {
                let mut ex = db.start("app");
                ex.begin();
                let mut initial = b"SCRAM-SHA-256\0".to_vec();
                let first = b"n,,n=,r=abcdefgh";
                initial.extend_from_slice(&(first.len() as i32).to_be_bytes());
                initial.extend_from_slice(first);
                prop_assert!(matches!(ex.step(&initial), AuthStep::Send(_)));
                let failed = matches!(ex.step(&body), AuthStep::Fail { .. });
                prop_assert!(failed);
            }
        }
    }

    thread_local! {
        // PBKDF2 per proptest case would make the test slow; derive once per thread.
        static PROPTEST_DB: Vec<AuthDb> = vec![
            db(AuthMethod::ScramSha256),
            db(AuthMethod::Md5),
            db(AuthMethod::Trust),
        ];
    }
}
