//! The NATS gateway: ordered, resumable event publication and request/reply commands over the engine (not built yet).
