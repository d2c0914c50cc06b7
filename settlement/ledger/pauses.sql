-- name: open_pause
SELECT id, asset_id, reason, run_id, paused_by, paused_at FROM asset_pauses
WHERE asset_id = $1 AND resolved_at IS NULL;

-- name: open_pauses
SELECT id, asset_id, reason, run_id, paused_by, paused_at FROM asset_pauses
WHERE resolved_at IS NULL ORDER BY asset_id;

-- name: insert_pause
-- At most one open pause per asset: a second mismatch finds it paused.
INSERT INTO asset_pauses (asset_id, reason, run_id, paused_by)
VALUES ($1, $2, $3, $4)
ON CONFLICT (asset_id) WHERE resolved_at IS NULL DO NOTHING
RETURNING id;

-- name: resolve_pause
UPDATE asset_pauses
SET resolved_at = now(), resolved_by = $2, resolution = $3
WHERE asset_id = $1 AND resolved_at IS NULL
RETURNING id, reason, paused_at;
