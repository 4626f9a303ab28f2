# Fleet (issue 4): real OpenSSH sshd for the simulated robots, ip/tc for network namespaces and
# bandwidth limits, openssl for robot-side signature checks (Ansible itself is in requirements.txt).
# Sourced by .ci/setup as root on a fresh Debian machine; idempotent and quiet.
fleet_apt=""
command -v sshd >/dev/null || [ -x /usr/sbin/sshd ] || fleet_apt="$fleet_apt openssh-server"
command -v ssh >/dev/null || fleet_apt="$fleet_apt openssh-client"
command -v ssh-keygen >/dev/null || fleet_apt="$fleet_apt openssh-client"
command -v ip >/dev/null || fleet_apt="$fleet_apt iproute2"
command -v tc >/dev/null || fleet_apt="$fleet_apt iproute2"
if [ -n "$fleet_apt" ] && [ "$(id -u)" = 0 ]; then
  # Install without starting the system sshd: tests start their own, one per robot.
  fleet_policy_added=""
  if [ ! -e /usr/sbin/policy-rc.d ]; then
    printf '#!/bin/sh\nexit 101\n' > /usr/sbin/policy-rc.d && chmod +x /usr/sbin/policy-rc.d
    fleet_policy_added=1
  fi
  # shellcheck disable=SC2086
  apt-get install -y -qq --no-install-recommends $fleet_apt >/dev/null
  [ -n "$fleet_policy_added" ] && rm -f /usr/sbin/policy-rc.d
fi
mkdir -p /run/sshd
unset fleet_apt fleet_policy_added
