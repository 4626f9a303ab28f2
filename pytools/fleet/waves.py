"""Wave planning and failure thresholds for staged rollouts."""
import math

from pytools.core.errors import ConfigError

DEFAULT_WAVES = "canary,10%,50%,100%"


def plan_waves(robots, spec=DEFAULT_WAVES, canary_group="canary"):
    """Split robots into waves: `canary` (robots of the canary group, or the first robot when
    there is none), `group:NAME` (the robots of inventory group NAME not in an earlier wave),
    then cumulative percentages of the whole fleet. Empty waves are dropped and
    every robot lands in exactly one wave; the last wave always takes the rest."""
    names = [r.name for r in robots]
    steps = [s.strip() for s in str(spec).split(",") if s.strip()]
    if not steps:
        raise ConfigError("--waves is empty; use e.g. %s" % DEFAULT_WAVES)
    waves, placed = [], set()
    for i, step in enumerate(steps):
        if step == "canary":
            members = [r.name for r in robots if canary_group in r.groups] or names[:1]
        elif step.startswith("group:"):
            group = step[len("group:"):]
            members = [r.name for r in robots if group in r.groups]
            if not members:
                raise ConfigError("wave %r: no robot of the inventory is in group %r"
                                  % (step, group))
        elif step.endswith("%"):
            try:
                pct = float(step[:-1])
            except ValueError:
                raise ConfigError("wave %r is not a percentage like 10%%" % step)
            if not 0 < pct <= 100:
                raise ConfigError("wave %r must be in (0%%, 100%%]" % step)
            upto = max(int(math.ceil(len(names) * pct / 100.0)), 1)
            members = [n for n in names if n not in placed][:max(upto - len(placed), 0)]
        else:
            raise ConfigError("wave %r: use 'canary', 'group:NAME' or a percentage like 10%%"
                              % step)
        if i == len(steps) - 1:
            members = members + [n for n in names if n not in placed and n not in members]
        members = [n for n in members if n not in placed]
        if members:
            waves.append({"name": step, "robots": members})
            placed.update(members)
    return waves


def parse_threshold(text):
    """'2' -> at most 2 failures per wave; '10%' -> at most 10% of the wave."""
    text = str(text).strip()
    try:
        if text.endswith("%"):
            value = float(text[:-1])
            if not 0 <= value <= 100:
                raise ValueError
            return ("percent", value)
        value = int(text)
        if value < 0:
            raise ValueError
        return ("count", value)
    except ValueError:
        raise ConfigError("--max-failures %r: use a count (0, 2) or a percentage (10%%)" % text)


def crossed(threshold, failures, wave_size):
    kind, value = threshold
    allowed = value if kind == "count" else math.floor(wave_size * value / 100.0)
    return failures > allowed
