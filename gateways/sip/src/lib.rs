//! The SIP gateway: sans-IO SIP transactions (rsip) and Kamailio-IMC-style MESSAGE conferencing over the engine (not built yet).
