-- Runs as the caller: _payload_checks (SECURITY DEFINER) hashes every stored payload as the owner of
-- models and returns only whether each matches its sha256 column.
SELECT name, version, payload_intact, compiled_intact FROM pgml_trigger._payload_checks()
