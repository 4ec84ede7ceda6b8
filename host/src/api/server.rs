//! [`ApiServer`]: the HTTP listener of a running host — `/v1`, `/mcp`,
//! `/metrics`, health — behind the token and origin guard.

use std::net::{IpAddr, SocketAddr};
use std::path::PathBuf;
use std::sync::Arc;

use anyhow::Context as _;
use axum::Router;
use serde::Deserialize;
use tokio::task::JoinHandle;
use tokio_util::sync::CancellationToken;

use super::auth::{Guard, Published, new_token};
use super::control::Control;
use super::mcp::{McpFactory, http_service};

/// `[api]` in host.toml.
#[derive(Debug, Clone, Deserialize, PartialEq)]
#[serde(deny_unknown_fields, default)]
pub struct ApiConfig {
    /// Serve the API at all. Example: `enabled = false`
    pub enabled: bool,
    /// Address to listen on; loopback with an ephemeral port unless set.
    /// Example: `listen = "127.0.0.1:7700"`
    pub listen: Option<String>,
    /// Allow a non-loopback `listen` address (the token is still needed).
    /// Example: `allow_remote = true`
    pub allow_remote: bool,
    /// Browser origins allowed besides the API's own, e.g. a dashboard.
    /// Example: `allowed_origins = ["http://localhost:3000"]`
    pub allowed_origins: Vec<String>,
}

impl Default for ApiConfig {
    fn default() -> Self {
        ApiConfig {
            enabled: true,
            listen: None,
            allow_remote: false,
            allowed_origins: Vec::new(),
        }
    }
}

impl ApiConfig {
    /// The address to bind: `listen`, else `127.0.0.1:0`.
    ///
    /// # Errors
    ///
    /// When `listen` is not an `IP:PORT`, or is not loopback without
    /// `allow_remote`.
    pub fn bind_addr(&self) -> anyhow::Result<SocketAddr> {
        let addr: SocketAddr = match &self.listen {
            None => SocketAddr::from(([127, 0, 0, 1], 0)),
            Some(text) => text.parse().with_context(|| {
                format!("`api.listen` = {text:?} is not an address like 127.0.0.1:7700")
            })?,
        };
        if !is_loopback(addr.ip()) && !self.allow_remote {
            anyhow::bail!(
                "`api.listen` = {addr} is reachable from other machines; set `allow_remote = true` under [api] (or pass --allow-remote) to mean it — the bearer token is still required"
            );
        }
        Ok(addr)
    }
}

fn is_loopback(ip: IpAddr) -> bool {
    ip.is_loopback()
}

/// Cross-origin rules for browsers: the API's own origins and the listed
/// ones may call with the token and read the answers.
fn cors(guard: &Guard) -> tower_http::cors::CorsLayer {
    use axum::http::{HeaderName, HeaderValue, Method, header};
    let origins: Vec<HeaderValue> = guard
        .origins()
        .iter()
        .filter_map(|o| HeaderValue::from_str(o).ok())
        .collect();
    tower_http::cors::CorsLayer::new()
        .allow_origin(origins)
        .allow_methods([Method::GET, Method::POST, Method::DELETE])
        .allow_headers([
            header::AUTHORIZATION,
            header::CONTENT_TYPE,
            HeaderName::from_static("last-event-id"),
            HeaderName::from_static("mcp-protocol-version"),
            HeaderName::from_static("mcp-session-id"),
        ])
        .expose_headers([HeaderName::from_static("mcp-session-id")])
        .max_age(std::time::Duration::from_secs(600))
}

/// A running API server; [`ApiServer::shutdown`] stops it and removes its
/// address and token files.
pub struct ApiServer {
    addr: SocketAddr,
    token: String,
    cancel: CancellationToken,
    task: JoinHandle<()>,
    published: Option<Published>,
}

impl ApiServer {
    /// Binds, writes `api.addr` and `api.token` into `state_dir`, and
    /// serves the routes and `/mcp` until [`ApiServer::shutdown`].
    ///
    /// # Errors
    ///
    /// When the address is refused, cannot be bound, or the files cannot
    /// be written.
    pub async fn start(
        control: Control,
        config: &ApiConfig,
        state_dir: PathBuf,
    ) -> anyhow::Result<ApiServer> {
        let bind = config.bind_addr()?;
        let listener = tokio::net::TcpListener::bind(bind)
            .await
            .with_context(|| format!("cannot listen on {bind}"))?;
        let addr = listener.local_addr().context("the bound address")?;
        let token = new_token().context("cannot make an API token")?;
        let cancel = CancellationToken::new();
        let guard = Guard {
            token: token.clone(),
            allowed_origins: config.allowed_origins.clone(),
            addr,
        };
        let mcp = McpFactory::new(Arc::new(control.clone()), None);
        let cors = cors(&guard);
        // The CORS layer is outermost: it answers a browser's preflight
        // (which carries no token) for the allowed origins, and adds its
        // headers to the guard's answers.
        let app: Router = super::http::routes(control)
            .nest_service("/mcp", http_service(mcp, cancel.child_token()))
            .layer(axum::middleware::from_fn_with_state(
                guard,
                super::auth::guard,
            ))
            .layer(cors);
        let published = Published::write(&state_dir, addr, &token)?;
        let stop = cancel.clone();
        let task = tokio::spawn(async move {
            let served = axum::serve(listener, app)
                .with_graceful_shutdown(async move { stop.cancelled().await })
                .await;
            if let Err(e) = served {
                tracing::error!("the API server failed: {e}");
            }
        });
        tracing::info!(%addr, "API listening");
        Ok(ApiServer {
            addr,
            token,
            cancel,
            task,
            published: Some(published),
        })
    }

    /// Where it listens.
    pub fn addr(&self) -> SocketAddr {
        self.addr
    }

    /// Its bearer token.
    pub fn token(&self) -> &str {
        &self.token
    }

    /// Stops accepting, ends open streams, waits briefly for requests in
    /// flight, and removes `api.addr` and `api.token`.
    pub async fn shutdown(mut self) {
        // The files go first: a client started now finds no host rather
        // than a closing one.
        self.published.take();
        self.cancel.cancel();
        // Long polls and event streams end with the cancel; give the rest a
        // moment, then let them go.
        let _ = tokio::time::timeout(std::time::Duration::from_secs(2), &mut self.task).await;
        self.task.abort();
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn loopback_is_the_default_and_remote_needs_the_flag() {
        let config = ApiConfig::default();
        assert_eq!(config.bind_addr().unwrap().to_string(), "127.0.0.1:0");
        let remote = ApiConfig {
            listen: Some("0.0.0.0:7700".into()),
            ..ApiConfig::default()
        };
        let err = remote.bind_addr().unwrap_err().to_string();
        assert!(err.contains("allow_remote"), "{err}");
        let allowed = ApiConfig {
            allow_remote: true,
            ..remote
        };
        assert_eq!(allowed.bind_addr().unwrap().to_string(), "0.0.0.0:7700");
        let bad = ApiConfig {
            listen: Some("localhost".into()),
            ..ApiConfig::default()
        };
        assert!(
            bad.bind_addr()
                .unwrap_err()
                .to_string()
                .contains("api.listen")
        );
    }
}
