"""Run the test Artifactory: `python -m tests.fakes.artifactory --port 8081 --root DIR`.

Credentials: user admin / password `password`, token `test-token`, API key `test-api-key`.
Metadata is kept in memory; binaries go to DIR/filestore.
"""
import argparse
import tempfile
import time

from tests.fakes.artifactory.server import ArtifactoryServer


def main():
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--port", type=int, default=0, help="TCP port on 127.0.0.1 (0: any free one)")
    parser.add_argument("--root", default=None, help="storage directory (default: a temporary one)")
    parser.add_argument("--repo", action="append", default=None,
                        help="repository key (repeatable; default models-dev/-staging/-release)")
    parser.add_argument("--anonymous-read", action="store_true", help="allow GET/HEAD without credentials")
    args = parser.parse_args()
    root = args.root or tempfile.mkdtemp(prefix="fake-artifactory-")
    repos = args.repo or ("models-dev", "models-staging", "models-release")
    server = ArtifactoryServer(root, repos=repos, port=args.port, anonymous_read=args.anonymous_read).start()
    print("Artifactory-compatible server at %s (storage %s)" % (server.url, root), flush=True)
    try:
        while True:
            time.sleep(3600)
    except KeyboardInterrupt:
        server.stop()


if __name__ == "__main__":
    main()
