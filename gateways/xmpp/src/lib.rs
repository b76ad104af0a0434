//! The XMPP gateway: an XEP-0114 component serving XEP-0045 multi-user chat over the engine (not built yet).
