//! A gateway's health and metrics as one of the web gateway's status sources.

use std::sync::Arc;

use conclave_gateway_web::StatusSource;

/// The status source of a gateway `T` that renders its own health JSON and metrics.
pub struct GatewayStatus<T> {
    name: &'static str,
    gateway: Arc<T>,
    health: fn(&T) -> serde_json::Value,
    metrics: fn(&T) -> String,
}

impl<T: Send + Sync + 'static> GatewayStatus<T> {
    /// `name` is the key under `sources` in /about/health.
    pub fn source(
        name: &'static str,
        gateway: Arc<T>,
        health: fn(&T) -> serde_json::Value,
        metrics: fn(&T) -> String,
    ) -> Arc<dyn StatusSource> {
        Arc::new(GatewayStatus {
            name,
            gateway,
            health,
            metrics,
        })
    }
}

impl<T: Send + Sync> StatusSource for GatewayStatus<T> {
    fn name(&self) -> String {
        self.name.into()
    }

    fn health(&self) -> serde_json::Value {
        (self.health)(&self.gateway)
    }

    fn metrics(&self) -> String {
        (self.metrics)(&self.gateway)
    }
}
