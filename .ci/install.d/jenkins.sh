# Sourced by .ci/run (as root, after apt-get update): what the Jenkins library's tests need.
# Groovy 2.4 (Debian's `groovy`, the version inside Jenkins) runs the step tests; it needs a JDK 17
# JAVA_HOME. npm-groovy-lint (CodeNarc) lints vars/, tests/groovy and the Jenkinsfile.
# Idempotent and quiet: installs only what is missing.
if ! command -v groovy >/dev/null 2>&1; then
    DEBIAN_FRONTEND=noninteractive apt-get install -y -qq --no-install-recommends groovy openjdk-17-jdk-headless >/dev/null
fi
if [ -d /usr/lib/jvm/java-17-openjdk-amd64 ]; then
    export JAVA_HOME=/usr/lib/jvm/java-17-openjdk-amd64
fi
if ! command -v npm-groovy-lint >/dev/null 2>&1; then
    if ! command -v npm >/dev/null 2>&1; then
        DEBIAN_FRONTEND=noninteractive apt-get install -y -qq --no-install-recommends nodejs npm >/dev/null
    fi
    # 16.x is the newest line that runs on Node 20 (17+ needs Node >= 22).
    npm install -g --silent --no-fund --no-audit npm-groovy-lint@16.2.0 >/dev/null 2>&1
fi
