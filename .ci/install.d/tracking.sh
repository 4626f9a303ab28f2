# Tracking, lineage and reports (issue 6): Graphviz `dot` draws `pytools lineage --svg/--png`,
# Debian's headless Chromium renders the HTML report in the tests, DejaVu fonts for both.
# Sourced by .ci/setup as root on a fresh Debian machine; idempotent and quiet.
tracking_apt=""
command -v dot >/dev/null || tracking_apt="$tracking_apt graphviz"
command -v chromium >/dev/null || tracking_apt="$tracking_apt chromium"
[ -e /usr/share/fonts/truetype/dejavu/DejaVuSans.ttf ] || tracking_apt="$tracking_apt fonts-dejavu-core"
if [ -n "$tracking_apt" ] && [ "$(id -u)" = 0 ]; then
  # shellcheck disable=SC2086
  apt-get install -y -qq --no-install-recommends $tracking_apt >/dev/null
fi
unset tracking_apt
