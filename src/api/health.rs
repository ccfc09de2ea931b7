//! `GET /healthz` (the process is up) and `GET /readyz` (store reachable, migrations current, spool depth).

use crate::app::AppState;
use axum::extract::State;
use axum::http::StatusCode;
use axum::response::{IntoResponse, Response};
use serde_json::json;

#[utoipa::path(get, path = "/healthz", tag = "health", responses((status = 200, description = "process is up")))]
pub async fn healthz() -> Response {
    axum::Json(json!({"status": "ok"})).into_response()
}

#[utoipa::path(get, path = "/readyz", tag = "health", responses((status = 200, description = "ready"), (status = 503, description = "not ready; the body says why")))]
pub async fn readyz(State(state): State<AppState>) -> Response {
    let store = match state.store.ping().await {
        Ok(()) => Ok(()),
        Err(e) => Err(e.to_string()),
    };
    let pending = match &store {
        Ok(()) => state.store.pending_migrations().await.map_err(|e| e.to_string()),
        Err(e) => Err(e.clone()),
    };
    let ready = store.is_ok() && pending.as_ref().map(|p| p.is_empty()).unwrap_or(false);
    let body = json!({
        "status": if ready { "ready" } else { "not_ready" },
        "store": {"kind": state.store.name(), "reachable": store.is_ok(), "error": store.err()},
        "migrations": match &pending { Ok(p) => json!({"current": p.is_empty(), "pending": p}), Err(e) => json!({"current": null, "error": e}) },
        "spool": {"depth": state.ingest.spool().depth(), "replay_errors": state.ingest.spool().replay_errors()},
    });
    let status = if ready {
        StatusCode::OK
    } else {
        StatusCode::SERVICE_UNAVAILABLE
    };
    (status, axum::Json(body)).into_response()
}
