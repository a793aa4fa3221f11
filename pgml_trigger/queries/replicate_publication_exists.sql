SELECT EXISTS (SELECT FROM pg_catalog.pg_publication WHERE pubname = 'pgml_trigger_catalog')
