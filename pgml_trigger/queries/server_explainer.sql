-- Runs as the caller: _fetch_explainer (SECURITY DEFINER) reads the version's explainer and hands it to this
-- backend's Python code; SQL sees only its length.
SELECT pgml_trigger._fetch_explainer($1, $2) AS explainer_bytes
