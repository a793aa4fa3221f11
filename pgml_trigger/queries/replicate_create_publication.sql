CREATE PUBLICATION pgml_trigger_catalog
    FOR TABLE pgml_trigger.models, pgml_trigger.aliases, pgml_trigger.alias_history
    WITH (publish = 'insert, update, delete')
