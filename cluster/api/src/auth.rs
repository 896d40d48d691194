//! REST API authentication (reference §1.2): HTTP Basic against `basic_auth_credentials`, and
//! Bearer tokens, HS256 JWTs issued by `POST /token` whose `iss` names the user and whose key is
//! that user's password (so changing a password revokes its tokens).
//!
//! Owns credential checking and token signing. Does not own which requests are exempt (OPTIONS
//! and `GET /health`: the server decides) nor the 401 response itself.

use std::collections::BTreeMap;

use base64::engine::general_purpose::{STANDARD, URL_SAFE_NO_PAD};
use base64::Engine;
use hmac::{Hmac, Mac};
use sha2::Sha256;

/// The realm in every `WWW-Authenticate` challenge.
pub const REALM: &str = "Restricted IPFS Cluster API";

/// Users and their passwords (`basic_auth_credentials`).
#[derive(Clone, PartialEq, Eq)]
pub struct Credentials(pub BTreeMap<String, String>);

impl std::fmt::Debug for Credentials {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        // Never print passwords.
        f.debug_list().entries(self.0.keys()).finish()
    }
}

/// Why a request was refused; each maps to Go's message and challenge.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Denied {
    /// No `Authorization` header (or an unknown scheme).
    NoAuth,
    /// Basic credentials that do not match.
    BadBasic,
    /// A Bearer token that does not verify.
    BadToken,
}

impl Denied {
    /// The error message of the 401 body.
    pub fn message(self) -> &'static str {
        match self {
            Denied::NoAuth => "unauthorized: no auth provided",
            Denied::BadBasic => "unauthorized: access denied",
            Denied::BadToken => "unauthorized: invalid token",
        }
    }

    /// The `WWW-Authenticate` values to send.
    pub fn challenges(self) -> Vec<String> {
        let basic = format!("Basic realm=\"{REALM}\"");
        let bearer = format!("Bearer realm=\"{REALM}\", error=\"invalid_token\"");
        match self {
            // Go sends the Bearer challenge first, without the error attribute.
            Denied::NoAuth => vec![format!("Bearer realm=\"{REALM}\""), basic],
            Denied::BadBasic => vec![basic],
            Denied::BadToken => vec![bearer],
        }
    }
}

type HmacSha256 = Hmac<Sha256>;

impl Credentials {
    /// Checks an `Authorization` header value; returns the user it authenticates.
    pub fn check(&self, authorization: Option<&str>) -> Result<String, Denied> {
        let Some(value) = authorization.map(str::trim) else {
            return Err(Denied::NoAuth);
        };
        let (scheme, rest) = value.split_once(' ').unwrap_or((value, ""));
        if scheme.eq_ignore_ascii_case("basic") {
            // An undecodable Basic header counts as none, as in Go's `r.BasicAuth()`.
            let decoded = STANDARD.decode(rest.trim()).map_err(|_| Denied::NoAuth)?;
            let text = String::from_utf8(decoded).map_err(|_| Denied::NoAuth)?;
            let (user, password) = text.split_once(':').ok_or(Denied::NoAuth)?;
            match self.0.get(user) {
                Some(expected) if constant_time_eq(expected.as_bytes(), password.as_bytes()) => Ok(user.to_string()),
                _ => Err(Denied::BadBasic),
            }
        } else if scheme.eq_ignore_ascii_case("bearer") {
            self.verify_token(rest.trim()).ok_or(Denied::BadToken)
        } else {
            Err(Denied::NoAuth)
        }
    }

    /// A new token for `user` (who must exist): `{"iss": user}`, no expiry, as Go issues.
    pub fn issue_token(&self, user: &str) -> Option<String> {
        let key = self.0.get(user)?;
        let header = URL_SAFE_NO_PAD.encode(br#"{"alg":"HS256","typ":"JWT"}"#);
        let claims = URL_SAFE_NO_PAD.encode(serde_json::json!({ "iss": user }).to_string());
        let signing_input = format!("{header}.{claims}");
        let signature = URL_SAFE_NO_PAD.encode(sign(key, signing_input.as_bytes()));
        Some(format!("{signing_input}.{signature}"))
    }

    /// The user a token was issued to, if it verifies (HS256 only, signature with that user's
    /// password, and not past `exp` / before `nbf` when present).
    fn verify_token(&self, token: &str) -> Option<String> {
        let mut parts = token.split('.');
        let (header, claims, signature) = (parts.next()?, parts.next()?, parts.next()?);
        if parts.next().is_some() {
            return None;
        }
        let header: serde_json::Value = serde_json::from_slice(&URL_SAFE_NO_PAD.decode(header).ok()?).ok()?;
        if header.get("alg")?.as_str()? != "HS256" {
            return None;
        }
        let claims: serde_json::Value = serde_json::from_slice(&URL_SAFE_NO_PAD.decode(claims).ok()?).ok()?;
        let user = claims.get("iss")?.as_str()?;
        let key = self.0.get(user)?;
        let given = URL_SAFE_NO_PAD.decode(signature).ok()?;
        let mut mac = HmacSha256::new_from_slice(key.as_bytes()).ok()?;
        mac.update(&token.as_bytes()[..token.rfind('.')?]);
        mac.verify_slice(&given).ok()?;
        let now = cluster_types::Timestamp::now().unix_nanos() / 1_000_000_000;
        if claims.get("exp").and_then(|v| v.as_i64()).is_some_and(|exp| now >= exp) {
            return None;
        }
        if claims.get("nbf").and_then(|v| v.as_i64()).is_some_and(|nbf| now < nbf) {
            return None;
        }
        if claims.get("iat").and_then(|v| v.as_i64()).is_some_and(|iat| now < iat) {
            return None;
        }
        Some(user.to_string())
    }
}

fn sign(key: &str, data: &[u8]) -> Vec<u8> {
    let mut mac = HmacSha256::new_from_slice(key.as_bytes()).expect("HMAC takes keys of any length");
    mac.update(data);
    mac.finalize().into_bytes().to_vec()
}

fn constant_time_eq(a: &[u8], b: &[u8]) -> bool {
    a.len() == b.len() && a.iter().zip(b).fold(0u8, |acc, (x, y)| acc | (x ^ y)) == 0
}

#[cfg(test)]
mod tests {
    use super::*;

    fn creds() -> Credentials {
        Credentials(BTreeMap::from([
            ("admin".to_string(), "s3cret".to_string()),
            ("ops".to_string(), "other".to_string()),
        ]))
    }

    fn basic(user_pass: &str) -> String {
        format!("Basic {}", STANDARD.encode(user_pass))
    }

    #[test]
    fn basic_auth_accepts_only_the_configured_password() {
        let c = creds();
        assert_eq!(c.check(Some(&basic("admin:s3cret"))), Ok("admin".into()));
        assert_eq!(c.check(Some(&basic("admin:wrong"))), Err(Denied::BadBasic));
        assert_eq!(c.check(Some(&basic("nobody:s3cret"))), Err(Denied::BadBasic));
        assert_eq!(c.check(Some("Basic !!notbase64")), Err(Denied::NoAuth));
        assert_eq!(c.check(None), Err(Denied::NoAuth));
        assert_eq!(c.check(Some("Digest abc")), Err(Denied::NoAuth));
        // Scheme names are case-insensitive.
        assert_eq!(
            c.check(Some(&basic("ops:other").replace("Basic", "basic"))),
            Ok("ops".into())
        );
    }

    #[test]
    fn issued_tokens_verify_until_the_password_changes() {
        let c = creds();
        let token = c.issue_token("admin").unwrap();
        assert_eq!(token.split('.').count(), 3);
        assert_eq!(c.check(Some(&format!("Bearer {token}"))), Ok("admin".into()));
        assert_eq!(c.check(Some(&format!("bearer {token}"))), Ok("admin".into()));
        let mut changed = creds();
        changed.0.insert("admin".into(), "rotated".into());
        assert_eq!(changed.check(Some(&format!("Bearer {token}"))), Err(Denied::BadToken));
        assert!(c.issue_token("nobody").is_none());
    }

    #[test]
    fn tokens_are_byte_for_byte_what_go_issues() {
        // Go (jwt v4, RegisteredClaims{Issuer: "admin"}) signed with "secret".
        let c = Credentials(BTreeMap::from([("admin".to_string(), "secret".to_string())]));
        assert_eq!(
            c.issue_token("admin").unwrap(),
            "eyJhbGciOiJIUzI1NiIsInR5cCI6IkpXVCJ9.eyJpc3MiOiJhZG1pbiJ9.M6IlVhzrvxAzhBmZ2XudPr_8WShHZR64S4kzrhKnLkE"
        );
    }

    #[test]
    fn tampered_or_foreign_tokens_are_refused() {
        let c = creds();
        let token = c.issue_token("ops").unwrap();
        let (head, _) = token.rsplit_once('.').unwrap();
        // Claims swapped to another user, signature of the first.
        let forged_claims = URL_SAFE_NO_PAD.encode(br#"{"iss":"admin"}"#);
        let parts: Vec<&str> = token.split('.').collect();
        let forged = format!("{}.{}.{}", parts[0], forged_claims, parts[2]);
        assert_eq!(c.check(Some(&format!("Bearer {forged}"))), Err(Denied::BadToken));
        assert_eq!(c.check(Some(&format!("Bearer {head}"))), Err(Denied::BadToken));
        assert_eq!(c.check(Some("Bearer not.a.jwt")), Err(Denied::BadToken));
        // alg none is never accepted.
        let none = format!("{}.{}.", URL_SAFE_NO_PAD.encode(br#"{"alg":"none"}"#), forged_claims);
        assert_eq!(c.check(Some(&format!("Bearer {none}"))), Err(Denied::BadToken));
    }

    #[test]
    fn expired_tokens_are_refused() {
        let c = creds();
        let header = URL_SAFE_NO_PAD.encode(br#"{"alg":"HS256","typ":"JWT"}"#);
        let claims = URL_SAFE_NO_PAD.encode(br#"{"iss":"admin","exp":1000}"#);
        let input = format!("{header}.{claims}");
        let token = format!("{input}.{}", URL_SAFE_NO_PAD.encode(sign("s3cret", input.as_bytes())));
        assert_eq!(c.check(Some(&format!("Bearer {token}"))), Err(Denied::BadToken));
    }

    #[test]
    fn debug_output_hides_passwords() {
        assert!(!format!("{:?}", creds()).contains("s3cret"));
    }
}
