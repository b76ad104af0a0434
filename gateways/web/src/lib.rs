//! The web gateway: axum REST API, WebSocket signalling and browser pages over the engine (not built yet).
