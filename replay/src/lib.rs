//! Point-in-time rebuild, chain verification, forensics queries and compliance reports over the journal (not built yet).
