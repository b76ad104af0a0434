//! A gateway's handle on the engine: it acts only for identities of its own address
//! schemes, under its own name.

use std::sync::Arc;

use super::{Engine, EngineError, FeedFilter, FeedSubscription, Outcome, Request};
use crate::ids::Scheme;

/// What a gateway is and may act for.
#[derive(Debug, Clone)]
pub struct GatewayScope {
    /// Its name, as journaled in every event's origin (`sip`, `xmpp`, `web`).
    pub name: String,
    /// The address schemes of the identities it may act for.
    pub schemes: Vec<Scheme>,
}

/// The engine as one gateway sees it. A command for an identity outside the scope is
/// refused (`perm.out_of_scope`) and the attempt journaled (`api_action_denied`), so a
/// bug or a forged request in one protocol cannot act for people of another.
#[derive(Clone)]
pub struct GatewayHandle {
    engine: Engine,
    name: String,
    schemes: Arc<[Scheme]>,
}

impl Engine {
    /// A handle for the gateway `scope` describes.
    pub fn gateway(&self, scope: GatewayScope) -> GatewayHandle {
        GatewayHandle {
            engine: self.clone(),
            name: scope.name,
            schemes: scope.schemes.into(),
        }
    }
}

impl GatewayHandle {
    /// [`Engine::execute`] within the scope, with the gateway's name as the origin.
    pub async fn execute(&self, req: Request) -> Result<Outcome, EngineError> {
        self.engine.execute(self.scoped(req)).await
    }

    /// [`Engine::submit`] within the scope: queued in call order (see there).
    pub fn submit(
        &self,
        req: Request,
    ) -> std::pin::Pin<Box<dyn std::future::Future<Output = Result<Outcome, EngineError>> + Send>>
    {
        self.engine.submit(self.scoped(req))
    }

    /// [`GatewayHandle::execute`] for threads outside an async runtime.
    pub fn execute_blocking(&self, req: Request) -> Result<Outcome, EngineError> {
        self.engine.execute_blocking(self.scoped(req))
    }

    fn scoped(&self, mut req: Request) -> Request {
        req.origin.gateway.clone_from(&self.name);
        req.scope = Some(self.schemes.clone());
        req
    }

    /// The committed feed (see [`Engine::subscribe`]).
    pub fn subscribe(&self, from: u64, filter: FeedFilter) -> FeedSubscription {
        self.engine.subscribe(from, filter)
    }

    /// The engine behind the handle, for reads (`read`, `wait_for`).
    pub fn engine(&self) -> &Engine {
        &self.engine
    }
}
