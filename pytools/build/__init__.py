"""The build chain: one module per stage (checkpoint, export, engine, golden inputs, parity,
bench, assemble) and the pipeline that runs the stage table of `pytools.core.workdir`."""
