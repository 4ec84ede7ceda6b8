//! Who may talk to the API: a bearer token made at start, written where
//! local clients find it, and a refusal of requests from foreign web pages.
//!
//! The token is 256 random bits. It and the address go to `api.token` and
//! `api.addr` in the state folder, readable by the host's user only (mode
//! 0600), and are removed when the host stops: anyone who can read the
//! state folder can drive the host, and nobody else. Browsers attach an
//! `Origin` header to cross-site requests; one naming another site is
//! refused (403), so a web page cannot drive the host through a user's
//! browser (DNS rebinding, CSRF), token or not.

use std::io::Write as _;
use std::net::SocketAddr;
use std::os::unix::fs::OpenOptionsExt as _;
use std::path::{Path, PathBuf};

use axum::extract::{Request, State};
use axum::http::header;
use axum::middleware::Next;
use axum::response::Response;

use super::error::ApiError;

/// File in the state folder holding the API's address (`127.0.0.1:PORT`).
pub const ADDR_FILE: &str = "api.addr";
/// File in the state folder holding the API's bearer token.
pub const TOKEN_FILE: &str = "api.token";
/// The one path that also takes the token as `?access_token=`.
const STREAM_PATH: &str = "/v1/events/stream";

/// A fresh token: 32 random bytes as hex.
///
/// # Errors
///
/// When the operating system's random source fails.
pub fn new_token() -> std::io::Result<String> {
    let mut bytes = [0u8; 32];
    getrandom::fill(&mut bytes).map_err(|e| std::io::Error::other(e.to_string()))?;
    Ok(hex::encode(bytes))
}

/// The address and token files of a running API; dropping this removes
/// them, so a stopped host leaves nothing that points at a dead port.
#[derive(Debug)]
pub struct Published {
    files: Vec<PathBuf>,
}

impl Published {
    /// Writes `api.addr` and `api.token` into `state_dir`, mode 0600.
    ///
    /// # Errors
    ///
    /// When a file cannot be written, naming it.
    pub fn write(state_dir: &Path, addr: SocketAddr, token: &str) -> anyhow::Result<Published> {
        let mut published = Published { files: Vec::new() };
        for (name, text) in [
            (ADDR_FILE, addr.to_string()),
            (TOKEN_FILE, token.to_string()),
        ] {
            let path = state_dir.join(name);
            write_private(&path, &text)
                .map_err(|e| anyhow::anyhow!("cannot write {}: {e}", path.display()))?;
            published.files.push(path);
        }
        Ok(published)
    }
}

impl Drop for Published {
    fn drop(&mut self) {
        for path in &self.files {
            let _ = std::fs::remove_file(path);
        }
    }
}

/// Replaces `path` with `text`, readable and writable by the owner only.
/// Written to a temporary file and renamed, so a reader never sees half a
/// token and the mode is right from the first byte.
fn write_private(path: &Path, text: &str) -> std::io::Result<()> {
    let tmp = path.with_extension(format!("tmp{}", std::process::id()));
    let mut file = std::fs::OpenOptions::new()
        .write(true)
        .create(true)
        .truncate(true)
        .mode(0o600)
        .open(&tmp)?;
    file.write_all(text.as_bytes())?;
    file.sync_all()?;
    std::fs::rename(&tmp, path)
}

/// What the guard checks every request against.
#[derive(Clone, Debug)]
pub struct Guard {
    /// The bearer token.
    pub token: String,
    /// Origins allowed besides the API's own address (from `[api]
    /// allowed_origins`), e.g. `http://localhost:3000`.
    pub allowed_origins: Vec<String>,
    /// The API's own address, whose origins (`http://127.0.0.1:PORT`,
    /// `http://localhost:PORT`) are always allowed.
    pub addr: SocketAddr,
}

impl Guard {
    fn origin_allowed(&self, origin: &str) -> bool {
        self.origins()
            .iter()
            .any(|o| o.eq_ignore_ascii_case(origin))
    }

    /// The origins a browser may call from: the API's own, and the listed.
    pub fn origins(&self) -> Vec<String> {
        let port = self.addr.port();
        let mut all = vec![
            format!("http://{}", self.addr),
            format!("http://localhost:{port}"),
            format!("http://127.0.0.1:{port}"),
            format!("http://[::1]:{port}"),
        ];
        all.extend(self.allowed_origins.iter().cloned());
        all.dedup();
        all
    }

    /// The token of a request: the `Authorization: Bearer` header, or, for
    /// the event stream only, `?access_token=` (a browser's `EventSource`
    /// cannot send headers).
    fn token_ok(&self, request: &Request) -> bool {
        if request.uri().path() == STREAM_PATH
            && let Some(query) = request.uri().query()
            && let Some((_, token)) =
                form_urlencoded::parse(query.as_bytes()).find(|(k, _)| k == "access_token")
        {
            return constant_time_eq(token.as_bytes(), self.token.as_bytes());
        }
        let Some(value) = request
            .headers()
            .get(header::AUTHORIZATION)
            .and_then(|v| v.to_str().ok())
        else {
            return false;
        };
        let Some(token) = value
            .strip_prefix("Bearer ")
            .or_else(|| value.strip_prefix("bearer "))
        else {
            return false;
        };
        constant_time_eq(token.trim().as_bytes(), self.token.as_bytes())
    }
}

/// Compares without an early exit, so timing does not reveal how much of a
/// guessed token was right.
fn constant_time_eq(a: &[u8], b: &[u8]) -> bool {
    a.len() == b.len() && a.iter().zip(b).fold(0u8, |acc, (x, y)| acc | (x ^ y)) == 0
}

/// The middleware every route goes through: a foreign `Origin` gets 403,
/// a missing or wrong token 401.
pub async fn guard(State(guard): State<Guard>, request: Request, next: Next) -> Response {
    if let Some(origin) = request.headers().get(header::ORIGIN) {
        let allowed = origin.to_str().is_ok_and(|o| guard.origin_allowed(o));
        if !allowed {
            let e = ApiError::with_status(
                403,
                format!(
                    "requests from origin {origin:?} are refused; add it to [api] allowed_origins to allow it"
                ),
            );
            return super::http::error_response(e);
        }
    }
    if !guard.token_ok(&request) {
        let e = ApiError::with_status(
            401,
            "missing or wrong bearer token: send `Authorization: Bearer <token>` with the token from api.token in the host's state folder",
        );
        let mut response = super::http::error_response(e);
        response.headers_mut().insert(
            header::WWW_AUTHENTICATE,
            axum::http::HeaderValue::from_static("Bearer"),
        );
        return response;
    }
    next.run(request).await
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::os::unix::fs::PermissionsExt as _;

    #[test]
    fn tokens_are_long_random_and_distinct() {
        let a = new_token().unwrap();
        let b = new_token().unwrap();
        assert_eq!(a.len(), 64);
        assert_ne!(a, b);
    }

    #[test]
    fn the_files_are_private_and_gone_when_dropped() {
        let dir = tempfile::tempdir().unwrap();
        let addr: SocketAddr = "127.0.0.1:4242".parse().unwrap();
        let published = Published::write(dir.path(), addr, "secret").unwrap();
        for name in [ADDR_FILE, TOKEN_FILE] {
            let meta = std::fs::metadata(dir.path().join(name)).unwrap();
            assert_eq!(meta.permissions().mode() & 0o777, 0o600, "{name}");
        }
        assert_eq!(
            std::fs::read_to_string(dir.path().join(ADDR_FILE)).unwrap(),
            "127.0.0.1:4242"
        );
        drop(published);
        assert!(!dir.path().join(ADDR_FILE).exists());
        assert!(!dir.path().join(TOKEN_FILE).exists());
    }

    #[test]
    fn only_the_own_and_listed_origins_pass() {
        let guard = Guard {
            token: "t".into(),
            allowed_origins: vec!["http://localhost:3000".into()],
            addr: "127.0.0.1:8080".parse().unwrap(),
        };
        assert!(guard.origin_allowed("http://127.0.0.1:8080"));
        assert!(guard.origin_allowed("http://localhost:8080"));
        assert!(guard.origin_allowed("http://localhost:3000"));
        assert!(!guard.origin_allowed("http://evil.example"));
        assert!(!guard.origin_allowed("http://localhost:9999"));
        assert!(!guard.origin_allowed("null"));
    }

    #[test]
    fn the_token_must_match_exactly() {
        let guard = Guard {
            token: "abc".into(),
            allowed_origins: Vec::new(),
            addr: "127.0.0.1:1".parse().unwrap(),
        };
        let request = |uri: &str, auth: Option<&str>| {
            let mut r = Request::builder().uri(uri);
            if let Some(a) = auth {
                r = r.header(header::AUTHORIZATION, a);
            }
            r.body(axum::body::Body::empty()).unwrap()
        };
        assert!(guard.token_ok(&request("/v1/processes", Some("Bearer abc"))));
        assert!(!guard.token_ok(&request("/v1/processes", Some("Bearer abd"))));
        assert!(!guard.token_ok(&request("/v1/processes", Some("Bearer ab"))));
        assert!(!guard.token_ok(&request("/v1/processes", Some("Basic abc"))));
        assert!(!guard.token_ok(&request("/v1/processes", None)));
        // A query token is taken for the event stream only.
        assert!(guard.token_ok(&request("/v1/events/stream?access_token=abc", None)));
        assert!(!guard.token_ok(&request("/v1/events/stream?access_token=abd", None)));
        assert!(!guard.token_ok(&request("/v1/processes?access_token=abc", None)));
    }
}
