//! SCRAM-SHA-256 (RFC 5802, RFC 7677) with API keys as passwords, checked against stored
//! verifiers — the server never needs the key itself.
//!
//! A SCRAM server names the salt before it sees a proof, and a tenant has many keys, so every
//! key of a tenant is salted with the tenant's salt (derived from its id): the server sends it,
//! and checks the client's proof against each of the tenant's verifiers (two HMACs and a hash
//! each) until one matches; that key is the session's credential. A key gets its verifier when
//! it is created ([`verifier`]); an older key gets one the first time it logs in with its
//! secret (cleartext over TLS, see [`super::wire`]).

use super::error::{state, SqlError};
use async_trait::async_trait;
use base64::engine::general_purpose::STANDARD as BASE64;
use base64::Engine;
use bytes::Bytes;
use pgwire::api::auth::mechanism::{AuthMechanism, AuthState};
use pgwire::api::auth::LoginInfo;
use pgwire::api::ClientInfo;
use pgwire::error::{PgWireError, PgWireResult};
use pgwire::messages::startup::{Authentication, PasswordMessageFamily};
use ring::{digest, hmac, pbkdf2};
use std::num::NonZeroU32;
use std::sync::Arc;

pub const MECHANISM: &str = "SCRAM-SHA-256";
/// PostgreSQL's default iteration count (the minimum RFC 7677 asks for).
pub const ITERATIONS: u32 = 4096;

/// The salt of every key of a tenant: fixed per tenant, so it can be sent before the server
/// knows which key the client holds. Keys are 256 random bits, so a shared salt gives an
/// attacker nothing a per-key salt would deny them.
pub fn tenant_salt(tenant_id: i64) -> Vec<u8> {
    salt_of(&format!("tenant:{tenant_id}"))
}

/// The salt shown for a user name that is no tenant (as PostgreSQL does for an unknown role,
/// so a failed login does not reveal whether the tenant exists).
pub fn unknown_salt(user: &str) -> Vec<u8> {
    salt_of(&format!("unknown:{user}"))
}

fn salt_of(what: &str) -> Vec<u8> {
    digest::digest(&digest::SHA256, format!("dialboard scram salt {what}").as_bytes()).as_ref()[..16].to_vec()
}

/// A key's stored verifier, in PostgreSQL's format:
/// `SCRAM-SHA-256$<iterations>:<salt>:<StoredKey>:<ServerKey>` (base64).
pub fn verifier(secret: &str, tenant_id: i64) -> String {
    let salt = tenant_salt(tenant_id);
    let mut salted = [0u8; 32];
    pbkdf2::derive(
        pbkdf2::PBKDF2_HMAC_SHA256,
        NonZeroU32::new(ITERATIONS).expect("nonzero"),
        &salt,
        secret.trim().as_bytes(),
        &mut salted,
    );
    let stored_key = digest::digest(&digest::SHA256, &mac(&salted, b"Client Key"));
    let server_key = mac(&salted, b"Server Key");
    format!(
        "{MECHANISM}${ITERATIONS}:{}:{}:{}",
        BASE64.encode(&salt),
        BASE64.encode(stored_key.as_ref()),
        BASE64.encode(server_key)
    )
}

/// A parsed verifier.
#[derive(Debug, Clone, PartialEq)]
pub struct Verifier {
    pub iterations: u32,
    pub salt: Vec<u8>,
    pub stored_key: Vec<u8>,
    pub server_key: Vec<u8>,
}

impl Verifier {
    pub fn parse(text: &str) -> Option<Verifier> {
        let rest = text.strip_prefix(MECHANISM)?.strip_prefix('$')?;
        let (iterations, keys) = rest.split_once(':')?;
        let mut parts = keys.split(':').map(|p| BASE64.decode(p).ok());
        let (salt, stored_key, server_key) = (parts.next()??, parts.next()??, parts.next()??);
        Some(Verifier {
            iterations: iterations.parse().ok()?,
            salt,
            stored_key,
            server_key,
        })
    }
}

fn mac(key: &[u8], message: &[u8]) -> Vec<u8> {
    hmac::sign(&hmac::Key::new(hmac::HMAC_SHA256, key), message)
        .as_ref()
        .to_vec()
}

/// Compares without stopping at the first difference.
fn same(a: &[u8], b: &[u8]) -> bool {
    a.len() == b.len() && a.iter().zip(b).fold(0u8, |acc, (x, y)| acc | (x ^ y)) == 0
}

/// Which of `candidates` the client's proof was made with, if any.
fn matching<'a, K>(candidates: &'a [(K, Verifier)], auth_message: &[u8], proof: &[u8]) -> Option<&'a (K, Verifier)> {
    candidates.iter().find(|(_, v)| {
        let signature = mac(&v.stored_key, auth_message);
        if signature.len() != proof.len() {
            return false;
        }
        let client_key: Vec<u8> = proof.iter().zip(&signature).map(|(p, s)| p ^ s).collect();
        same(digest::digest(&digest::SHA256, &client_key).as_ref(), &v.stored_key)
    })
}

/// What the SCRAM login asks of the server once a proof matched, or none did.
#[async_trait]
pub trait KeyLogin<I>: Send + Sync {
    /// The session of the key whose proof matched; `Err` refuses the login all the same.
    async fn login(&self, login: &LoginInfo, key_hash: [u8; 32]) -> PgWireResult<I>;
    /// The error for a proof no key made.
    fn refused(&self, login: &LoginInfo) -> PgWireError;
}

/// One SCRAM-SHA-256 exchange over a tenant's verifiers (pgwire's own mechanism checks a
/// single stored secret).
pub struct Exchange<I> {
    keys: Arc<dyn KeyLogin<I>>,
    salt: Vec<u8>,
    verifiers: Vec<([u8; 32], Verifier)>,
    step: Step,
}

impl<I> Exchange<I> {
    /// `salt` is sent to the client; `verifiers` (each with its key's hash) are the keys
    /// that may log in — those made with another salt or count could never match.
    pub fn new(keys: Arc<dyn KeyLogin<I>>, salt: Vec<u8>, verifiers: Vec<([u8; 32], Verifier)>) -> Exchange<I> {
        let verifiers = verifiers
            .into_iter()
            .filter(|(_, v)| v.salt == salt && v.iterations == ITERATIONS)
            .collect();
        Exchange {
            keys,
            salt,
            verifiers,
            step: Step::Start,
        }
    }
}

enum Step {
    Start,
    /// The server-first message was sent.
    Sent {
        client_first_bare: String,
        server_first: String,
        gs2_header: String,
        nonce: String,
    },
    Done,
}

fn malformed(what: &str) -> PgWireError {
    PgWireError::InvalidScramMessage(what.to_string())
}

/// The value of `name=` among a message's comma-separated attributes.
fn attribute(message: &str, name: char) -> Option<&str> {
    message.split(',').find_map(|a| {
        let mut chars = a.chars();
        (chars.next() == Some(name) && chars.next() == Some('=')).then(|| &a[2..])
    })
}

#[async_trait]
impl<I: Send + 'static> AuthMechanism<I> for Exchange<I> {
    async fn begin(&mut self, _client: &(dyn ClientInfo + Send + Sync)) -> PgWireResult<AuthState<I>> {
        Ok(AuthState::InProgress(Authentication::SASL(vec![MECHANISM.into()])))
    }

    async fn next(
        &mut self,
        client: &(dyn ClientInfo + Send + Sync),
        message: PasswordMessageFamily,
    ) -> PgWireResult<AuthState<I>> {
        let login = LoginInfo::from_client_info(client);
        match std::mem::replace(&mut self.step, Step::Done) {
            Step::Start => {
                let first = message.into_sasl_initial_response()?;
                if first.auth_method != MECHANISM {
                    return Err(PgWireError::UnsupportedSASLAuthMethod(first.auth_method));
                }
                let data = first.data.ok_or_else(|| malformed("empty client-first message"))?;
                let text = std::str::from_utf8(&data).map_err(|_| malformed("client-first is not UTF-8"))?;
                // gs2-header: "n,," or "y,," (no channel binding: SCRAM-SHA-256-PLUS is not
                // offered), then the bare message with the client's nonce.
                let mut parts = text.splitn(3, ',');
                let (flag, authzid, bare) = (parts.next(), parts.next(), parts.next());
                let (Some(flag @ ("n" | "y")), Some(""), Some(bare)) = (flag, authzid, bare) else {
                    return Err(SqlError::new(
                        state::INVALID_PASSWORD,
                        "SCRAM channel binding is not supported: use channel_binding=prefer or disable",
                    )
                    .into());
                };
                let client_nonce = attribute(bare, 'r').ok_or_else(|| malformed("client-first without a nonce"))?;
                let mut random = [0u8; 18];
                getrandom::fill(&mut random).expect("the OS random source works");
                let nonce = format!("{client_nonce}{}", BASE64.encode(random));
                let server_first = format!("r={nonce},s={},i={ITERATIONS}", BASE64.encode(&self.salt));
                self.step = Step::Sent {
                    client_first_bare: bare.to_string(),
                    server_first: server_first.clone(),
                    gs2_header: format!("{flag},,"),
                    nonce,
                };
                Ok(AuthState::InProgress(Authentication::SASLContinue(Bytes::from(
                    server_first,
                ))))
            }
            Step::Sent {
                client_first_bare,
                server_first,
                gs2_header,
                nonce,
            } => {
                let response = message.into_sasl_response()?;
                let text = std::str::from_utf8(&response.data).map_err(|_| malformed("client-final is not UTF-8"))?;
                let (without_proof, proof) = text
                    .rsplit_once(",p=")
                    .ok_or_else(|| malformed("client-final without a proof"))?;
                if attribute(without_proof, 'c') != Some(BASE64.encode(&gs2_header).as_str())
                    || attribute(without_proof, 'r') != Some(nonce.as_str())
                {
                    return Err(self.keys.refused(&login));
                }
                let proof = BASE64.decode(proof).map_err(|_| malformed("the proof is not base64"))?;
                let auth_message = format!("{client_first_bare},{server_first},{without_proof}");
                let Some((key_hash, verifier)) = matching(&self.verifiers, auth_message.as_bytes(), &proof) else {
                    return Err(self.keys.refused(&login));
                };
                let identity = self.keys.login(&login, *key_hash).await?;
                let signature = mac(&verifier.server_key, auth_message.as_bytes());
                Ok(AuthState::Ok {
                    final_message: Some(Authentication::SASLFinal(Bytes::from(format!(
                        "v={}",
                        BASE64.encode(signature)
                    )))),
                    identity: Some(identity),
                })
            }
            Step::Done => Err(PgWireError::InvalidSASLState),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// The client's side of RFC 5802, to check the server's against.
    fn client_proof(secret: &str, salt: &[u8], auth_message: &str) -> Vec<u8> {
        let mut salted = [0u8; 32];
        pbkdf2::derive(
            pbkdf2::PBKDF2_HMAC_SHA256,
            NonZeroU32::new(ITERATIONS).unwrap(),
            salt,
            secret.as_bytes(),
            &mut salted,
        );
        let client_key = mac(&salted, b"Client Key");
        let stored_key = digest::digest(&digest::SHA256, &client_key);
        let signature = mac(stored_key.as_ref(), auth_message.as_bytes());
        client_key.iter().zip(signature).map(|(k, s)| k ^ s).collect()
    }

    #[test]
    fn a_proof_matches_the_verifier_of_its_key_only() {
        let keys = [("k1", "dbk_one"), ("k2", "dbk_two")];
        let candidates: Vec<(&str, Verifier)> = keys
            .iter()
            .map(|(id, secret)| (*id, Verifier::parse(&verifier(secret, 7)).unwrap()))
            .collect();
        let message = "n=,r=abc,r=abcdef,s=xyz,i=4096,c=biws,r=abcdef";
        let proof = client_proof("dbk_two", &tenant_salt(7), message);
        assert_eq!(
            matching(&candidates, message.as_bytes(), &proof).map(|c| c.0),
            Some("k2")
        );
        let wrong = client_proof("dbk_three", &tenant_salt(7), message);
        assert!(matching(&candidates, message.as_bytes(), &wrong).is_none());
        let other_tenant = client_proof("dbk_two", &tenant_salt(8), message);
        assert!(matching(&candidates, message.as_bytes(), &other_tenant).is_none());
    }

    #[test]
    fn verifiers_read_back_in_postgresql_format() {
        let text = verifier("dbk_x", 1);
        assert!(text.starts_with("SCRAM-SHA-256$4096:"), "{text}");
        let v = Verifier::parse(&text).unwrap();
        assert_eq!(
            (v.iterations, v.salt.len(), v.stored_key.len(), v.server_key.len()),
            (4096, 16, 32, 32)
        );
        assert_eq!(Verifier::parse("md5abc"), None);
    }
}
