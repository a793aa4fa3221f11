CREATE SUBSCRIPTION {name} CONNECTION {conninfo} PUBLICATION pgml_trigger_catalog
