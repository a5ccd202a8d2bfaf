"""The framework core: contracts, stages, hookspecs, plugin manager, config, graph, profiling,
media I/O and the CLI."""
