-- Ask the Python that PL/Python embeds where it lives; lives in pg_temp, gone at disconnect.
CREATE OR REPLACE FUNCTION pg_temp.pgml_trigger_probe() RETURNS text
LANGUAGE plpython3u AS $$
import json, sys
return json.dumps({"version": list(sys.version_info[:3]), "base_prefix": sys.base_prefix,
                   "executable": sys.executable, "path": sys.path})
$$
