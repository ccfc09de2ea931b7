//! `POST /api/v1/webhooks/github`: GitHub deliveries (deployment_status, pull_request, workflow_run,
//! issues), verified with `X-Hub-Signature-256` against the secret of the first `github` source
//! (`webhook_secret_env`), mapped by the collector's rules and accepted like any ingest batch.

use super::error::ApiError;
use crate::app::AppState;
use crate::collect::github::mapping::GithubMapping;
use crate::collect::github::webhook::{verify_signature, webhook_records};
use crate::collect::Opts;
use axum::body::Body;
use axum::extract::State;
use axum::http::{HeaderMap, StatusCode};
use axum::response::{IntoResponse, Response};
use serde_json::json;

#[utoipa::path(post, path = "/api/v1/webhooks/github", tag = "ingest",
    request_body(content = String, description = "a GitHub webhook delivery"),
    responses((status = 202, description = "records accepted"), (status = 401, description = "bad or missing signature; nothing stored"), (status = 400)))]
pub async fn github(State(state): State<AppState>, headers: HeaderMap, body: Body) -> Result<Response, ApiError> {
    let Some((name, source)) = state.config.sources.iter().find(|(_, s)| s.kind == "github") else {
        return Err(ApiError::not_found("no [sources.<name>] of type github is configured"));
    };
    let Some(secret_var) = source.str_opt("webhook_secret_env") else {
        return Err(ApiError::unauthorized(format!(
            "sources.{name}.webhook_secret_env is not configured: deliveries cannot be verified"
        )));
    };
    let Some(secret) = state.env.get(&secret_var).filter(|s| !s.is_empty()) else {
        return Err(ApiError::unauthorized(format!(
            "the environment variable {secret_var} (sources.{name}.webhook_secret_env) is not set"
        )));
    };
    let body = super::events::read_body(&headers, body, state.config.ingest.max_body_bytes).await?;
    let signature = headers.get("x-hub-signature-256").and_then(|v| v.to_str().ok());
    if !verify_signature(secret.as_bytes(), &body, signature) {
        return Err(ApiError::unauthorized(
            "X-Hub-Signature-256 is missing or does not match the body",
        ));
    }
    let event = headers
        .get("x-github-event")
        .and_then(|v| v.to_str().ok())
        .unwrap_or("")
        .to_string();
    let payload: serde_json::Value = serde_json::from_slice(&body).map_err(|e| {
        ApiError::new(
            StatusCode::BAD_REQUEST,
            "bad_json",
            format!("the delivery is not JSON: {e}"),
        )
    })?;
    let opts = Opts::new(name, source, &state.env);
    let mapping = GithubMapping::from_opts(&opts, &state.config.metrics)
        .map_err(|e| ApiError::internal("Reading the github source config", e))?;
    let records = webhook_records(&event, &payload, &mapping)
        .map_err(|m| ApiError::new(StatusCode::BAD_REQUEST, "bad_delivery", m))?;
    let n = records.len();
    let destination = state.ingest.accept(records).await?;
    Ok((
        StatusCode::ACCEPTED,
        axum::Json(json!({"event": event, "accepted": n, "destination": destination})),
    )
        .into_response())
}
