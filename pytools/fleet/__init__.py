"""Fleet rollout: robot agent, inventory, waves, SSH/pull/Ansible transports, simulated fleet."""
import os


def simulated_rollout(package_dir, workdir, count=3, waves="canary,100%", services=True,
                      max_failures="0"):
    """Roll `package_dir` out to a freshly simulated fleet of `count` robots under
    `<workdir>/fleet` (approved automatically) and return a summary dict; the fleet is stopped
    before returning. This is what `pytools run` uses when an example asks for a fleet."""
    from pytools.core.package import read_manifest
    from pytools.core.workdir import FLEET_DIR
    from pytools.fleet.rollout import Options, Rollout, record_path
    from pytools.fleet.sim.simulate import SimulatedFleet
    manifest = read_manifest(package_dir)
    with SimulatedFleet(os.path.join(workdir, FLEET_DIR), count, services=services) as fleet:
        opts = Options(waves=waves, max_failures=max_failures, approval="yes",
                       approver="pytools run")
        record = Rollout(manifest["name"], manifest["version"], fleet.inventory, package_dir,
                         workdir, opts).run()
    outcomes = {}
    for robot in record["robots"].values():
        outcomes[robot["outcome"]] = outcomes.get(robot["outcome"], 0) + 1
    return {"rollout": record["id"], "state": record["state"], "robots": count,
            "outcomes": outcomes, "halt_reason": record["halt_reason"],
            "bytes_sent": sum(r["bytes_sent"] or 0 for r in record["robots"].values()),
            "record": record_path(workdir, manifest["name"], manifest["version"])}
