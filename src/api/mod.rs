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
/// model (while a rebuild runs, see `DataCache`) is never kept under the new version. A large kept answer goes
/// out gzipped to a client that accepts gzip (it was compressed once, when kept).
async fn cache_reads(State(state): State<AppState>, req: Request, next: Next) -> Response {
    let key = req.uri().to_string();
    let version = state.data.version();
    let gzip_ok = accepts_gzip(req.headers());
    if let Some(kept) = state.responses.get(&key, version) {
        return send_kept(kept, gzip_ok);
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
    let kept = state.responses.put(key, version, ctype, bytes.clone());
    if gzip_ok && kept.gzip.is_some() {
        return send_kept(kept, true);
    }
    Response::from_parts(parts, axum::body::Body::from(bytes))
}

fn send_kept(kept: crate::app::CachedResponse, gzip_ok: bool) -> Response {
    use axum::http::header;
    match (gzip_ok, kept.gzip) {
        (true, Some(gz)) => (
            [
                (header::CONTENT_TYPE, kept.content_type),
                (header::CONTENT_ENCODING, "gzip".to_string()),
                (header::VARY, "accept-encoding".to_string()),
            ],
            gz,
        )
            .into_response(),
        (_, gz) => {
            let mut resp = ([(header::CONTENT_TYPE, kept.content_type)], kept.body).into_response();
            if gz.is_some() {
                // The same URI answers gzipped to other clients: caches between must keep the two apart.
                resp.headers_mut()
                    .insert(header::VARY, axum::http::HeaderValue::from_static("accept-encoding"));
            }
            resp
        }
    }
}

/// Whether `Accept-Encoding` lists gzip (or `*`) without `q=0`.
fn accepts_gzip(headers: &axum::http::HeaderMap) -> bool {
    headers
        .get_all(axum::http::header::ACCEPT_ENCODING)
        .iter()
        .filter_map(|v| v.to_str().ok())
        .flat_map(|v| v.split(','))
        .any(|item| {
            let mut parts = item.split(';').map(str::trim);
            let coding = parts.next().unwrap_or("");
            let refused = parts.any(|p| {
                p.strip_prefix("q=")
                    .and_then(|q| q.trim().parse::<f32>().ok())
                    .is_some_and(|q| q <= 0.0)
            });
            (coding.eq_ignore_ascii_case("gzip") || coding == "*") && !refused
        })
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

#[cfg(test)]
mod tests {
    use super::*;
    use axum::http::{header, HeaderMap, HeaderValue};

    fn headers(accept: &[&str]) -> HeaderMap {
        let mut h = HeaderMap::new();
        for a in accept {
            h.append(header::ACCEPT_ENCODING, HeaderValue::from_str(a).unwrap());
        }
        h
    }

    #[test]
    fn gzip_is_accepted_when_listed_without_q_zero() {
        assert!(accepts_gzip(&headers(&["gzip"])));
        assert!(accepts_gzip(&headers(&["deflate, GZIP;q=0.5"])));
        assert!(accepts_gzip(&headers(&["br", "gzip"])));
        assert!(accepts_gzip(&headers(&["*"])));
        assert!(!accepts_gzip(&headers(&[])));
        assert!(!accepts_gzip(&headers(&["br, deflate"])));
        assert!(!accepts_gzip(&headers(&["gzip;q=0"])));
        assert!(!accepts_gzip(&headers(&["gzip; q=0.0, identity"])));
    }

    async fn body_of(resp: Response) -> (HeaderMap, Vec<u8>) {
        let (parts, body) = resp.into_parts();
        (
            parts.headers,
            axum::body::to_bytes(body, usize::MAX).await.unwrap().to_vec(),
        )
    }

    #[tokio::test]
    async fn a_large_kept_answer_goes_out_gzipped_only_to_clients_that_accept_it() {
        let cache = crate::app::ResponseCache::default();
        let json: String = format!(
            "[{}]",
            (0..2_000)
                .map(|i| format!("{{\"period\":\"2026-W{}\",\"deployments\":{i}}}", i % 52))
                .collect::<Vec<_>>()
                .join(",")
        );
        assert!(json.len() >= crate::app::GZIP_MIN_BYTES);
        let kept = cache.put("/big".into(), 7, "application/json".into(), json.clone().into());
        assert!(kept.gzip.is_some());
        let hit = cache.get("/big", 7).expect("kept");

        let (h, gz) = body_of(send_kept(hit.clone(), true)).await;
        assert_eq!(h[header::CONTENT_ENCODING], "gzip");
        assert_eq!(h[header::VARY], "accept-encoding");
        assert!(gz.len() < json.len() / 4, "{} of {} bytes", gz.len(), json.len());
        let mut plain = String::new();
        std::io::Read::read_to_string(&mut flate2::read::GzDecoder::new(&gz[..]), &mut plain).unwrap();
        assert_eq!(plain, json);

        let (h, body) = body_of(send_kept(hit, false)).await;
        assert!(h.get(header::CONTENT_ENCODING).is_none());
        assert_eq!(h[header::VARY], "accept-encoding");
        assert_eq!(body, json.as_bytes());

        // A small answer is never compressed, whatever the client accepts.
        let small = cache.put("/small".into(), 7, "application/json".into(), "[]".into());
        assert!(small.gzip.is_none());
        let (h, body) = body_of(send_kept(small, true)).await;
        assert!(h.get(header::CONTENT_ENCODING).is_none() && h.get(header::VARY).is_none());
        assert_eq!(body, b"[]");
        assert!(cache.get("/big", 8).is_none(), "another data version is a miss");
    }
}
