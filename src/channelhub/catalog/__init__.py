"""The built-in service definitions, as YAML files, one folder per business category."""
