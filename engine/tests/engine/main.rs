//! Domain tests: one module per feature area, written as given / when / then.
#![allow(clippy::unwrap_used, clippy::expect_used)]

mod common;

mod accounts;
mod address_bans;
mod autoban;
mod chat;
mod codec;
mod gateway_refusals;
mod invitations;
mod lobby;
mod membership;
mod moderation;
mod passwords;
mod policies;
mod properties;
mod recording;
mod retention;
mod rights;
mod roles;
mod rooms;
mod sip_credentials;
mod subject;
mod text;
