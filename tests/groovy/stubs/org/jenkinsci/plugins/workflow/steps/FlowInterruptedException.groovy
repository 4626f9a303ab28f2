package org.jenkinsci.plugins.workflow.steps

/** What Jenkins throws into a build when a step is aborted or times out. */
class FlowInterruptedException extends InterruptedException {
    final String result
    final List causes

    FlowInterruptedException(String result, Object... causes) {
        super("${result}: ${causes*.shortDescription.join('; ')}")
        this.result = result
        this.causes = causes as List
    }
}
