-- Runs inside pgml_trigger._fetch_explainer(), as the owner of pgml_trigger.models.
SELECT explainer, explainer_sha256, explainer_info::text AS explainer_info
FROM pgml_trigger.models
WHERE name = $1 AND version = $2
