package org.jenkinsci.plugins.workflow.support.steps.input

import hudson.model.User

/** The cause of an input that a user aborted. */
class Rejection {
    final User user

    Rejection(User user) {
        this.user = user
    }

    String getShortDescription() {
        return "Rejected by ${user?.id}"
    }
}
