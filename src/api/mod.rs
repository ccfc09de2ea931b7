//! The HTTP API (axum): ingest, corrections, health, the read endpoints Grafana and the CLI use, the
//! OpenAPI document, `/metrics` and the overview page. Handlers return `Result<_, ApiError>`.

pub mod catalog;
pub mod dora;
pub mod error;
pub mod events;
pub mod health;
pub mod openapi;
pub mod overview;
pub mod overview_html;
pub mod params;
pub mod platform;
pub mod webhooks;

use crate::app::AppState;
use axum::extract::{MatchedPath, Request, State};
use axum::http::header::AUTHORIZATION;
use axum::middleware::{self, Next};
use axum::response::{IntoResponse, Response};
use axum::routing::{delete, get, post};
use axum::Router;
use error::ApiError;
use subtle::ConstantTimeEq;

/// The whole router.
pub fn router(state: AppState) -> Router {
    let ingest = Router::new()
        .route("/api/v1/events/{kind}", post(events::post_events))
        .route("/api/v1/events/{kind}/{id}", delete(events::delete_event))
        .route_layer(middleware::from_fn_with_state(state.clone(), require_token));
    let reads = read_routes()
        .route_layer(middleware::from_fn_with_state(state.clone(), cache_reads))
        .route_layer(middleware::from_fn_with_state(state.clone(), require_token_for_reads));
    Router::new()
        .route("/healthz", get(health::healthz))
        .route("/readyz", get(health::readyz))
        .route("/api/v1/openapi.json", get(openapi::openapi_json))
        .route("/metrics", get(crate::observe::metrics_handler))
        .merge(ingest)
        .merge(reads)
        .merge(crate::api::webhooks_routes())
        .layer(axum::extract::DefaultBodyLimit::disable())
        .layer(middleware::from_fn_with_state(state.clone(), record_duration))
        .with_state(state)
}

/// Read endpoints (token-protected only when `server.protect_reads`).
fn read_routes() -> Router<AppState> {
    Router::new()
        .route("/", get(overview::overview))
        .route("/api/v1/teams", get(catalog::teams))
        .route("/api/v1/services", get(catalog::services))
        .route("/api/v1/capabilities", get(catalog::capabilities))
        .route("/api/v1/waves", get(catalog::waves))
        .route("/api/v1/definitions", get(catalog::definitions))
        .route("/api/v1/dora", get(dora::dora))
        .route("/api/v1/dora/summary", get(dora::summary))
        .route("/api/v1/dora/changes", get(dora::changes))
        .route("/api/v1/dora/deployments/{id}", get(dora::explain_deployment))
        .route("/api/v1/data-quality", get(dora::data_quality))
        .route("/api/v1/adoption", get(platform::adoption_rows))
        .route("/api/v1/adoption/escapes", get(platform::escapes))
        .route("/api/v1/adoption/drift", get(platform::drift))
        .route("/api/v1/ttfd", get(platform::ttfd_rows))
        .route("/api/v1/nps", get(platform::nps_rows))
        .route("/api/v1/survey/items", get(platform::survey_items))
        .route("/api/v1/support", get(platform::support))
        .route("/api/v1/slo", get(platform::slos))
}

fn webhooks_routes() -> Router<AppState> {
    Router::new().route("/api/v1/webhooks/github", post(webhooks::github))
}

fn bearer(req: &Request) -> Option<&str> {
    req.headers()
        .get(AUTHORIZATION)?
        .to_str()
        .ok()?
        .strip_prefix("Bearer ")
        .map(str::trim)
}

fn check_token(state: &AppState, req: &Request) -> Result<(), ApiError> {
    let Some(expected) = state.ingest_token.as_deref() else {
        return Err(ApiError::unauthorized(format!(
            "no token is configured: set the environment variable {} (auth.ingest_token_env) to enable this endpoint",
            state.config.auth.ingest_token_env
        )));
    };
    match bearer(req) {
        None => Err(ApiError::unauthorized("missing `Authorization: Bearer <token>` header")),
        Some(given) if bool::from(given.as_bytes().ct_eq(expected.as_bytes())) => Ok(()),
        Some(_) => Err(ApiError::unauthorized("the bearer token is not valid")),
    }
}

async fn require_token(State(state): State<AppState>, req: Request, next: Next) -> Response {
    match check_token(&state, &req) {
        Ok(()) => next.run(req).await,
        Err(e) => e.into_response(),
    }
}

async fn require_token_for_reads(State(state): State<AppState>, req: Request, next: Next) -> Response {
    if !state.config.server.protect_reads {
        return next.run(req).await;
    }
    require_token(State(state), req, next).await
}

/// Serves repeated read queries from memory: a 200 answer is kept per (path and query, data version) for at
/// most 30 s, so dashboard reloads cost a lookup and any write invalidates at once. An answer is kept only when
/// the model was already up to date for that version before the handler ran, so an answer from the previous
/// model (while a rebuild runs, see `DataCache`) is never kept under the new version.
async fn cache_reads(State(state): State<AppState>, req: Request, next: Next) -> Response {
    let key = req.uri().to_string();
    let version = state.data.version();
    if let Some((ctype, body)) = state.responses.get(&key, version) {
        return ([(axum::http::header::CONTENT_TYPE, ctype)], body).into_response();
    }
    let keep = state.data.model_version().is_some_and(|v| v >= version);
    let resp = next.run(req).await;
    if resp.status() != axum::http::StatusCode::OK || !keep {
        return resp;
    }
    let (parts, body) = resp.into_parts();
    let Ok(bytes) = axum::body::to_bytes(body, 64 << 20).await else {
        return ApiError::internal("Buffering a response", "body too large").into_response();
    };
    let ctype = parts
        .headers
        .get(axum::http::header::CONTENT_TYPE)
        .and_then(|v| v.to_str().ok())
        .unwrap_or("application/json")
        .to_string();
    state.responses.put(key, version, ctype, bytes.clone());
    Response::from_parts(parts, axum::body::Body::from(bytes))
}

/// Records every request's duration by matched route (bounded cardinality: route templates, not paths).
async fn record_duration(State(state): State<AppState>, req: Request, next: Next) -> Response {
    let route = req
        .extensions()
        .get::<MatchedPath>()
        .map(|m| m.as_str().to_string())
        .unwrap_or_else(|| "unmatched".into());
    let method = req.method().to_string();
    let started = std::time::Instant::now();
    let resp = next.run(req).await;
    state
        .observe
        .record_request(&route, &method, resp.status().as_u16(), started.elapsed());
    resp
}
