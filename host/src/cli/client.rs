//! What every client verb shares: finding the running host, a small async
//! runtime, and turning the host's answer into output and an exit code.

use std::future::Future;
use std::path::PathBuf;
use std::process::ExitCode;

use anyhow::Context as _;
use clap::Args;

use crate::api::{ApiClient, ApiError, ClientError};
use crate::config::HostConfig;

use super::{EXIT_FAILED, EXIT_NO_HOST, EXIT_NOT_FOUND};

/// How a client verb finds the host, and how it answers.
#[derive(Debug, Clone, Args)]
pub struct ConnectArgs {
    /// The state folder of the running host [default: the config's
    /// `state_dir`, else .state].
    #[arg(long, value_name = "DIR", env = "HOST_STATE_DIR", global = true)]
    pub state_dir: Option<PathBuf>,
    /// The host.toml the host runs with (to find its state folder).
    #[arg(long, value_name = "FILE", global = true)]
    pub config: Option<PathBuf>,
    /// JSON instead of a table, for scripts.
    #[arg(long, global = true)]
    pub json: bool,
}

impl ConnectArgs {
    /// The state folder these flags point at.
    ///
    /// # Errors
    ///
    /// When `--config` cannot be read.
    pub fn state_dir(&self) -> anyhow::Result<PathBuf> {
        let from_config = match &self.config {
            Some(path) => HostConfig::load(path)?.host.state_dir,
            None => None,
        };
        Ok(super::state_dir(self.state_dir.clone(), from_config))
    }

    /// A client of the host running on the state folder.
    ///
    /// # Errors
    ///
    /// When no host runs there.
    pub fn connect(&self) -> Result<ApiClient, Failure> {
        let dir = self.state_dir().map_err(Failure::Other)?;
        ApiClient::from_state_dir(&dir).map_err(Failure::Client)
    }
}

/// Why a client verb failed, for its exit code.
#[derive(Debug)]
pub enum Failure {
    /// From the client: the host's error or no host.
    Client(ClientError),
    /// Anything else (bad flags, a local file).
    Other(anyhow::Error),
}

impl From<ClientError> for Failure {
    fn from(e: ClientError) -> Self {
        Failure::Client(e)
    }
}

impl From<ApiError> for Failure {
    fn from(e: ApiError) -> Self {
        Failure::Client(ClientError::Api(e))
    }
}

impl From<anyhow::Error> for Failure {
    fn from(e: anyhow::Error) -> Self {
        Failure::Other(e)
    }
}

/// Runs an async client verb on a small runtime and turns its failure into
/// one line on stderr and an exit code.
pub fn block_on<F>(verb: F) -> anyhow::Result<ExitCode>
where
    F: Future<Output = Result<ExitCode, Failure>>,
{
    let runtime = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .context("cannot start the async runtime")?;
    Ok(match runtime.block_on(verb) {
        Ok(code) => code,
        Err(failure) => report(failure),
    })
}

/// Prints a failure and picks its exit code.
pub fn report(failure: Failure) -> ExitCode {
    match failure {
        Failure::Client(ClientError::Unreachable(text)) => {
            eprintln!("error: {text}");
            ExitCode::from(EXIT_NO_HOST)
        }
        Failure::Client(ClientError::Api(e)) => {
            eprintln!("error: {}", e.error);
            // 503: unreachable (through the Operations trait) or shutting
            // down; either way no host can take the request.
            ExitCode::from(match e.status {
                404 => EXIT_NOT_FOUND,
                503 => EXIT_NO_HOST,
                _ => EXIT_FAILED,
            })
        }
        Failure::Other(e) => {
            eprintln!("error: {e:#}");
            ExitCode::from(EXIT_FAILED)
        }
    }
}
