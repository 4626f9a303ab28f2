"""Users and permission targets as Artifactory checks them, with its 403 answers.

Actions are Artifactory's: read, annotate (properties), deploy, delete (which is also what
overwriting an existing file needs), manage (all of them). An admin may do anything, and only
admins may run AQL without `repo`, `path` and `name` in `.include(...)`. Builds are checked
against the pseudo-repository `artifactory-build-info`, as Artifactory 7 does.
"""
ACTIONS = ("read", "annotate", "deploy", "delete", "manage")
BUILDS = "artifactory-build-info"


class Forbidden(Exception):
    """Answered as HTTP 403 with Artifactory's message."""


class Permissions(object):
    def __init__(self):
        self.admins = set()
        self.grants = {}  # user -> {repo or "*": set(actions)}

    def add(self, user, actions=(), repos=None, admin=False):
        unknown = set(actions) - set(ACTIONS)
        if unknown:
            raise ValueError("unknown actions %s" % sorted(unknown))
        if admin:
            self.admins.add(user)
        target = self.grants.setdefault(user, {})
        for repo in repos or ["*"]:
            target.setdefault(repo, set()).update(actions)

    def is_admin(self, user):
        return user in self.admins

    def can(self, user, action, repo):
        if user in self.admins:
            return True
        granted = self.grants.get(user, {})
        actions = granted.get(repo, set()) | granted.get("*", set())
        return action in actions or "manage" in actions

    def require(self, user, action, repo_path):
        repo, _, rel = repo_path.partition("/")
        if self.can(user, action, repo):
            return
        where = "%s:%s" % (repo, rel)
        if action == "read":
            raise Forbidden("Download request for repo:path '%s' is forbidden for user: '%s'." % (where, user))
        if action == "delete":
            raise Forbidden("Not enough permissions to delete/overwrite artifact '%s' (user '%s' needs "
                            "DELETE permission)." % (where, user))
        raise Forbidden("Not enough permissions to %s '%s' (user '%s' needs %s permission)."
                        % ("deploy artifact" if action == "deploy" else "annotate", where, user,
                           action.upper()))
