-- Runs as the caller: _fetch_payload (SECURITY DEFINER) reads the payload and hands it to this backend's
-- Python code; SQL sees only its length.
SELECT pgml_trigger._fetch_payload($1, $2) AS payload_bytes
