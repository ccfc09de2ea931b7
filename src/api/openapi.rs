//! The OpenAPI document, generated from the handlers' `#[utoipa::path]` annotations.

use axum::response::{IntoResponse, Response};
use utoipa::openapi::security::{HttpAuthScheme, HttpBuilder, SecurityScheme};
use utoipa::{Modify, OpenApi};

struct BearerAuth;

impl Modify for BearerAuth {
    fn modify(&self, openapi: &mut utoipa::openapi::OpenApi) {
        let components = openapi.components.get_or_insert_with(Default::default);
        components.add_security_scheme(
            "bearer",
            SecurityScheme::Http(HttpBuilder::new().scheme(HttpAuthScheme::Bearer).build()),
        );
    }
}

#[derive(OpenApi)]
#[openapi(
    info(title = "pavemeter", description = "Measures an internal developer platform: DORA, adoption, time-to-first-deploy, NPS, support load, platform SLOs."),
    paths(
        super::health::healthz,
        super::health::readyz,
        super::events::post_events,
        super::events::delete_event,
        super::catalog::teams,
        super::catalog::services,
        super::catalog::capabilities,
        super::catalog::waves,
        super::catalog::definitions,
        super::dora::dora,
        super::dora::summary,
        super::dora::explain_deployment,
        super::dora::changes,
        super::dora::data_quality,
        super::platform::adoption_rows,
        super::platform::escapes,
        super::platform::drift,
        super::platform::ttfd_rows,
        super::platform::nps_rows,
        super::platform::survey_items,
        super::platform::support,
        super::platform::slos,
        super::webhooks::github,
    ),
    components(schemas(super::events::IngestResponse, crate::ingest::Destination)),
    modifiers(&BearerAuth)
)]
pub struct ApiDoc;

pub async fn openapi_json() -> Response {
    axum::Json(ApiDoc::openapi()).into_response()
}
