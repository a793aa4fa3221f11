SELECT to_regnamespace('pgml_trigger') IS NOT NULL AS installed
