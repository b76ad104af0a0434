//! CORS: none by default (same origin only), and for configured origins only.
#![allow(clippy::unwrap_used, clippy::expect_used)]

mod common;

use axum::body::Body;
use axum::http::{Method, Request, Response};
use axum::Router;
use conclave_gateway_web::CorsSettings;
use tower::ServiceExt;

async fn send(
    router: &Router,
    method: Method,
    path: &str,
    headers: &[(&str, &str)],
) -> Response<Body> {
    let mut req = Request::builder().method(method).uri(path);
    for (k, v) in headers {
        req = req.header(*k, *v);
    }
    router
        .clone()
        .oneshot(req.body(Body::empty()).unwrap())
        .await
        .unwrap()
}

fn header<'a>(resp: &'a Response<Body>, name: &str) -> Option<&'a str> {
    resp.headers().get(name).map(|v| v.to_str().unwrap())
}

fn preflight(origin: &str) -> Vec<(&str, &str)> {
    vec![
        ("origin", origin),
        ("access-control-request-method", "POST"),
        (
            "access-control-request-headers",
            "authorization, content-type",
        ),
    ]
}

#[tokio::test]
async fn no_cors_headers_by_default() {
    let (router, _engine, _dir) = common::setup();
    let router = CorsSettings::default().apply(router);
    let resp = send(
        &router,
        Method::GET,
        "/about/health",
        &[("origin", "https://app.example")],
    )
    .await;
    assert_eq!(resp.status(), 200);
    assert!(
        !resp
            .headers()
            .keys()
            .any(|k| k.as_str().starts_with("access-control-")),
        "{:?}",
        resp.headers()
    );
    // A preflight finds no route for OPTIONS: the browser then refuses the call.
    let resp = send(
        &router,
        Method::OPTIONS,
        "/rooms",
        &preflight("https://app.example"),
    )
    .await;
    assert_eq!(resp.status(), 405);
    assert_eq!(header(&resp, "access-control-allow-origin"), None);
}

#[tokio::test]
async fn configured_origins_only() {
    let (router, _engine, _dir) = common::setup();
    let cors = CorsSettings::new(&["https://App.Example", "http://localhost:3000"]).unwrap();
    let router = cors.apply(router);
    // A listed origin (configured in upper case, sent in lower case as browsers do).
    let resp = send(
        &router,
        Method::GET,
        "/about/health",
        &[("origin", "https://app.example")],
    )
    .await;
    assert_eq!(resp.status(), 200);
    assert_eq!(
        header(&resp, "access-control-allow-origin"),
        Some("https://app.example")
    );
    let exposed = header(&resp, "access-control-expose-headers").unwrap();
    assert!(exposed.contains("x-correlation-id"), "{exposed}");
    assert_eq!(header(&resp, "access-control-allow-credentials"), None);
    // Errors carry it too, so that a page can read the error.
    let resp = send(
        &router,
        Method::GET,
        "/no/such/route",
        &[("origin", "http://localhost:3000")],
    )
    .await;
    assert_eq!(resp.status(), 404);
    assert_eq!(
        header(&resp, "access-control-allow-origin"),
        Some("http://localhost:3000")
    );
    // Preflight.
    let resp = send(
        &router,
        Method::OPTIONS,
        "/rooms",
        &preflight("https://app.example"),
    )
    .await;
    assert!(resp.status().is_success(), "{}", resp.status());
    assert_eq!(
        header(&resp, "access-control-allow-origin"),
        Some("https://app.example")
    );
    let methods = header(&resp, "access-control-allow-methods").unwrap();
    assert!(
        methods.contains("POST") && methods.contains("DELETE"),
        "{methods}"
    );
    let allowed = header(&resp, "access-control-allow-headers").unwrap();
    assert!(allowed.contains("authorization"), "{allowed}");
    assert_eq!(header(&resp, "access-control-max-age"), Some("600"));
    // Other origins: no allow-origin, so the browser keeps the answer from the page.
    for origin in [
        "https://evil.example",
        "https://app.example:8443",
        "http://app.example",
        "null",
    ] {
        let resp = send(&router, Method::GET, "/about/health", &[("origin", origin)]).await;
        assert_eq!(
            header(&resp, "access-control-allow-origin"),
            None,
            "{origin}"
        );
        let resp = send(&router, Method::OPTIONS, "/rooms", &preflight(origin)).await;
        assert_eq!(
            header(&resp, "access-control-allow-origin"),
            None,
            "{origin}"
        );
    }
}

#[tokio::test]
async fn any_origin_when_asked() {
    let (router, _engine, _dir) = common::setup();
    let router = CorsSettings::new(&["*"]).unwrap().apply(router);
    let resp = send(
        &router,
        Method::GET,
        "/about/health",
        &[("origin", "https://whoever.example")],
    )
    .await;
    assert_eq!(header(&resp, "access-control-allow-origin"), Some("*"));
}

#[test]
fn origins_are_checked() {
    for bad in [
        "app.example",
        "https://",
        "https://app.example/",
        "https://app.example/path",
        "https://user@app.example",
        "https://app.example:port",
        "https://app.example:70000",
        "ftp://app.example",
        "https://app example",
        "https://[::1",
        "https://[zz]:80",
        "https://ex\u{e4}mple.org",
    ] {
        assert!(CorsSettings::new(&[bad]).is_err(), "{bad}");
    }
    for good in [
        "https://app.example",
        "http://localhost:3000",
        "https://[::1]:8443",
        "*",
    ] {
        assert!(CorsSettings::new(&[good]).unwrap().enabled(), "{good}");
    }
    assert!(!CorsSettings::new::<&str>(&[]).unwrap().enabled());
}
