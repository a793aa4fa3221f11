SELECT pgml_trigger._python_path()
