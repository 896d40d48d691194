//! CORS for the REST API, with the defaults and behaviour of Go's `rs/cors` as IPFS Cluster
//! configures it (reference §1.1): preflights are answered by this layer and never reach a
//! route; other requests get the allow/expose headers when their origin and method are allowed.
//!
//! Owns the decision and the header values; the server applies them.

use std::time::Duration;

/// The `cors_*` keys of `api.restapi`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct CorsConfig {
    /// `cors_allowed_origins`: exact origins, `*`, or one `*` wildcard inside an origin.
    pub allowed_origins: Vec<String>,
    /// `cors_allowed_methods` (case-insensitive).
    pub allowed_methods: Vec<String>,
    /// `cors_allowed_headers`; empty means rs/cors' default set.
    pub allowed_headers: Vec<String>,
    /// `cors_exposed_headers`.
    pub exposed_headers: Vec<String>,
    /// `cors_allow_credentials`.
    pub allow_credentials: bool,
    /// `cors_max_age`; zero sends no `Access-Control-Max-Age`.
    pub max_age: Duration,
}

impl Default for CorsConfig {
    fn default() -> Self {
        CorsConfig {
            allowed_origins: vec!["*".into()],
            allowed_methods: vec!["GET".into()],
            allowed_headers: Vec::new(),
            exposed_headers: [
                "Content-Type",
                "X-Stream-Output",
                "X-Chunked-Output",
                "X-Content-Length",
            ]
            .map(String::from)
            .to_vec(),
            allow_credentials: true,
            max_age: Duration::ZERO,
        }
    }
}

/// rs/cors (v1.11) allows these request headers when none are configured.
const DEFAULT_ALLOWED_HEADERS: [&str; 3] = ["accept", "content-type", "x-requested-with"];

impl CorsConfig {
    fn origin_allowed(&self, origin: &str) -> bool {
        self.allowed_origins.iter().any(|allowed| {
            if allowed == "*" {
                return true;
            }
            match allowed.split_once('*') {
                None => allowed.eq_ignore_ascii_case(origin),
                Some((prefix, suffix)) => {
                    let origin = origin.to_ascii_lowercase();
                    origin.len() >= prefix.len() + suffix.len()
                        && origin.starts_with(&prefix.to_ascii_lowercase())
                        && origin.ends_with(&suffix.to_ascii_lowercase())
                }
            }
        })
    }

    fn method_allowed(&self, method: &str) -> bool {
        // rs/cors: OPTIONS is always allowed.
        method.eq_ignore_ascii_case("OPTIONS") || self.allowed_methods.iter().any(|m| m.eq_ignore_ascii_case(method))
    }

    fn headers_allowed(&self, requested: &str) -> bool {
        requested
            .split(',')
            .map(|h| h.trim().to_ascii_lowercase())
            .filter(|h| !h.is_empty())
            .all(|h| {
                h == "origin"
                    || if self.allowed_headers.is_empty() {
                        DEFAULT_ALLOWED_HEADERS.contains(&h.as_str())
                    } else {
                        self.allowed_headers
                            .iter()
                            .any(|a| a == "*" || a.eq_ignore_ascii_case(&h))
                    }
            })
    }

    /// rs/cors answers a literal `*` whenever all origins are allowed, even with credentials.
    fn allow_origin_value(&self, origin: &str) -> String {
        if self.allowed_origins.iter().any(|o| o == "*") {
            "*".to_string()
        } else {
            origin.to_string()
        }
    }

    /// The headers of a preflight answer (204, empty body). Empty when the origin, method or
    /// headers are not allowed: the browser then refuses the real request.
    pub fn preflight(&self, origin: Option<&str>, method: &str, headers: Option<&str>) -> Vec<(&'static str, String)> {
        let mut out = vec![(
            "vary",
            "Origin, Access-Control-Request-Method, Access-Control-Request-Headers".to_string(),
        )];
        let Some(origin) = origin else { return out };
        if !self.origin_allowed(origin) || !self.method_allowed(method) || !self.headers_allowed(headers.unwrap_or(""))
        {
            return out;
        }
        out.push(("access-control-allow-origin", self.allow_origin_value(origin)));
        out.push(("access-control-allow-methods", method.to_ascii_uppercase()));
        if let Some(headers) = headers.filter(|h| !h.trim().is_empty()) {
            out.push(("access-control-allow-headers", headers.to_string()));
        }
        if self.allow_credentials {
            out.push(("access-control-allow-credentials", "true".into()));
        }
        if !self.max_age.is_zero() {
            out.push(("access-control-max-age", self.max_age.as_secs().to_string()));
        }
        out
    }

    /// The headers added to a normal response to a request from `origin`.
    pub fn actual(&self, origin: Option<&str>, method: &str) -> Vec<(&'static str, String)> {
        let mut out = vec![("vary", "Origin".to_string())];
        let Some(origin) = origin else { return out };
        if !self.origin_allowed(origin) || !self.method_allowed(method) {
            return out;
        }
        out.push(("access-control-allow-origin", self.allow_origin_value(origin)));
        if !self.exposed_headers.is_empty() {
            out.push(("access-control-expose-headers", self.exposed_headers.join(", ")));
        }
        if self.allow_credentials {
            out.push(("access-control-allow-credentials", "true".into()));
        }
        out
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn get<'a>(headers: &'a [(&'static str, String)], name: &str) -> Option<&'a str> {
        headers.iter().find(|(n, _)| *n == name).map(|(_, v)| v.as_str())
    }

    #[test]
    fn defaults_allow_get_from_any_origin_with_credentials() {
        let cors = CorsConfig::default();
        let pre = cors.preflight(Some("https://app.example"), "GET", None);
        assert_eq!(get(&pre, "access-control-allow-origin"), Some("*"));
        assert_eq!(get(&pre, "access-control-allow-methods"), Some("GET"));
        assert_eq!(get(&pre, "access-control-allow-credentials"), Some("true"));
        assert_eq!(get(&pre, "access-control-max-age"), None);
        // POST is not in the default methods: no allow headers.
        let pre = cors.preflight(Some("https://app.example"), "POST", None);
        assert_eq!(get(&pre, "access-control-allow-origin"), None);
        // Authorization is not among rs/cors' default headers.
        let pre = cors.preflight(Some("https://app.example"), "GET", Some("Authorization"));
        assert_eq!(get(&pre, "access-control-allow-origin"), None);
        let pre = cors.preflight(Some("https://app.example"), "GET", Some("Content-Type, Accept"));
        assert_eq!(get(&pre, "access-control-allow-headers"), Some("Content-Type, Accept"));

        let actual = cors.actual(Some("https://app.example"), "GET");
        assert_eq!(
            get(&actual, "access-control-expose-headers"),
            Some("Content-Type, X-Stream-Output, X-Chunked-Output, X-Content-Length")
        );
        assert_eq!(get(&cors.actual(None, "GET"), "access-control-allow-origin"), None);
    }

    #[test]
    fn configured_origins_methods_headers_and_max_age() {
        let cors = CorsConfig {
            allowed_origins: vec!["https://*.example.org".into(), "http://localhost:3000".into()],
            allowed_methods: vec!["GET".into(), "post".into()],
            allowed_headers: vec!["Authorization".into()],
            allow_credentials: false,
            max_age: Duration::from_secs(600),
            ..CorsConfig::default()
        };
        let pre = cors.preflight(Some("https://ui.example.org"), "POST", Some("authorization"));
        assert_eq!(get(&pre, "access-control-allow-origin"), Some("https://ui.example.org"));
        assert_eq!(get(&pre, "access-control-allow-methods"), Some("POST"));
        assert_eq!(get(&pre, "access-control-max-age"), Some("600"));
        assert_eq!(get(&pre, "access-control-allow-credentials"), None);
        assert!(get(
            &cors.preflight(Some("https://evil.com"), "GET", None),
            "access-control-allow-origin"
        )
        .is_none());
        assert!(get(
            &cors.preflight(Some("http://localhost:3000"), "DELETE", None),
            "access-control-allow-origin"
        )
        .is_none());
    }

    #[test]
    fn star_without_credentials_answers_star() {
        let cors = CorsConfig {
            allow_credentials: false,
            ..CorsConfig::default()
        };
        assert_eq!(
            get(
                &cors.actual(Some("https://x.example"), "GET"),
                "access-control-allow-origin"
            ),
            Some("*")
        );
    }
}
