//! The conference domain: identities, rooms, roles, invitations and moderation as commands and events (decide/evolve), projections, and the Engine service (not built yet).
