"""model-cicd build tooling: checkpoint -> export -> engine -> parity -> bench -> package."""
__version__ = "0.1.0"
