-- Runs as the caller: _fetch_payload (SECURITY DEFINER) reads the payload, or the compiled
-- payload when $3, and hands it to this backend's Python code; SQL sees only its length.
SELECT pgml_trigger._fetch_payload($1, $2, $3) AS payload_bytes
