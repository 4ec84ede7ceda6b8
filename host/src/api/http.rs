//! The HTTP face: axum routes under `/v1`, each a thin call into
//! [`Control`], plus `/metrics`, `/healthz`, `/readyz` and the SSE stream.
//!
//! Bodies and query strings are read with `serde_path_to_error`, so a bad
//! request is answered 400 with the path of the field at fault, in the same
//! `{"error", "field"}` shape as every other error.

use std::convert::Infallible;
use std::time::Duration;

use axum::Router;
use axum::body::{Body, Bytes};
use axum::extract::{DefaultBodyLimit, FromRequest, FromRequestParts, Path, Request, State};
use axum::http::request::Parts;
use axum::http::{HeaderMap, StatusCode, header};
use axum::response::sse::{Event as SseEvent, KeepAlive, Sse};
use axum::response::{IntoResponse, Response};
use axum::routing::{get, post};
use futures::{Stream, StreamExt as _};
use serde::Serialize;
use serde::de::DeserializeOwned;

use crate::coordination::Task;

use super::control::Control;
use super::error::ApiError;
use super::model::{
    CreateProcess, EventsQuery, OutputQuery, ProcessFilter, PublishEvent, StatusReport,
    StopOptions, WaitFor,
};

/// Largest request body: an event may carry up to 1 MiB of data.
pub const MAX_BODY_BYTES: usize = 2 << 20;
/// How often an idle event stream sends a comment, so proxies and clients
/// see the connection is alive.
pub const HEARTBEAT: Duration = Duration::from_secs(15);

/// The `/v1` routes, `/metrics`, `/healthz` and `/readyz`, on `control`.
pub fn routes(control: Control) -> Router {
    Router::new()
        .route("/v1/processes", get(list_processes).post(create_process))
        .route(
            "/v1/processes/{id}",
            get(get_process).delete(remove_process),
        )
        .route("/v1/processes/{id}/start", post(start_process))
        .route("/v1/processes/{id}/stop", post(stop_process))
        .route("/v1/processes/{id}/restart", post(restart_process))
        .route("/v1/processes/{id}/pause", post(pause_process))
        .route("/v1/processes/{id}/resume", post(resume_process))
        .route("/v1/processes/{id}/status", post(report_status))
        .route("/v1/processes/{id}/output", get(process_output))
        .route("/v1/processes/{id}/log", get(process_log))
        .route("/v1/events", get(query_events).post(publish_event))
        .route("/v1/events/stream", get(stream_events))
        .route("/v1/events/stats", get(super::stats::event_stats))
        .route("/v1/stats", get(stats))
        .route("/v1/plugins", get(list_plugins))
        .route("/v1/plugins/{name}", get(get_plugin))
        .route("/v1/plugins/{name}/reload", post(reload_plugin))
        .route("/v1/plugins/{name}/approve", post(approve_plugin))
        .route("/v1/agents", get(list_agents))
        .route("/v1/agents/{name}/pause", post(pause_agent))
        .route("/v1/agents/{name}/resume", post(resume_agent))
        .route("/v1/tasks", get(list_tasks).post(register_task))
        .route("/v1/dependencies", get(list_dependencies))
        .route("/v1/sessions", get(super::sessions::list_sessions))
        .route("/v1/sessions/{id}", get(super::sessions::get_session))
        .route(
            "/v1/sessions/{id}/messages",
            post(super::sessions::post_session_message),
        )
        .route(
            "/v1/sessions/{id}/escalate",
            post(super::sessions::escalate_session),
        )
        .route("/v1/wait", post(wait_for))
        .route("/metrics", get(metrics))
        .route("/healthz", get(healthz))
        .route("/readyz", get(readyz))
        .fallback(not_found)
        .method_not_allowed_fallback(method_not_allowed)
        .layer(DefaultBodyLimit::max(MAX_BODY_BYTES))
        .with_state(control)
}

/// An error as `{"error": "...", "field": "..."}` with its status.
pub fn error_response(e: ApiError) -> Response {
    let status = StatusCode::from_u16(e.status).unwrap_or(StatusCode::INTERNAL_SERVER_ERROR);
    (status, axum::Json(e)).into_response()
}

impl IntoResponse for ApiError {
    fn into_response(self) -> Response {
        error_response(self)
    }
}

type Answer<T> = Result<axum::Json<T>, ApiError>;

fn ok<T: Serialize>(value: T) -> Answer<T> {
    Ok(axum::Json(value))
}

/// A JSON body, read with the path of any bad field. An empty body reads
/// as `{}`, so `POST .../stop` needs no body for the defaults.
pub struct JsonBody<T>(pub T);

impl<S: Send + Sync, T: DeserializeOwned> FromRequest<S> for JsonBody<T> {
    type Rejection = ApiError;

    async fn from_request(request: Request, state: &S) -> Result<Self, ApiError> {
        let bytes = Bytes::from_request(request, state).await.map_err(|e| {
            ApiError::with_status(e.status().as_u16(), format!("cannot read the body: {e}"))
        })?;
        let text: &[u8] = if bytes.iter().all(u8::is_ascii_whitespace) {
            b"{}"
        } else {
            &bytes
        };
        let mut de = serde_json::Deserializer::from_slice(text);
        serde_path_to_error::deserialize(&mut de)
            .map(JsonBody)
            .map_err(|e| field_error(e.path().to_string(), e.inner().to_string()))
    }
}

/// A query string, read with the path of any bad field; keys may repeat
/// (`?type=a.*&type=b.*`).
pub struct QueryArgs<T>(pub T);

impl<S: Send + Sync, T: DeserializeOwned> FromRequestParts<S> for QueryArgs<T> {
    type Rejection = ApiError;

    async fn from_request_parts(parts: &mut Parts, _: &S) -> Result<Self, ApiError> {
        let query = parts.uri.query().unwrap_or_default();
        // `access_token` is the guard's business (the event stream's
        // alternative to the header), never a field of the query itself.
        let kept: String = form_urlencoded::Serializer::new(String::new())
            .extend_pairs(
                form_urlencoded::parse(query.as_bytes()).filter(|(k, _)| k != "access_token"),
            )
            .finish();
        let de = serde_html_form::Deserializer::new(form_urlencoded::parse(kept.as_bytes()));
        serde_path_to_error::deserialize(de)
            .map(QueryArgs)
            .map_err(|e| field_error(e.path().to_string(), e.inner().to_string()))
    }
}

/// 400 naming the field, from a deserializer's path (`.` when the whole
/// document is at fault: then the message names the field itself).
fn field_error(path: String, message: String) -> ApiError {
    let missing = message
        .strip_prefix("missing field `")
        .and_then(|m| m.split('`').next());
    let unknown = message
        .strip_prefix("unknown field `")
        .and_then(|m| m.split('`').next());
    // `.` is the whole document, `?` a place the parser could not name
    // (the text is not JSON at all): then only the message can say more.
    match (path.as_str(), missing.or(unknown)) {
        ("." | "?", Some(field)) => ApiError::bad_request(field, message.clone()),
        ("." | "?", None) => ApiError::invalid(format!("bad request: {message}")),
        (field, _) => ApiError::bad_request(field, message),
    }
}

async fn not_found() -> ApiError {
    ApiError::not_found("no such endpoint; the API lives under /v1 (see docs/api.md)")
}

async fn method_not_allowed() -> ApiError {
    ApiError::with_status(
        405,
        "this endpoint does not take that method (see docs/api.md)",
    )
}

async fn list_processes(
    State(c): State<Control>,
    QueryArgs(filter): QueryArgs<ProcessFilter>,
) -> Answer<Vec<super::model::ProcessStatus>> {
    ok(c.processes(&filter))
}

async fn create_process(
    State(c): State<Control>,
    JsonBody(request): JsonBody<CreateProcess>,
) -> Result<(StatusCode, axum::Json<super::model::Created>), ApiError> {
    let created = c.create(request).await?;
    Ok((StatusCode::CREATED, axum::Json(created)))
}

async fn get_process(
    State(c): State<Control>,
    Path(id): Path<String>,
) -> Answer<super::model::ProcessStatus> {
    ok(c.process(&id)?)
}

async fn remove_process(
    State(c): State<Control>,
    Path(id): Path<String>,
) -> Result<StatusCode, ApiError> {
    c.remove(&id)?;
    Ok(StatusCode::NO_CONTENT)
}

async fn start_process(
    State(c): State<Control>,
    Path(id): Path<String>,
) -> Answer<super::model::ProcessStatus> {
    ok(c.start(&id).await?)
}

async fn stop_process(
    State(c): State<Control>,
    Path(id): Path<String>,
    JsonBody(options): JsonBody<StopOptions>,
) -> Answer<super::model::ProcessStatus> {
    ok(c.stop(&id, options).await?)
}

async fn restart_process(
    State(c): State<Control>,
    Path(id): Path<String>,
) -> Answer<super::model::ProcessStatus> {
    ok(c.restart(&id).await?)
}

async fn pause_process(
    State(c): State<Control>,
    Path(id): Path<String>,
) -> Answer<super::model::ProcessStatus> {
    ok(c.pause(&id)?)
}

async fn resume_process(
    State(c): State<Control>,
    Path(id): Path<String>,
) -> Answer<super::model::ProcessStatus> {
    ok(c.resume(&id)?)
}

async fn report_status(
    State(c): State<Control>,
    Path(id): Path<String>,
    JsonBody(report): JsonBody<StatusReport>,
) -> Result<StatusCode, ApiError> {
    c.report_status(&id, report).await?;
    Ok(StatusCode::ACCEPTED)
}

async fn process_output(
    State(c): State<Control>,
    Path(id): Path<String>,
    QueryArgs(query): QueryArgs<OutputQuery>,
) -> Answer<super::model::OutputPage> {
    ok(c.output(&id, &query)?)
}

/// Every generation of the process's log, oldest first, as one text body
/// streamed from the files.
async fn process_log(
    State(c): State<Control>,
    Path(id): Path<String>,
) -> Result<Response, ApiError> {
    let files = c.log_files(&id)?;
    // Compressed generations are decompressed; one rotated away between the
    // listing and the read is skipped.
    let body = Body::from_stream(crate::supervisor::read_log(files));
    Ok(([(header::CONTENT_TYPE, "text/plain; charset=utf-8")], body).into_response())
}

async fn query_events(
    State(c): State<Control>,
    QueryArgs(query): QueryArgs<EventsQuery>,
) -> Answer<super::model::EventsPage> {
    ok(c.events(&query)?)
}

async fn publish_event(
    State(c): State<Control>,
    JsonBody(request): JsonBody<PublishEvent>,
) -> Result<(StatusCode, axum::Json<crate::bus::Event>), ApiError> {
    let event = c.publish(request).await?;
    Ok((StatusCode::CREATED, axum::Json(event)))
}

/// Server-sent events: `id:` is the sequence, `data:` the CloudEvent.
/// Resumes after `Last-Event-ID` (what a reconnecting `EventSource` sends)
/// or `?after=`; otherwise replays the newest `limit` matches first.
async fn stream_events(
    State(c): State<Control>,
    headers: HeaderMap,
    QueryArgs(query): QueryArgs<EventsQuery>,
) -> Result<Sse<impl Stream<Item = Result<SseEvent, Infallible>>>, ApiError> {
    let resume = match headers.get("last-event-id") {
        None => None,
        Some(v) => Some(
            v.to_str()
                .ok()
                .and_then(|s| s.trim().parse::<u64>().ok())
                .ok_or_else(|| {
                    ApiError::bad_request("Last-Event-ID", "must be an event sequence number")
                })?,
        ),
    };
    let after = c.follow_start(&query, resume)?;
    let events = c.follow(&query, after)?.map(|item| {
        Ok(match item {
            Ok(event) => SseEvent::default()
                .id(event.sequence.to_string())
                .json_data(&event)
                .unwrap_or_else(|e| SseEvent::default().comment(format!("unencodable event: {e}"))),
            // A journal read failed; the stream goes on (the consumer
            // retries from its cursor) and says so.
            Err(e) => SseEvent::default().event("error").data(e.error),
        })
    });
    Ok(Sse::new(events).keep_alive(KeepAlive::new().interval(HEARTBEAT)))
}

async fn stats(State(c): State<Control>) -> Answer<crate::bus::BusStats> {
    ok(c.stats())
}

async fn list_plugins(State(c): State<Control>) -> Answer<Vec<super::model::PluginStatus>> {
    ok(c.plugins())
}

async fn get_plugin(
    State(c): State<Control>,
    Path(name): Path<String>,
) -> Answer<super::model::PluginStatus> {
    ok(c.plugin(&name)?)
}

async fn reload_plugin(
    State(c): State<Control>,
    Path(name): Path<String>,
) -> Answer<super::model::PluginStatus> {
    ok(c.reload_plugin(&name).await?)
}

async fn approve_plugin(
    State(c): State<Control>,
    Path(name): Path<String>,
) -> Answer<super::model::PluginStatus> {
    ok(c.approve_plugin(&name).await?)
}

async fn list_agents(State(c): State<Control>) -> Answer<Vec<super::model::AgentStatusView>> {
    ok(c.agents())
}

async fn pause_agent(
    State(c): State<Control>,
    Path(name): Path<String>,
) -> Answer<super::model::AgentStatusView> {
    ok(c.pause_agent(&name)?)
}

async fn resume_agent(
    State(c): State<Control>,
    Path(name): Path<String>,
) -> Answer<super::model::AgentStatusView> {
    ok(c.resume_agent(&name)?)
}

async fn list_tasks(State(c): State<Control>) -> Answer<Vec<Task>> {
    ok(c.tasks())
}

async fn register_task(
    State(c): State<Control>,
    JsonBody(task): JsonBody<Task>,
) -> Result<(StatusCode, axum::Json<super::model::Registered>), ApiError> {
    let registered = c.register_task(task).await?;
    Ok((StatusCode::CREATED, axum::Json(registered)))
}

async fn list_dependencies(
    State(c): State<Control>,
) -> Answer<Vec<crate::coordination::Dependency>> {
    ok(c.dependencies())
}

async fn wait_for(
    State(c): State<Control>,
    JsonBody(request): JsonBody<WaitFor>,
) -> Answer<super::model::WaitOutcome> {
    ok(c.wait_for(request).await?)
}

async fn metrics(State(c): State<Control>) -> Response {
    let text = super::metrics::render(&c);
    (
        [(
            header::CONTENT_TYPE,
            "application/openmetrics-text; version=1.0.0; charset=utf-8",
        )],
        text,
    )
        .into_response()
}

async fn healthz(State(c): State<Control>) -> Answer<serde_json::Value> {
    ok(serde_json::json!({
        "status": "ok",
        "started_at": c.started_at,
        "head": c.bus.head(),
    }))
}

async fn readyz(State(c): State<Control>) -> Response {
    let readiness = c.readiness();
    let status = if readiness.ready {
        StatusCode::OK
    } else {
        StatusCode::SERVICE_UNAVAILABLE
    };
    (status, axum::Json(readiness)).into_response()
}
