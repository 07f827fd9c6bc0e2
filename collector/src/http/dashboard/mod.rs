//! The dashboard at `/`: one self-contained HTML page (inline CSS and JavaScript, no external
//! URL) that reads the public API from the browser, so it shows exactly what any API client sees.

use axum::response::{IntoResponse, Response};
use http::{StatusCode, header};

/// The page, compiled into the binary so that the collector serves it without files beside it.
pub const INDEX_HTML: &str = include_str!("index.html");

/// `GET /`: the dashboard page.
pub async fn handle_dashboard_get() -> Response {
    (
        StatusCode::OK,
        [
            (header::CONTENT_TYPE, "text/html; charset=utf-8"),
            // The page may only talk to the collector that served it: no CDN, no other origin.
            (
                header::CONTENT_SECURITY_POLICY,
                "default-src 'none'; script-src 'unsafe-inline'; style-src 'unsafe-inline'; \
                 connect-src 'self'; img-src 'self' data:",
            ),
        ],
        INDEX_HTML,
    )
        .into_response()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_page_loads_nothing_from_elsewhere() {
        for external in ["http://", "https://", "//cdn", "<link", "src=\""] {
            assert!(
                !INDEX_HTML.contains(external),
                "the dashboard must be self-contained, found {external:?}"
            );
        }
        for endpoint in ["/v1/sla/orchestrators", "/v1/sla/compliance"] {
            assert!(INDEX_HTML.contains(endpoint), "the page reads {endpoint}");
        }
    }
}
