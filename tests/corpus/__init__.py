"""The hostile inputs of tests/fuzz (the YAML files here) and what builds requests and files from them."""
