//! The dashboard: one page at `/` and its assets (`/assets/...`), embedded in
//! the binary. The page holds no data, so it is served without a token; its
//! script reads the query API (docs/API.md) and `/v1/status` from the same
//! origin and asks for the token when the API wants one.
//!
//! Plain HTML, CSS and JavaScript from `src/http/dashboard/`, with no build
//! step: what is in that folder is what the browser gets. Every answer says
//! `Cache-Control: no-cache` with an `ETag` fixed at compile time (a hash of
//! the asset), so a browser revalidates on each load and gets `304` until
//! the binary changes; and a Content-Security-Policy that allows nothing but
//! the sidecar itself, and no inline script or style.

use actix_web::http::header::{self, HeaderValue};
use actix_web::{web, HttpRequest, HttpResponse};
use serde_json::json;

/// One embedded file.
struct Asset {
    /// The file's bytes, as committed.
    body: &'static [u8],
    /// Its `Content-Type`.
    content_type: &'static str,
    /// A hash of `body`, computed at compile time: the `ETag`.
    hash: u64,
}

impl Asset {
    /// `body` served as `content_type`.
    const fn new(body: &'static [u8], content_type: &'static str) -> Asset {
        Asset {
            body,
            content_type,
            hash: fnv1a(body),
        }
    }

    /// The strong `ETag`, quotes included.
    fn etag(&self) -> String {
        format!("\"{:016x}\"", self.hash)
    }
}

/// The page.
static INDEX: Asset = Asset::new(
    include_bytes!("dashboard/index.html"),
    "text/html; charset=utf-8",
);

/// The assets under `/assets/`, by name.
static ASSETS: [(&str, Asset); 3] = [
    (
        "app.js",
        Asset::new(
            include_bytes!("dashboard/app.js"),
            "text/javascript; charset=utf-8",
        ),
    ),
    (
        "app.css",
        Asset::new(
            include_bytes!("dashboard/app.css"),
            "text/css; charset=utf-8",
        ),
    ),
    (
        "icon.svg",
        Asset::new(include_bytes!("dashboard/icon.svg"), "image/svg+xml"),
    ),
];

/// Everything from the sidecar itself and nothing else: no inline script or
/// style, no plugins, no framing, no forms posted anywhere.
const CONTENT_SECURITY_POLICY: &str = "default-src 'self'; script-src 'self'; style-src 'self'; \
     img-src 'self'; connect-src 'self'; object-src 'none'; base-uri 'none'; \
     form-action 'none'; frame-ancestors 'none'";

/// `GET /`: the page.
pub async fn index(req: HttpRequest) -> HttpResponse {
    serve(&req, &INDEX)
}

/// `GET /assets/{name}`: the script, the style sheet, the icon.
pub async fn asset(req: HttpRequest, name: web::Path<String>) -> HttpResponse {
    match ASSETS.iter().find(|(n, _)| *n == name.as_str()) {
        Some((_, asset)) => serve(&req, asset),
        None => {
            HttpResponse::NotFound().json(json!({"error": "not_found", "message": "no such asset"}))
        }
    }
}

/// `asset`, or `304 Not Modified` when the browser already holds it.
fn serve(req: &HttpRequest, asset: &Asset) -> HttpResponse {
    let etag = asset.etag();
    let held = req
        .headers()
        .get_all(header::IF_NONE_MATCH)
        .filter_map(|v| v.to_str().ok())
        .any(|v| matches_etag(v, &etag));
    let mut response = if held {
        HttpResponse::NotModified()
    } else {
        HttpResponse::Ok()
    };
    response
        .insert_header((header::ETAG, etag))
        .insert_header((header::CACHE_CONTROL, HeaderValue::from_static("no-cache")))
        .insert_header((
            header::CONTENT_SECURITY_POLICY,
            HeaderValue::from_static(CONTENT_SECURITY_POLICY),
        ))
        .insert_header((
            header::X_CONTENT_TYPE_OPTIONS,
            HeaderValue::from_static("nosniff"),
        ))
        .insert_header((
            header::REFERRER_POLICY,
            HeaderValue::from_static("no-referrer"),
        ));
    if held {
        return response.finish();
    }
    response.content_type(asset.content_type).body(asset.body)
}

/// Whether an `If-None-Match` value names `etag`: `*`, or one of its
/// comma-separated tags, weak (`W/`) or strong (RFC 9110, section 13.1.2
/// compares weakly).
fn matches_etag(if_none_match: &str, etag: &str) -> bool {
    if_none_match
        .split(',')
        .map(str::trim)
        .any(|tag| tag == "*" || tag.strip_prefix("W/").unwrap_or(tag) == etag)
}

/// FNV-1a, 64 bits: a `const fn`, so each asset's tag is fixed at compile
/// time. Not a defence against anything; it only tells versions apart.
const fn fnv1a(bytes: &[u8]) -> u64 {
    let mut hash: u64 = 0xcbf2_9ce4_8422_2325;
    let mut i = 0;
    while i < bytes.len() {
        hash ^= bytes[i] as u64;
        hash = hash.wrapping_mul(0x0100_0000_01b3);
        i += 1;
    }
    hash
}

#[cfg(test)]
mod tests {
    use super::*;
    use actix_web::http::StatusCode;
    use actix_web::test::{call_service, init_service, read_body, TestRequest};
    use actix_web::App;

    fn app() -> App<
        impl actix_web::dev::ServiceFactory<
            actix_web::dev::ServiceRequest,
            Config = (),
            Response = actix_web::dev::ServiceResponse,
            Error = actix_web::Error,
            InitError = (),
        >,
    > {
        App::new()
            .route("/", web::get().to(index))
            .route("/assets/{name}", web::get().to(asset))
    }

    #[actix_web::test]
    async fn the_page_and_its_assets_are_served_with_their_types_and_policy() {
        let app = init_service(app()).await;
        for (path, content_type) in [
            ("/", "text/html; charset=utf-8"),
            ("/assets/app.js", "text/javascript; charset=utf-8"),
            ("/assets/app.css", "text/css; charset=utf-8"),
            ("/assets/icon.svg", "image/svg+xml"),
        ] {
            let res = call_service(&app, TestRequest::get().uri(path).to_request()).await;
            assert_eq!(res.status(), StatusCode::OK, "{path}");
            let h = res.headers();
            assert_eq!(h.get(header::CONTENT_TYPE).unwrap(), content_type, "{path}");
            assert_eq!(h.get(header::CACHE_CONTROL).unwrap(), "no-cache", "{path}");
            assert!(h
                .get(header::CONTENT_SECURITY_POLICY)
                .unwrap()
                .to_str()
                .unwrap()
                .starts_with("default-src 'self'"));
            assert!(h.contains_key(header::ETAG), "{path}");
        }
        let res = call_service(&app, TestRequest::get().uri("/assets/nope.js").to_request()).await;
        assert_eq!(res.status(), StatusCode::NOT_FOUND);
    }

    #[actix_web::test]
    async fn a_held_version_is_answered_304() {
        let app = init_service(app()).await;
        let first = call_service(&app, TestRequest::get().uri("/").to_request()).await;
        let etag = first
            .headers()
            .get(header::ETAG)
            .unwrap()
            .to_str()
            .unwrap()
            .to_string();
        for held in [
            etag.clone(),
            format!("W/{etag}"),
            format!("\"x\", {etag}"),
            "*".into(),
        ] {
            let res = call_service(
                &app,
                TestRequest::get()
                    .uri("/")
                    .insert_header((header::IF_NONE_MATCH, held.as_str()))
                    .to_request(),
            )
            .await;
            assert_eq!(res.status(), StatusCode::NOT_MODIFIED, "{held}");
            assert_eq!(res.headers().get(header::ETAG).unwrap(), etag.as_str());
            let body = read_body(res).await;
            assert!(body.is_empty());
        }
        let stale = call_service(
            &app,
            TestRequest::get()
                .uri("/")
                .insert_header((header::IF_NONE_MATCH, "\"0000000000000000\""))
                .to_request(),
        )
        .await;
        assert_eq!(stale.status(), StatusCode::OK);
    }

    #[test]
    fn the_page_and_its_assets_weigh_at_most_100_kb() {
        let total: usize =
            INDEX.body.len() + ASSETS.iter().map(|(_, a)| a.body.len()).sum::<usize>();
        assert!(total <= 100_000, "the dashboard weighs {total} bytes");
    }
}
