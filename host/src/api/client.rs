//! [`ApiClient`]: a running host, reached over its HTTP API from another
//! process — the CLI verbs and an attached `host mcp`.
//!
//! A client finds the host through its state folder (`api.addr`,
//! `api.token`), as the host wrote them at start. Each method is one
//! request; an error from the host comes back as the host's [`ApiError`],
//! and a host that cannot be reached as [`ClientError::Unreachable`], so a
//! caller can tell "no such process" from "no host running".

use std::path::{Path, PathBuf};
use std::time::Duration;

use async_trait::async_trait;
use futures::{Stream, StreamExt as _};
use reqwest::{Method, RequestBuilder};
use serde::Serialize;
use serde::de::DeserializeOwned;

use crate::bus::{BusStats, Event};
use crate::coordination::{Dependency, Task};

use super::auth::{ADDR_FILE, TOKEN_FILE};
use super::error::ApiError;
use super::model::{
    AgentStatusView, CreateProcess, Created, EventsPage, EventsQuery, OutputPage, OutputQuery,
    PluginStatus, ProcessFilter, ProcessStatus, PublishEvent, Registered, StatusReport,
    StopOptions, WaitFor, WaitOutcome,
};
use super::ops::Operations;

/// Why a request did not get an answer from the host.
#[derive(Debug, thiserror::Error)]
pub enum ClientError {
    /// No host answers for this state folder.
    #[error("{0}")]
    Unreachable(String),
    /// The host answered with an error.
    #[error(transparent)]
    Api(#[from] ApiError),
}

impl From<ClientError> for ApiError {
    fn from(e: ClientError) -> Self {
        match e {
            ClientError::Api(e) => e,
            ClientError::Unreachable(text) => ApiError::with_status(503, text),
        }
    }
}

/// A connection to the API of a running host.
#[derive(Clone, Debug)]
pub struct ApiClient {
    http: reqwest::Client,
    base: String,
    token: String,
    /// For messages: where the address came from.
    state_dir: PathBuf,
}

impl ApiClient {
    /// The host running on `state_dir`, from its `api.addr` and `api.token`.
    ///
    /// # Errors
    ///
    /// [`ClientError::Unreachable`] when the files are missing or
    /// unreadable: no host has its API up on that state folder.
    pub fn from_state_dir(state_dir: &Path) -> Result<ApiClient, ClientError> {
        let read = |name: &str| {
            std::fs::read_to_string(state_dir.join(name))
                .map(|s| s.trim().to_string())
                .map_err(|e| {
                    ClientError::Unreachable(format!(
                        "no host is running on state folder {} ({name}: {e}); start one with `host run`, or pass --state-dir",
                        state_dir.display()
                    ))
                })
        };
        let addr = read(ADDR_FILE)?;
        let token = read(TOKEN_FILE)?;
        Ok(ApiClient::new(&addr, &token, state_dir))
    }

    /// A client for the API at `addr` (`127.0.0.1:PORT`) with `token`.
    pub fn new(addr: &str, token: &str, state_dir: &Path) -> ApiClient {
        let http = reqwest::Client::builder()
            .connect_timeout(Duration::from_secs(5))
            .build()
            .unwrap_or_default();
        ApiClient {
            http,
            base: format!("http://{addr}"),
            token: token.to_string(),
            state_dir: state_dir.to_path_buf(),
        }
    }

    /// The API's base URL.
    pub fn base_url(&self) -> &str {
        &self.base
    }

    fn request(&self, method: Method, path: &str) -> RequestBuilder {
        self.http
            .request(method, format!("{}{path}", self.base))
            .bearer_auth(&self.token)
    }

    async fn send<T: DeserializeOwned>(&self, request: RequestBuilder) -> Result<T, ClientError> {
        let response = request.send().await.map_err(|e| self.unreachable(e))?;
        let status = response.status();
        let bytes = response.bytes().await.map_err(|e| self.unreachable(e))?;
        if status.is_success() {
            let text: &[u8] = if bytes.is_empty() { b"null" } else { &bytes };
            return serde_json::from_slice(text).map_err(|e| {
                ClientError::Api(ApiError::internal(format!(
                    "the host's answer could not be read: {e}"
                )))
            });
        }
        let mut error: ApiError = serde_json::from_slice(&bytes)
            .unwrap_or_else(|_| ApiError::internal(String::from_utf8_lossy(&bytes).into_owned()));
        error.status = status.as_u16();
        Err(ClientError::Api(error))
    }

    fn unreachable(&self, e: reqwest::Error) -> ClientError {
        ClientError::Unreachable(format!(
            "the host of state folder {} does not answer at {} ({e}); is it still running?",
            self.state_dir.display(),
            self.base
        ))
    }

    async fn get<T: DeserializeOwned>(&self, path: &str) -> Result<T, ClientError> {
        self.send(self.request(Method::GET, path)).await
    }

    async fn get_query<T: DeserializeOwned, Q: Serialize>(
        &self,
        path: &str,
        query: &Q,
    ) -> Result<T, ClientError> {
        let qs = serde_html_form::to_string(query)
            .map_err(|e| ClientError::Api(ApiError::invalid(e.to_string())))?;
        let path = if qs.is_empty() {
            path.to_string()
        } else {
            format!("{path}?{qs}")
        };
        self.get(&path).await
    }

    async fn post<T: DeserializeOwned, B: Serialize>(
        &self,
        path: &str,
        body: &B,
    ) -> Result<T, ClientError> {
        self.send(self.request(Method::POST, path).json(body)).await
    }

    /// Every generation of a process's log, as text.
    ///
    /// # Errors
    ///
    /// As every request.
    pub async fn log(&self, id: &str) -> Result<String, ClientError> {
        let response = self
            .request(Method::GET, &format!("/v1/processes/{}/log", seg(id)))
            .send()
            .await
            .map_err(|e| self.unreachable(e))?;
        if !response.status().is_success() {
            let status = response.status().as_u16();
            let mut error: ApiError = response
                .json()
                .await
                .unwrap_or_else(|e| ApiError::internal(e.to_string()));
            error.status = status;
            return Err(ClientError::Api(error));
        }
        response.text().await.map_err(|e| self.unreachable(e))
    }

    /// Follows the log over server-sent events: events matching `query`
    /// after sequence `after` (or, without it, the newest `limit` and then
    /// live). The stream ends when the host goes away.
    ///
    /// # Errors
    ///
    /// As every request, for the opening of the stream.
    pub async fn follow(
        &self,
        query: &EventsQuery,
        after: Option<u64>,
    ) -> Result<impl Stream<Item = Result<Event, ClientError>> + use<>, ClientError> {
        let query = EventsQuery {
            after,
            ..query.clone()
        };
        let qs = serde_html_form::to_string(&query)
            .map_err(|e| ClientError::Api(ApiError::invalid(e.to_string())))?;
        let response = self
            .request(Method::GET, &format!("/v1/events/stream?{qs}"))
            .send()
            .await
            .map_err(|e| self.unreachable(e))?;
        if !response.status().is_success() {
            let status = response.status().as_u16();
            let mut error: ApiError = response
                .json()
                .await
                .unwrap_or_else(|e| ApiError::internal(e.to_string()));
            error.status = status;
            return Err(ClientError::Api(error));
        }
        use eventsource_stream::Eventsource as _;
        let base = self.base.clone();
        Ok(response
            .bytes_stream()
            .eventsource()
            .filter_map(move |item| {
                let base = base.clone();
                async move {
                    match item {
                        Ok(sse) if sse.event == "message" && !sse.data.is_empty() => {
                            Some(serde_json::from_str::<Event>(&sse.data).map_err(|e| {
                                ClientError::Api(ApiError::internal(format!(
                                    "unreadable event from the host: {e}"
                                )))
                            }))
                        }
                        Ok(sse) if sse.event == "error" => {
                            Some(Err(ClientError::Api(ApiError::internal(sse.data))))
                        }
                        Ok(_) => None,
                        Err(e) => Some(Err(ClientError::Unreachable(format!(
                            "the event stream from {base} broke: {e}"
                        )))),
                    }
                }
            }))
    }
}

/// A path segment, percent-encoded (ids are plain words, but a user may
/// type anything).
fn seg(s: &str) -> String {
    form_urlencoded::byte_serialize(s.as_bytes()).collect()
}

#[async_trait]
impl Operations for ApiClient {
    async fn processes(&self, filter: ProcessFilter) -> Result<Vec<ProcessStatus>, ApiError> {
        Ok(self.get_query("/v1/processes", &filter).await?)
    }
    async fn process(&self, id: &str) -> Result<ProcessStatus, ApiError> {
        Ok(self.get(&format!("/v1/processes/{}", seg(id))).await?)
    }
    async fn create(&self, request: CreateProcess) -> Result<Created, ApiError> {
        Ok(self.post("/v1/processes", &request).await?)
    }
    async fn start(&self, id: &str) -> Result<ProcessStatus, ApiError> {
        Ok(self
            .post(&format!("/v1/processes/{}/start", seg(id)), &())
            .await?)
    }
    async fn stop(&self, id: &str, options: StopOptions) -> Result<ProcessStatus, ApiError> {
        Ok(self
            .post(&format!("/v1/processes/{}/stop", seg(id)), &options)
            .await?)
    }
    async fn restart(&self, id: &str) -> Result<ProcessStatus, ApiError> {
        Ok(self
            .post(&format!("/v1/processes/{}/restart", seg(id)), &())
            .await?)
    }
    async fn pause(&self, id: &str) -> Result<ProcessStatus, ApiError> {
        Ok(self
            .post(&format!("/v1/processes/{}/pause", seg(id)), &())
            .await?)
    }
    async fn resume(&self, id: &str) -> Result<ProcessStatus, ApiError> {
        Ok(self
            .post(&format!("/v1/processes/{}/resume", seg(id)), &())
            .await?)
    }
    async fn remove(&self, id: &str) -> Result<(), ApiError> {
        let request = self.request(Method::DELETE, &format!("/v1/processes/{}", seg(id)));
        Ok(self.send::<serde_json::Value>(request).await.map(|_| ())?)
    }
    async fn output(&self, id: &str, query: OutputQuery) -> Result<OutputPage, ApiError> {
        Ok(self
            .get_query(&format!("/v1/processes/{}/output", seg(id)), &query)
            .await?)
    }
    async fn report_status(&self, id: &str, report: StatusReport) -> Result<(), ApiError> {
        let path = format!("/v1/processes/{}/status", seg(id));
        Ok(self
            .post::<serde_json::Value, _>(&path, &report)
            .await
            .map(|_| ())?)
    }
    async fn events(&self, query: EventsQuery) -> Result<EventsPage, ApiError> {
        Ok(self.get_query("/v1/events", &query).await?)
    }
    async fn publish(&self, request: PublishEvent) -> Result<Event, ApiError> {
        Ok(self.post("/v1/events", &request).await?)
    }
    async fn stats(&self) -> Result<BusStats, ApiError> {
        Ok(self.get("/v1/stats").await?)
    }
    async fn event_stats(
        &self,
        query: super::stats::StatsQuery,
    ) -> Result<super::stats::EventStats, ApiError> {
        Ok(self.get_query("/v1/events/stats", &query).await?)
    }
    async fn plugins(&self) -> Result<Vec<PluginStatus>, ApiError> {
        Ok(self.get("/v1/plugins").await?)
    }
    async fn reload_plugin(&self, name: &str) -> Result<PluginStatus, ApiError> {
        Ok(self
            .post(&format!("/v1/plugins/{}/reload", seg(name)), &())
            .await?)
    }
    async fn approve_plugin(&self, name: &str) -> Result<PluginStatus, ApiError> {
        Ok(self
            .post(&format!("/v1/plugins/{}/approve", seg(name)), &())
            .await?)
    }
    async fn agents(&self) -> Result<Vec<AgentStatusView>, ApiError> {
        Ok(self.get("/v1/agents").await?)
    }
    async fn pause_agent(&self, name: &str) -> Result<AgentStatusView, ApiError> {
        Ok(self
            .post(&format!("/v1/agents/{}/pause", seg(name)), &())
            .await?)
    }
    async fn resume_agent(&self, name: &str) -> Result<AgentStatusView, ApiError> {
        Ok(self
            .post(&format!("/v1/agents/{}/resume", seg(name)), &())
            .await?)
    }
    async fn tasks(&self) -> Result<Vec<Task>, ApiError> {
        Ok(self.get("/v1/tasks").await?)
    }
    async fn register_task(&self, task: Task) -> Result<Registered, ApiError> {
        Ok(self.post("/v1/tasks", &task).await?)
    }
    async fn dependencies(&self) -> Result<Vec<Dependency>, ApiError> {
        Ok(self.get("/v1/dependencies").await?)
    }
    async fn sessions(
        &self,
        query: super::sessions::SessionsQuery,
    ) -> Result<Vec<crate::coordination::SessionSummary>, ApiError> {
        Ok(self.get_query("/v1/sessions", &query).await?)
    }
    async fn session(&self, id: &str) -> Result<crate::coordination::Session, ApiError> {
        Ok(self.get(&format!("/v1/sessions/{}", seg(id))).await?)
    }
    async fn post_session_message(
        &self,
        id: &str,
        request: super::sessions::PostMessage,
    ) -> Result<crate::coordination::Message, ApiError> {
        Ok(self
            .post(&format!("/v1/sessions/{}/messages", seg(id)), &request)
            .await?)
    }
    async fn escalate_session(
        &self,
        id: &str,
        request: super::sessions::EscalateSession,
    ) -> Result<crate::coordination::Session, ApiError> {
        Ok(self
            .post(&format!("/v1/sessions/{}/escalate", seg(id)), &request)
            .await?)
    }
    async fn wait_for(&self, request: WaitFor) -> Result<WaitOutcome, ApiError> {
        Ok(self.post("/v1/wait", &request).await?)
    }
}
