//! `POST /api/v1/events/{kind}` (one JSON object, a JSON array or NDJSON; gzip accepted) and
//! `DELETE /api/v1/events/{kind}/{id}` (a tombstone). Accepted events are durable before the 202.

use super::error::ApiError;
use crate::app::AppState;
use crate::domain::Kind;
use crate::ingest::parse::{count_items, parse_json_body, LineError};
use crate::ingest::Destination;
use axum::body::Body;
use axum::extract::{Path, State};
use axum::http::{HeaderMap, StatusCode};
use axum::response::{IntoResponse, Response};
use serde::Serialize;
use serde_json::json;
use std::io::Read;

#[derive(Serialize, utoipa::ToSchema)]
pub struct IngestResponse {
    pub accepted: usize,
    pub rejected: usize,
    /// Where the accepted events went: `store`, or `spool` while the store is unavailable.
    pub destination: Destination,
    #[schema(value_type = Vec<Object>)]
    pub errors: Vec<LineError>,
}

pub fn parse_kind(raw: &str) -> Result<Kind, ApiError> {
    raw.parse::<Kind>()
        .map_err(|m| ApiError::new(StatusCode::NOT_FOUND, "unknown_kind", m))
}

/// Reads the body within the size limit, decompressing gzip (the limit applies to both sizes).
pub async fn read_body(headers: &HeaderMap, body: Body, limit: usize) -> Result<Vec<u8>, ApiError> {
    let too_large = || {
        ApiError::too_large(format!(
            "request body exceeds the limit of {limit} bytes (ingest.max_body_bytes); split the batch"
        ))
    };
    let raw = axum::body::to_bytes(body, limit).await.map_err(|_| too_large())?;
    let gzip = headers
        .get(axum::http::header::CONTENT_ENCODING)
        .and_then(|v| v.to_str().ok())
        .map(|v| v.eq_ignore_ascii_case("gzip"))
        .unwrap_or(false);
    if !gzip {
        return Ok(raw.to_vec());
    }
    let mut out = Vec::new();
    let mut decoder = flate2::read::MultiGzDecoder::new(&raw[..]).take(limit as u64 + 1);
    decoder.read_to_end(&mut out).map_err(|e| {
        ApiError::new(
            StatusCode::BAD_REQUEST,
            "bad_gzip",
            format!("Content-Encoding is gzip but the body does not decompress: {e}"),
        )
    })?;
    if out.len() > limit {
        return Err(too_large());
    }
    Ok(out)
}

/// Ingest records of one kind.
#[utoipa::path(post, path = "/api/v1/events/{kind}", tag = "ingest",
    params(("kind" = String, Path, description = "services, deployments, changes, incidents, tickets, surveys, pipeline-runs, self-service")),
    request_body(content = String, description = "One JSON object, a JSON array, or NDJSON; Content-Encoding gzip accepted"),
    responses((status = 202, body = IngestResponse), (status = 400, description = "no line was valid"), (status = 401), (status = 413), (status = 503)),
    security(("bearer" = [])))]
pub async fn post_events(
    State(state): State<AppState>,
    Path(kind): Path<String>,
    headers: HeaderMap,
    body: Body,
) -> Result<Response, ApiError> {
    let kind = parse_kind(&kind)?;
    let cfg = &state.config.ingest;
    let body = read_body(&headers, body, cfg.max_body_bytes).await?;
    if body.iter().all(|b| b.is_ascii_whitespace()) {
        return Err(ApiError::new(
            StatusCode::BAD_REQUEST,
            "empty_body",
            "the body holds no record",
        ));
    }
    let items = count_items(&body);
    if items > cfg.max_batch_records {
        return Err(ApiError::too_large(format!(
            "batch of {items} records exceeds the limit of {} (ingest.max_batch_records)",
            cfg.max_batch_records
        )));
    }
    let ctx = state.parse_ctx(kind).await?;
    let parsed = tokio::task::spawn_blocking(move || parse_json_body(kind, &body, &ctx))
        .await
        .map_err(|e| ApiError::internal("Parsing", e))?;
    if parsed.items > cfg.max_batch_records {
        return Err(ApiError::too_large(format!(
            "batch of {} records exceeds the limit of {} (ingest.max_batch_records)",
            parsed.items, cfg.max_batch_records
        )));
    }
    let rejected = parsed.rejected();
    let accepted = parsed.records.len();
    state.ingest.count(kind, "rejected", rejected as u64);
    if accepted == 0 {
        return Err(ApiError::new(
            StatusCode::BAD_REQUEST,
            "invalid_records",
            format!("none of the {rejected} records is valid"),
        )
        .with_details(json!({"accepted": 0, "rejected": rejected, "errors": parsed.errors})));
    }
    let destination = state.ingest.accept(parsed.records).await?;
    let resp = IngestResponse {
        accepted,
        rejected,
        destination,
        errors: parsed.errors,
    };
    Ok((StatusCode::ACCEPTED, axum::Json(resp)).into_response())
}

/// Delete (tombstone) one record: hidden from every computation, even if a collector fetches it again.
#[utoipa::path(delete, path = "/api/v1/events/{kind}/{id}", tag = "ingest",
    params(("kind" = String, Path), ("id" = String, Path, description = "the record's natural key (surveys: wave/respondent-hash)")),
    responses((status = 202, description = "tombstone stored"), (status = 401), (status = 404)),
    security(("bearer" = [])))]
pub async fn delete_event(
    State(state): State<AppState>,
    Path((kind, id)): Path<(String, String)>,
) -> Result<Response, ApiError> {
    let kind = parse_kind(&kind)?;
    if id.is_empty() || id.len() > state.config.ingest.max_string_len {
        return Err(ApiError::bad_param("id", "must be 1 to max_string_len bytes"));
    }
    let destination = state.ingest.tombstone(kind, &id).await?;
    Ok((
        StatusCode::ACCEPTED,
        axum::Json(json!({"deleted": {"kind": kind.wire_name(), "id": id}, "destination": destination})),
    )
        .into_response())
}
