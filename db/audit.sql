-- name: insert_audit
-- One row per decision a person or the daemon took on money or chain state.
INSERT INTO audit_log (actor, action, subject, details) VALUES ($1, $2, $3, $4)
RETURNING id, at;
