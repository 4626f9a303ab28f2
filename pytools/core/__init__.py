"""The shared core: errors, console, hashing, semver, the config schema (every section), the
package contract and the work-directory layout. It imports nothing else of pytools."""
