-- Composed in transfer.py: {columns} are the models columns but the payloads (transfer_export_chunk
-- reads those), whose sizes come apart. Never to_jsonb() of a payload: a jsonb string holds 256 MB.
SELECT to_jsonb(x) - 'payload_bytes' - 'compiled_payload_bytes' AS row,
       jsonb_build_object('payload', x.payload_bytes, 'compiled_payload', x.compiled_payload_bytes) AS payload_bytes
FROM (SELECT {columns}, octet_length(m.payload) AS payload_bytes,
             octet_length(m.compiled_payload) AS compiled_payload_bytes
      FROM pgml_trigger.resolve_model(%(ref)s) AS r
      JOIN pgml_trigger.models AS m ON m.name = r.name AND m.version = r.version) AS x
