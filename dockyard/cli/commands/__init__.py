"""One module per resource; each command has setup_<verb>(parser) and cmd_<verb>(ctx, opts)."""
