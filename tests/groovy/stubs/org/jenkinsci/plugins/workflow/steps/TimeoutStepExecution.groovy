package org.jenkinsci.plugins.workflow.steps

/** Holds the cause Jenkins attaches when a `timeout` block expires. */
class TimeoutStepExecution {
    static Object exceeded() {
        return new ExceededTimeout()
    }

    static class ExceededTimeout {
        final String shortDescription = 'Timeout has been exceeded'
    }
}
