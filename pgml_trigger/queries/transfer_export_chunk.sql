-- Composed in transfer.py: {column} is payload or compiled_payload. Fetched in binary; the payloads
-- are stored uncompressed out of line, so the server reads only this slice.
SELECT substring(m.{column} FROM %(offset)s FOR %(length)s)
FROM pgml_trigger.models AS m
WHERE m.name = %(name)s AND m.version = %(version)s
