//! SCRAM-SHA-256 server side (RFC 5802 / RFC 7677) the way PostgreSQL speaks it: only the
//! `SCRAM-SHA-256` mechanism, no channel binding, and the user name inside the SCRAM messages
//! ignored because the startup packet already named the user.

use base64::{engine::general_purpose::STANDARD, Engine as _};
use hmac::{Hmac, KeyInit, Mac};
use sha2::{Digest, Sha256};

use super::constant_time_eq;

/// The only SASL mechanism the proxy offers.
pub(crate) const MECHANISM: &str = "SCRAM-SHA-256";
/// PBKDF2 iterations, PostgreSQL's default.
pub(crate) const ITERATIONS: u32 = 4096;
/// Salt length, PostgreSQL's default.
pub(crate) const SALT_LEN: usize = 16;
/// Random bytes in the server's half of the nonce (PostgreSQL uses 18).
const SERVER_NONCE_LEN: usize = 18;

type HmacSha256 = Hmac<Sha256>;

/// Why a SCRAM exchange stopped.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub(crate) enum ScramError {
    /// The SASLInitialResponse framing (mechanism, length, data) was wrong.
    #[error("invalid SASL message")]
    InvalidFrame,
    /// The client picked a mechanism we did not offer.
    #[error("client selected an invalid SASL authentication mechanism")]
    InvalidMechanism,
    /// A SCRAM message did not follow the grammar.
    #[error("malformed SCRAM message: {0}")]
    Malformed(&'static str),
    /// The client asked for channel binding ("p=..."), which we never advertise.
    #[error("malformed SCRAM message: channel binding is not supported")]
    ChannelBindingUnsupported,
    /// The client-final "c=" attribute did not repeat the GS2 header.
    #[error("SCRAM channel binding check failed")]
    ChannelBindingMismatch,
    /// The client-final nonce was not the one the server sent.
    #[error("invalid SCRAM response: nonce does not match")]
    NonceMismatch,
    /// The proof did not verify (wrong password, or the user does not exist).
    #[error("SCRAM proof does not verify")]
    InvalidProof,
    /// A message arrived after the exchange had ended.
    #[error("unexpected SASL message")]
    UnexpectedMessage,
}

/// What PostgreSQL keeps per user for SCRAM: enough to verify a proof, not to recover the password.
#[derive(Clone)]
pub(crate) struct ScramSecret {
    salt: [u8; SALT_LEN],
    iterations: u32,
    stored_key: [u8; 32],
    server_key: [u8; 32],
}

impl ScramSecret {
    /// Derives the secret from a password (slow: PBKDF2 with `iterations` rounds).
    pub(crate) fn derive(password: &[u8], salt: [u8; SALT_LEN], iterations: u32) -> ScramSecret {
        let mut salted = [0u8; 32];
        pbkdf2::pbkdf2_hmac::<Sha256>(password, &salt, iterations, &mut salted);
        let client_key = hmac(&salted, &[b"Client Key"]);
        ScramSecret {
            salt,
            iterations,
            stored_key: Sha256::digest(client_key).into(),
            server_key: hmac(&salted, &[b"Server Key"]),
        }
    }

    /// A secret no password matches, with a salt that is stable per user name so that repeated
    /// attempts cannot tell an unknown user from a known one.
    pub(crate) fn mock(mock_key: &[u8; 32], user: &str) -> ScramSecret {
        let seed = hmac(mock_key, &[b"mock salt\0", user.as_bytes()]);
        let mut salt = [0u8; SALT_LEN];
        salt.copy_from_slice(&seed[..SALT_LEN]);
        ScramSecret {
            salt,
            iterations: ITERATIONS,
            stored_key: rand::random(),
            server_key: rand::random(),
        }
    }
}

/// What to send back after a client message.
#[derive(Debug, PartialEq, Eq)]
pub(crate) enum ScramStep {
    /// Payload of AuthenticationSASLContinue; the exchange goes on.
    Continue(Vec<u8>),
    /// Payload of AuthenticationSASLFinal; the client is authenticated.
    Final(Vec<u8>),
}

/// Where the exchange stands, i.e. which client message comes next.
enum State {
    /// SASLInitialResponse: mechanism, length, client-first-message.
    Initial,
    /// The initial response carried no data, so SASLResponse brings the client-first-message.
    ClientFirst,
    /// SASLResponse with the client-final-message.
    ClientFinal {
        gs2_header: String,
        nonce: String,
        client_first_bare: String,
        server_first: String,
    },
    /// Over (succeeded or failed).
    Finished,
}

/// Server side of one SCRAM-SHA-256 login.
pub(crate) struct ScramExchange {
    secret: ScramSecret,
    known: bool,
    state: State,
}

impl ScramExchange {
    /// An exchange against `secret`; `known = false` runs it in full and then fails.
    pub(crate) fn new(secret: ScramSecret, known: bool) -> ScramExchange {
        ScramExchange {
            secret,
            known,
            state: State::Initial,
        }
    }

    /// Feeds the body of the client's next 'p' message. Any error ends the exchange.
    pub(crate) fn step(&mut self, body: &[u8]) -> Result<ScramStep, ScramError> {
        match std::mem::replace(&mut self.state, State::Finished) {
            State::Initial => match parse_initial_response(body)? {
                Some(data) => self.client_first(data),
                None => {
                    // RFC 4422: without an initial response the server sends an empty challenge.
                    self.state = State::ClientFirst;
                    Ok(ScramStep::Continue(Vec::new()))
                }
            },
            State::ClientFirst => self.client_first(body),
            State::ClientFinal {
                gs2_header,
                nonce,
                client_first_bare,
                server_first,
            } => {
                let auth = AuthContext {
                    gs2_header: &gs2_header,
                    nonce: &nonce,
                    client_first_bare: &client_first_bare,
                    server_first: &server_first,
                };
                self.client_final(&auth, body)
            }
            State::Finished => Err(ScramError::UnexpectedMessage),
        }
    }

    fn client_first(&mut self, data: &[u8]) -> Result<ScramStep, ScramError> {
        let text = std::str::from_utf8(data).map_err(|_| ScramError::Malformed("not UTF-8"))?;
        let first = parse_client_first(text)?;
        let server_nonce = STANDARD.encode(rand::random::<[u8; SERVER_NONCE_LEN]>());
        let nonce = format!("{}{server_nonce}", first.client_nonce);
        let server_first = format!(
            "r={nonce},s={},i={}",
            STANDARD.encode(self.secret.salt),
            self.secret.iterations
        );
        let reply = server_first.clone().into_bytes();
        self.state = State::ClientFinal {
            gs2_header: first.gs2_header.to_owned(),
            nonce,
            client_first_bare: first.bare.to_owned(),
            server_first,
        };
        Ok(ScramStep::Continue(reply))
    }

    fn client_final(&self, auth: &AuthContext<'_>, data: &[u8]) -> Result<ScramStep, ScramError> {
        let text = std::str::from_utf8(data).map_err(|_| ScramError::Malformed("not UTF-8"))?;
        let last = parse_client_final(text)?;
        if STANDARD.decode(last.channel_binding).ok().as_deref() != Some(auth.gs2_header.as_bytes())
        {
            return Err(ScramError::ChannelBindingMismatch);
        }
        if last.nonce != auth.nonce {
            return Err(ScramError::NonceMismatch);
        }
        let auth_message = [
            auth.client_first_bare.as_bytes(),
            b",",
            auth.server_first.as_bytes(),
            b",",
            last.without_proof.as_bytes(),
        ];
        let client_signature = hmac(&self.secret.stored_key, &auth_message);
        let mut client_key = last.proof;
        for (key, sig) in client_key.iter_mut().zip(client_signature) {
            *key ^= sig;
        }
        let computed: [u8; 32] = Sha256::digest(client_key).into();
        // `&` rather than `&&`: unknown users pay for the same comparison.
        if !(constant_time_eq(&computed, &self.secret.stored_key) & self.known) {
            return Err(ScramError::InvalidProof);
        }
        let server_signature = hmac(&self.secret.server_key, &auth_message);
        Ok(ScramStep::Final(
            format!("v={}", STANDARD.encode(server_signature)).into_bytes(),
        ))
    }
}

/// The parts of the first two messages the final proof is computed over.
struct AuthContext<'a> {
    gs2_header: &'a str,
    nonce: &'a str,
    client_first_bare: &'a str,
    server_first: &'a str,
}

/// SASLInitialResponse: mechanism (C string), int32 length (-1 = no data), data.
fn parse_initial_response(body: &[u8]) -> Result<Option<&[u8]>, ScramError> {
    let nul = body
        .iter()
        .position(|&b| b == 0)
        .ok_or(ScramError::InvalidFrame)?;
    let (mechanism, rest) = body.split_at(nul);
    if mechanism != MECHANISM.as_bytes() {
        return Err(ScramError::InvalidMechanism);
    }
    let rest = rest.get(1..).ok_or(ScramError::InvalidFrame)?;
    let (len, data) = rest
        .split_first_chunk::<4>()
        .ok_or(ScramError::InvalidFrame)?;
    match i32::from_be_bytes(*len) {
        -1 if data.is_empty() => Ok(None),
        len if usize::try_from(len).ok() == Some(data.len()) => Ok(Some(data)),
        _ => Err(ScramError::InvalidFrame),
    }
}

/// The pieces of a client-first-message the server needs later.
struct ClientFirst<'a> {
    gs2_header: &'a str,
    bare: &'a str,
    client_nonce: &'a str,
}

/// `gs2-cbind-flag "," [authzid] "," [reserved-mext ","] username "," nonce ["," extensions]`.
fn parse_client_first(text: &str) -> Result<ClientFirst<'_>, ScramError> {
    let header_len = match text.as_bytes() {
        [b'n' | b'y', b',', b',', ..] => 3,
        [b'p', ..] => return Err(ScramError::ChannelBindingUnsupported),
        [b'n' | b'y', b',', b'a', b'=', ..] => {
            return Err(ScramError::Malformed(
                "authorization identity is not supported",
            ))
        }
        _ => return Err(ScramError::Malformed("invalid GS2 header")),
    };
    let (gs2_header, bare) = text.split_at(header_len);
    let mut attrs = bare.split(',');
    match attrs.next() {
        Some(a) if a.starts_with("m=") => {
            return Err(ScramError::Malformed("mandatory extension not supported"))
        }
        // The name is ignored (PostgreSQL uses the startup packet's), but it must be present.
        Some(a) if a.starts_with("n=") => {}
        _ => return Err(ScramError::Malformed("expected username attribute")),
    }
    let client_nonce = attrs
        .next()
        .and_then(|a| a.strip_prefix("r="))
        .ok_or(ScramError::Malformed("expected nonce attribute"))?;
    if client_nonce.is_empty() || !client_nonce.bytes().all(|b| (0x21..=0x7e).contains(&b)) {
        return Err(ScramError::Malformed("invalid nonce"));
    }
    for ext in attrs {
        check_attribute(ext)?;
    }
    Ok(ClientFirst {
        gs2_header,
        bare,
        client_nonce,
    })
}

/// The pieces of a client-final-message.
struct ClientFinal<'a> {
    channel_binding: &'a str,
    nonce: &'a str,
    without_proof: &'a str,
    proof: [u8; 32],
}

/// `"c=" cbind-input "," "r=" nonce ["," extensions] "," "p=" proof`.
fn parse_client_final(text: &str) -> Result<ClientFinal<'_>, ScramError> {
    let (without_proof, proof) = text
        .rsplit_once(",p=")
        .ok_or(ScramError::Malformed("expected proof attribute"))?;
    let proof = STANDARD
        .decode(proof)
        .ok()
        .and_then(|p| <[u8; 32]>::try_from(p).ok())
        .ok_or(ScramError::Malformed("invalid proof"))?;
    let mut attrs = without_proof.split(',');
    let channel_binding = attrs
        .next()
        .and_then(|a| a.strip_prefix("c="))
        .ok_or(ScramError::Malformed("expected channel binding attribute"))?;
    let nonce = attrs
        .next()
        .and_then(|a| a.strip_prefix("r="))
        .ok_or(ScramError::Malformed("expected nonce attribute"))?;
    for ext in attrs {
        check_attribute(ext)?;
    }
    Ok(ClientFinal {
        channel_binding,
        nonce,
        without_proof,
        proof,
    })
}

/// An optional extension: `ALPHA "=" value`; its meaning is ignored, as PostgreSQL does.
fn check_attribute(attr: &str) -> Result<(), ScramError> {
    match attr.as_bytes() {
        [name, b'=', ..] if name.is_ascii_alphabetic() => Ok(()),
        _ => Err(ScramError::Malformed("invalid attribute")),
    }
}

/// HMAC-SHA-256 of the concatenated `parts`.
fn hmac(key: &[u8], parts: &[&[u8]]) -> [u8; 32] {
    // HMAC takes keys of any length; the Result exists only for the trait's sake.
    let mut mac = <HmacSha256 as KeyInit>::new_from_slice(key).expect("HMAC accepts any key size");
    for part in parts {
        mac.update(part);
    }
    mac.finalize().into_bytes().into()
}

#[cfg(test)]
#[allow(clippy::unwrap_used)] // a failed unwrap is a failed test
mod tests {
    use super::*;
    use crate::auth::tests::{db, decode_r};
    use crate::auth::{AuthExchange, AuthStep};
    use config::AuthMethod;
    use postgres_protocol::authentication::sasl::{ChannelBinding, ScramSha256};

    /// A SASLInitialResponse body carrying `data`.
    fn initial(mechanism: &str, data: &[u8]) -> Vec<u8> {
        let mut body = mechanism.as_bytes().to_vec();
        body.push(0);
        body.extend_from_slice(&i32::try_from(data.len()).unwrap().to_be_bytes());
        body.extend_from_slice(data);
        body
    }

    /// Runs begin and the client-first round; returns the exchange, the client and server-first.
    fn first_round(
        user: &str,
        password: &str,
        binding: ChannelBinding,
    ) -> (AuthExchange, ScramSha256, String) {
        let mut ex = db(AuthMethod::ScramSha256).start(user);
        let AuthStep::Send(msg) = ex.begin() else {
            panic!("expected Send")
        };
        assert_eq!(decode_r(&msg), (10, b"SCRAM-SHA-256\0\0".to_vec()));
        let mut client = ScramSha256::new(password.as_bytes(), binding);
        let AuthStep::Send(msg) = ex.step(&initial(MECHANISM, client.message())) else {
            panic!("expected Send")
        };
        let (code, server_first) = decode_r(&msg);
        assert_eq!(code, 11);
        client.update(&server_first).unwrap();
        (ex, client, String::from_utf8(server_first).unwrap())
    }

    fn assert_login(binding: ChannelBinding) {
        let (mut ex, mut client, _) = first_round("app", "app-secret", binding);
        let AuthStep::Done { final_message } = ex.step(client.message()) else {
            panic!("expected Done")
        };
        let (code, server_final) = decode_r(&final_message);
        assert_eq!(code, 12);
        client.finish(&server_final).unwrap();
        assert!(matches!(
            ex.step(b"again"),
            AuthStep::Fail { code: "08P01", .. }
        ));
    }

    fn password_failed(user: &str) -> AuthStep {
        AuthStep::Fail {
            code: "28P01",
            message: format!("password authentication failed for user \"{user}\""),
        }
    }

    fn assert_protocol_violation(step: AuthStep) {
        assert!(
            matches!(step, AuthStep::Fail { code: "08P01", .. }),
            "{step:?}"
        );
    }

    #[test]
    fn correct_password_succeeds_and_server_signature_verifies() {
        assert_login(ChannelBinding::unsupported());
    }

    #[test]
    fn client_that_would_bind_channels_but_was_not_offered_succeeds() {
        assert_login(ChannelBinding::unrequested());
    }

    #[test]
    fn wrong_password_fails_with_28p01() {
        let (mut ex, client, _) = first_round("app", "wrong", ChannelBinding::unsupported());
        assert_eq!(ex.step(client.message()), password_failed("app"));
    }

    #[test]
    fn unknown_user_fails_the_same_way_with_a_stable_salt() {
        let (mut ex, client, first) =
            first_round("ghost", "app-secret", ChannelBinding::unsupported());
        assert_eq!(ex.step(client.message()), password_failed("ghost"));

        let salt = |server_first: &str| server_first.split(',').nth(1).unwrap().to_owned();
        let db = db(AuthMethod::ScramSha256);
        let salt_of = |user: &str| {
            let mut ex = db.start(user);
            ex.begin();
            let AuthStep::Send(msg) = ex.step(&initial(MECHANISM, b"n,,n=,r=abc")) else {
                panic!("expected Send")
            };
            salt(&String::from_utf8(decode_r(&msg).1).unwrap())
        };
        assert_eq!(salt_of("ghost"), salt_of("ghost"));
        assert_ne!(salt_of("ghost"), salt_of("other"));
        assert!(first.ends_with(",i=4096"));
    }

    #[test]
    fn tampered_nonce_fails() {
        let (mut ex, client, _) = first_round("app", "app-secret", ChannelBinding::unsupported());
        let message = std::str::from_utf8(client.message()).unwrap();
        let tampered = message.replacen(",r=", ",r=X", 1);
        assert_protocol_violation(ex.step(tampered.as_bytes()));
    }

    #[test]
    fn channel_binding_request_is_rejected() {
        let mut ex = db(AuthMethod::ScramSha256).start("app");
        ex.begin();
        let client = ScramSha256::new(b"app-secret", ChannelBinding::tls_server_end_point(vec![1]));
        assert_protocol_violation(ex.step(&initial(MECHANISM, client.message())));
    }

    #[test]
    fn initial_response_without_data_gets_an_empty_challenge() {
        let mut ex = db(AuthMethod::ScramSha256).start("app");
        ex.begin();
        let mut body = b"SCRAM-SHA-256\0".to_vec();
        body.extend_from_slice(&(-1i32).to_be_bytes());
        let AuthStep::Send(msg) = ex.step(&body) else {
            panic!("expected Send")
        };
        assert_eq!(decode_r(&msg), (11, Vec::new()));
        let mut client = ScramSha256::new(b"app-secret", ChannelBinding::unsupported());
        let AuthStep::Send(msg) = ex.step(client.message()) else {
            panic!("expected Send")
        };
        client.update(&decode_r(&msg).1).unwrap();
        let AuthStep::Done { final_message } = ex.step(client.message()) else {
            panic!("expected Done")
        };
        client.finish(&decode_r(&final_message).1).unwrap();
    }

    #[test]
    fn malformed_initial_responses_fail_cleanly() {
        let mut bad_len = b"SCRAM-SHA-256\0".to_vec();
        bad_len.extend_from_slice(&5i32.to_be_bytes());
        bad_len.extend_from_slice(b"n,,");
        let cases: Vec<Vec<u8>> = vec![
            Vec::new(),
            b"SCRAM-SHA-256".to_vec(),
            b"SCRAM-SHA-256\0\0\0".to_vec(),
            bad_len,
            initial("SCRAM-SHA-256-PLUS", b"n,,n=,r=abc"),
            initial("PLAIN", b"n,,n=,r=abc"),
            initial(MECHANISM, b"\xff\xfe"),
            initial(MECHANISM, b""),
            initial(MECHANISM, b"x,,n=,r=abc"),
            initial(MECHANISM, b"n,a=bob,n=,r=abc"),
            initial(MECHANISM, b"n,,m=ext,n=,r=abc"),
            initial(MECHANISM, b"n,,r=abc"),
            initial(MECHANISM, b"n,,n="),
            initial(MECHANISM, b"n,,n=,r="),
            initial(MECHANISM, b"n,,n=,r=ab\x01c"),
            initial(MECHANISM, b"n,,n=,r=abc,=x"),
        ];
        for body in cases {
            let mut ex = db(AuthMethod::ScramSha256).start("app");
            ex.begin();
            assert_protocol_violation(ex.step(&body));
            assert_protocol_violation(ex.step(&body));
        }
    }

    #[test]
    fn extensions_in_client_first_are_ignored() {
        let mut ex = db(AuthMethod::ScramSha256).start("app");
        ex.begin();
        let step = ex.step(&initial(MECHANISM, b"y,,n=someone,r=abc,x=ext"));
        assert!(matches!(step, AuthStep::Send(_)), "{step:?}");
    }

    #[test]
    fn malformed_client_finals_fail_cleanly() {
        let proof = STANDARD.encode([7u8; 32]);
        let finals = |nonce: &str| {
            vec![
                String::new(),
                format!("c=biws,r={nonce}"),
                format!("c=biws,r={nonce},p=AAAA"),
                format!("c=biws,r={nonce},p=!!!"),
                format!("c=eSws,r={nonce},p={proof}"),
                format!("c=bm90LWJpbmRpbmc=,r={nonce},p={proof}"),
                format!("r={nonce},c=biws,p={proof}"),
                format!("c=biws,p={proof}"),
                format!("c=biws,r={nonce},1=x,p={proof}"),
            ]
        };
        for i in 0..finals("").len() {
            let (mut ex, _, first) =
                first_round("app", "app-secret", ChannelBinding::unsupported());
            let nonce = first.split(',').next().unwrap().strip_prefix("r=").unwrap();
            let body = finals(nonce).swap_remove(i);
            assert_protocol_violation(ex.step(body.as_bytes()));
        }
        // Well-formed but with a made-up proof: an authentication failure, not a violation.
        let (mut ex, _, first) = first_round("app", "app-secret", ChannelBinding::unsupported());
        let nonce = first.split(',').next().unwrap().strip_prefix("r=").unwrap();
        let body = format!("c=biws,r={nonce},x=ext,p={proof}");
        assert_eq!(ex.step(body.as_bytes()), password_failed("app"));
    }

    #[test]
    fn secret_matches_postgres_protocol_verifier() {
        // Format: SCRAM-SHA-256$<iterations>:<salt>$<StoredKey>:<ServerKey>
        let verifier = postgres_protocol::password::scram_sha_256(b"app-secret");
        let (_, rest) = verifier.split_once('$').unwrap();
        let (params, keys) = rest.split_once('$').unwrap();
        let (iterations, salt) = params.split_once(':').unwrap();
        let (stored, server) = keys.split_once(':').unwrap();
        let salt: [u8; SALT_LEN] = STANDARD.decode(salt).unwrap().try_into().unwrap();
        let secret = ScramSecret::derive(b"app-secret", salt, iterations.parse().unwrap());
        assert_eq!(STANDARD.encode(secret.stored_key), stored);
        assert_eq!(STANDARD.encode(secret.server_key), server);
    }
}
