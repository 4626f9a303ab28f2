"""A simulated fleet (real sshd per robot) and small demo packages to try rollouts on."""
